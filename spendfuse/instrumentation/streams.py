"""Watch streams and raw responses in place, settling their call exactly once however they end.

The SDK's own object is returned, untouched in type and identity: we swap the stream's iterator
for a generator that observes each item, and give the instance a ``close`` that also settles. A
proxy object would be simpler, but ``isinstance(proxy, anthropic.Stream)`` is False on anthropic
releases whose ``Stream`` metaclass overrides ``__instancecheck__`` (0.x), and the promise is that
``isinstance`` always holds.

A stream ends by exhaustion, error, ``close()`` (also through ``__exit__`` / ``__aexit__``), or by
being dropped (an early ``break``): the generator is closed, or a ``weakref.finalize`` on the
stream fires. Every path calls the same idempotent ``Ending.end``.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Any

from spendfuse._log import log_internal_error

if TYPE_CHECKING:
    from spendfuse.instrumentation.call import ModelCall


class Ending:
    """The observed state of one stream and its single settlement."""

    __slots__ = ("__weakref__", "_call", "_ended", "_seen", "_state")

    def __init__(self, call: ModelCall) -> None:
        self._call = call
        self._state = call.provider.stream_state(call.api, call.runtime.settings.capture_content)
        self._seen = False
        self._ended = False

    def observe(self, item: Any) -> None:
        try:
            if not self._seen:
                self._seen = True
                self._call.first_chunk()
            self._state.observe(item)
        except Exception:
            log_internal_error("reading a stream event")

    def state_observer(self) -> Callable[[Any], None]:
        # A state may hand out its per-API handler directly, skipping its own dispatch per item.
        observer = getattr(self._state, "observer", None)
        return observer() if observer is not None else self._state.observe  # type: ignore[no-any-return]

    def end(self, reason: str, error: BaseException | None = None) -> None:
        if self._ended:
            return
        self._ended = True
        try:
            info = self._state.result()
        except Exception:
            log_internal_error("reading a stream's result")
            info = None
        self._call.finish(info, complete=reason == "complete", error=error, reason=reason)


def _watch(source: Iterator[Any], ending: Ending) -> Iterator[Any]:
    try:
        source = iter(source)
        for item in source:
            ending.observe(item)  # the first item also stamps the time to first chunk
            yield item
            break
        # Then the state's own method, bound once: one Python call per item fewer.
        observe = ending.state_observer()
        for item in source:
            try:
                observe(item)
            except Exception:
                log_internal_error("reading a stream event")
            yield item
    except GeneratorExit:
        ending.end("abandoned")  # dropped before the end: charged for what it received
        raise
    except BaseException as error:
        ending.end("error", error)
        raise
    ending.end("complete")


async def _awatch(source: AsyncIterator[Any], ending: Ending) -> AsyncIterator[Any]:
    try:
        async for item in source:
            ending.observe(item)
            yield item
    except GeneratorExit:
        ending.end("abandoned")
        raise
    except BaseException as error:
        ending.end("cancelled" if isinstance(error, asyncio.CancelledError) else "error", error)
        raise
    ending.end("complete")


def _closing(owner: Any, ending: Ending) -> Callable[[], Any]:
    # The class's function and a weak reference: a bound method stored on the instance would make
    # a reference cycle and delay the "dropped" settlement until the cyclic garbage collector runs.
    close, ref = type(owner).close, weakref.ref(owner)

    def closed() -> Any:
        try:
            target = ref()
            return None if target is None else close(target)
        finally:
            ending.end("closed")

    return closed


def _aclosing(owner: Any, ending: Ending) -> Callable[[], Any]:
    close, ref = type(owner).close, weakref.ref(owner)

    async def closed() -> Any:
        try:
            target = ref()
            return None if target is None else await close(target)
        finally:
            ending.end("closed")

    return closed


def watch_stream(stream: Any, call: ModelCall) -> Any:
    """Instrument ``stream`` in place and return it; on failure, settle now and return it as is."""
    ending = Ending(call)
    try:
        source = stream._iterator  # the SDK's generator (a cached property on newer releases)
        if hasattr(source, "__anext__"):
            stream._iterator = _awatch(source, ending)
            stream.close = _aclosing(stream, ending)
        else:
            stream._iterator = _watch(source, ending)
            stream.close = _closing(stream, ending)
        weakref.finalize(stream, ending.end, "abandoned")
    except Exception:
        log_internal_error("watching a stream")
        ending.end("unreadable")
    return stream


class _RawWatch:
    """A raw response whose body is not read yet: usage arrives through ``parse()``."""

    __slots__ = ("__weakref__", "call", "parsed")

    def __init__(self, call: ModelCall) -> None:
        self.call = call
        self.parsed: Any = None

    def adopt(self, parsed: Any) -> Any:
        if self.parsed is None:
            self.parsed = self.call.on_parsed(parsed)
        return self.parsed

    def unparsed_end(self, response: Any = None) -> None:
        if self.parsed is not None:
            return
        call = self.call
        try:
            content = getattr(getattr(response, "http_response", None), "_content", None)
            if content is not None and not call.stream:
                import json

                call.finish(call.provider.extract_response(call.api, json.loads(content)))
                return
        except Exception:
            log_internal_error("reading a raw response body")
        # Read in a way we cannot see (iter_lines, iter_bytes): the provider billed something we
        # never learn, so the reserved worst case is charged rather than nothing.
        call.finish(None, complete=False, reason="unreadable")


def watch_raw_response(response: Any, call: ModelCall) -> Any:
    """Instrument a ``with_streaming_response`` / streamed raw response in place."""
    watch = _RawWatch(call)
    try:
        parse, close, ref = type(response).parse, type(response).close, weakref.ref(response)
        if asyncio.iscoroutinefunction(parse):

            async def aparse(*args: Any, **kwargs: Any) -> Any:
                return watch.adopt(await parse(ref(), *args, **kwargs))

            async def aclose() -> Any:
                target = ref()
                try:
                    return await close(target)
                finally:
                    watch.unparsed_end(target)

            response.parse, response.close = aparse, aclose
        else:

            def sparse(*args: Any, **kwargs: Any) -> Any:
                return watch.adopt(parse(ref(), *args, **kwargs))

            def sclose() -> Any:
                target = ref()
                try:
                    return close(target)
                finally:
                    watch.unparsed_end(target)

            response.parse, response.close = sparse, sclose
        weakref.finalize(response, watch.unparsed_end)
    except Exception:
        log_internal_error("watching a raw response")
        watch.unparsed_end(response)
    return response
