"""In-process transport: an ``httpx2.MockTransport`` in front of the provider, serving sync and
async clients (sleeping with ``time.sleep`` or ``asyncio.sleep`` respectively).

Built over an httpx-family module so the same code also serves SDK releases that still use the
original ``httpx`` (identical API, different namespace). Stream bodies are real byte streams:
each SSE event is produced only when the SDK reads it, ``chunk_delay`` is slept between events,
and closing the response early is reported to the provider as an abandoned stream.
"""

from __future__ import annotations

import asyncio
import importlib
import time
from collections.abc import AsyncIterator, Iterator
from types import ModuleType
from typing import TYPE_CHECKING, Any, cast

from spendfuse.testing.body import EventStream, PreparedResponse, StreamBroken

if TYPE_CHECKING:
    import httpx2

    from spendfuse.testing.provider import FakeProvider


def mock_transport(provider: FakeProvider) -> httpx2.MockTransport:
    import httpx2

    return cast("httpx2.MockTransport", _build(httpx2, provider))


def legacy_httpx_transport(provider: FakeProvider) -> Any:
    try:
        httpx = importlib.import_module("httpx")
    except ImportError:
        raise RuntimeError("httpx_transport() needs the `httpx` package, which is not installed") from None
    return _build(httpx, provider)


def _build(lib: ModuleType, provider: FakeProvider) -> Any:
    # The base classes come from whichever httpx-family module was passed in.
    sync_stream_base: Any = lib.SyncByteStream
    async_stream_base: Any = lib.AsyncByteStream
    transport_base: Any = lib.MockTransport

    def prepare(request: Any) -> PreparedResponse:
        url = request.url
        return provider.handle(
            request.method, url.path, url.query.decode("ascii", "replace"), request.headers, request.content
        )

    def broken(request: Any, exc: StreamBroken) -> Exception:
        # The same error the SDK gets from FakeServer, whose socket closes mid chunked body.
        message = f"peer closed connection without sending complete message body ({exc})"
        return cast(Exception, lib.RemoteProtocolError(message, request=request))

    class SyncBody(sync_stream_base):  # type: ignore[misc]
        def __init__(self, stream: EventStream, request: Any) -> None:
            self._stream = stream
            self._request = request

        def __iter__(self) -> Iterator[bytes]:
            try:
                yield from self._stream.paced(provider.chunk_delay)
            except StreamBroken as exc:
                raise broken(self._request, exc) from None

        def close(self) -> None:
            self._stream.close()

    class AsyncBody(async_stream_base):  # type: ignore[misc]
        def __init__(self, stream: EventStream, request: Any) -> None:
            self._stream = stream
            self._request = request

        async def __aiter__(self) -> AsyncIterator[bytes]:
            try:
                async for chunk in self._stream.apaced(provider.chunk_delay):
                    yield chunk
            except StreamBroken as exc:
                raise broken(self._request, exc) from None

        async def aclose(self) -> None:
            self._stream.close()

    def respond(prepared: PreparedResponse, request: Any, *, is_async: bool) -> Any:
        if isinstance(prepared.body, EventStream):
            body_class = AsyncBody if is_async else SyncBody
            return lib.Response(prepared.status, headers=prepared.headers, stream=body_class(prepared.body, request))
        return lib.Response(prepared.status, headers=prepared.headers, content=prepared.body)

    def handle_sync(request: Any) -> Any:
        prepared = prepare(request)
        if provider.latency > 0:
            time.sleep(provider.latency)
        return respond(prepared, request, is_async=False)

    async def handle_async(request: Any) -> Any:
        prepared = prepare(request)
        if provider.latency > 0:
            await asyncio.sleep(provider.latency)
        return respond(prepared, request, is_async=True)

    class Transport(transport_base):  # type: ignore[misc]
        """Serves sync and async clients alike: the stock class can hold only one handler kind."""

        def __init__(self) -> None:
            super().__init__(handle_sync)

        async def handle_async_request(self, request: Any) -> Any:
            await request.aread()
            return await handle_async(request)

    return Transport()
