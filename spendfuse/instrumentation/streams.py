"""Stream and raw-response proxies that settle a call exactly once, however it ends.

The proxies are ``wrapt.ObjectProxy`` subclasses, so ``isinstance(proxy, openai.Stream)`` holds and
every attribute the caller or an SDK helper (``MessageStream``, ``ChatCompletionStream``) touches
reaches the real object. A stream ends by exhaustion, error, ``close()``, ``__exit__`` /
``__aexit__``, or garbage collection (an early ``break`` or an abandoned stream); each path calls
the same idempotent ``_self_end``.
"""

from __future__ import annotations

import contextlib
from types import TracebackType
from typing import TYPE_CHECKING, Any

import wrapt

from spendfuse._log import log_internal_error

if TYPE_CHECKING:
    from spendfuse.instrumentation.call import ModelCall


class _StreamBase(wrapt.ObjectProxy):  # type: ignore[misc]
    def __init__(self, wrapped: Any, call: ModelCall) -> None:
        super().__init__(wrapped)
        self._self_call = call
        self._self_state = call.provider.stream_state(call.api, call.runtime.settings.capture_content)
        self._self_seen = False
        self._self_ended = False

    def _self_observe(self, item: Any) -> None:
        try:
            if not self._self_seen:
                self._self_seen = True
                self._self_call.first_chunk()
            self._self_state.observe(item)
        except Exception:
            log_internal_error("reading a stream event")

    def _self_end(self, reason: str, error: BaseException | None = None) -> None:
        if self._self_ended:
            return
        self._self_ended = True
        try:
            info = self._self_state.result()
        except Exception:
            log_internal_error("reading a stream's result")
            info = None
        self._self_call.finish(info, complete=reason == "complete", error=error, reason=reason)

    def __del__(self) -> None:
        # An abandoned stream (early break, dropped reference) is charged for what it received.
        with contextlib.suppress(Exception):
            self._self_end("abandoned")

    def __copy__(self) -> Any:
        raise TypeError("a spendfuse stream proxy cannot be copied")

    def __reduce_ex__(self, protocol: Any) -> Any:
        raise TypeError("a spendfuse stream proxy cannot be pickled")


class StreamProxy(_StreamBase):
    def __iter__(self) -> StreamProxy:
        return self

    def __next__(self) -> Any:
        try:
            item = self.__wrapped__.__next__()
        except StopIteration:
            self._self_end("complete")
            raise
        except BaseException as error:
            self._self_end("error", error)
            raise
        self._self_observe(item)
        return item

    def __enter__(self) -> StreamProxy:
        self.__wrapped__.__enter__()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> Any:
        try:
            return self.__wrapped__.__exit__(exc_type, exc, tb)
        finally:
            self._self_end("closed")

    def close(self) -> None:
        try:
            self.__wrapped__.close()
        finally:
            self._self_end("closed")


class AsyncStreamProxy(_StreamBase):
    def __aiter__(self) -> AsyncStreamProxy:
        return self

    async def __anext__(self) -> Any:
        try:
            item = await self.__wrapped__.__anext__()
        except StopAsyncIteration:
            self._self_end("complete")
            raise
        except BaseException as error:
            self._self_end("cancelled" if _is_cancel(error) else "error", error)
            raise
        self._self_observe(item)
        return item

    async def __aenter__(self) -> AsyncStreamProxy:
        await self.__wrapped__.__aenter__()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> Any:
        try:
            return await self.__wrapped__.__aexit__(exc_type, exc, tb)
        finally:
            self._self_end("closed")

    async def close(self) -> None:
        try:
            await self.__wrapped__.close()
        finally:
            self._self_end("closed")


def _is_cancel(error: BaseException) -> bool:
    import asyncio

    return isinstance(error, asyncio.CancelledError)


class _RawBase(wrapt.ObjectProxy):  # type: ignore[misc]
    """A raw response whose body is not read yet: usage arrives through ``parse()``."""

    def __init__(self, wrapped: Any, call: ModelCall) -> None:
        super().__init__(wrapped)
        self._self_call = call
        self._self_parsed: Any = None

    def _self_adopt(self, parsed: Any) -> Any:
        if self._self_parsed is None:
            self._self_parsed = self._self_call.on_parsed(parsed)
        return self._self_parsed

    def _self_unparsed_end(self) -> None:
        if self._self_parsed is not None:
            return
        try:
            content = getattr(self.__wrapped__.http_response, "_content", None)
            if content is not None and not self._self_call.stream:
                import json

                info = self._self_call.provider.extract_response(self._self_call.api, json.loads(content))
                self._self_call.finish(info)
                return
        except Exception:
            log_internal_error("reading a raw response body")
        # Read by the caller in a way we cannot see (iter_lines, iter_bytes): the provider billed
        # something we never learn, so charge the reserved worst case rather than nothing.
        self._self_call.finish(None, complete=False, reason="unreadable")

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self._self_unparsed_end()


class RawResponseProxy(_RawBase):
    def parse(self, *args: Any, **kwargs: Any) -> Any:
        parsed = self.__wrapped__.parse(*args, **kwargs)
        if args or kwargs:  # parse(to=...) into the caller's type: settle from it all the same
            return self._self_adopt(parsed) if self._self_parsed is None else parsed
        return self._self_adopt(parsed)

    def close(self) -> None:
        try:
            self.__wrapped__.close()
        finally:
            self._self_unparsed_end()


class AsyncRawResponseProxy(_RawBase):
    async def parse(self, *args: Any, **kwargs: Any) -> Any:
        parsed = await self.__wrapped__.parse(*args, **kwargs)
        if args or kwargs:
            return self._self_adopt(parsed) if self._self_parsed is None else parsed
        return self._self_adopt(parsed)

    async def close(self) -> None:
        try:
            await self.__wrapped__.close()
        finally:
            self._self_unparsed_end()


def wrap_stream(stream: Any, call: ModelCall) -> Any:
    if hasattr(stream, "__anext__"):
        return AsyncStreamProxy(stream, call)
    return StreamProxy(stream, call)


def wrap_raw_response(response: Any, call: ModelCall) -> Any:
    import inspect

    if inspect.iscoroutinefunction(getattr(type(response), "parse", None)):
        return AsyncRawResponseProxy(response, call)
    return RawResponseProxy(response, call)
