"""Watch streams and raw responses in place, settling their call exactly once however they end.

The SDK's own object is returned, untouched in type and identity: we swap the stream's iterator
for a generator that observes each item, and give the instance a ``close`` that also settles. A
proxy object would be simpler, but ``isinstance(proxy, anthropic.Stream)`` is False on anthropic
releases whose ``Stream`` metaclass overrides ``__instancecheck__`` (0.x), and the promise is that
``isinstance`` always holds.

Why not the SDKs' ``stream_cls`` hook (``request(..., stream_cls=OurStream)`` with a subclass of
``Stream``)? ``isinstance`` would hold, but ``type(stream)`` would no longer be the SDK's class
(user code and the SDKs' own helpers compare it), the resource methods pass parameterized aliases
(``Stream[ChatCompletionChunk]``) that the subclass would have to rebuild per call, and it would
inherit each release's constructor and ``__stream__`` internals. Swapping the instance's iterator
needs only the ``_iterator`` attribute, which every supported release has (anthropic >= 0.75,
openai >= 2.9), and leaves the object the SDK made.

A stream ends by exhaustion, error, ``close()`` (also through ``__exit__`` / ``__aexit__``), or by
being dropped (an early ``break``): the generator is closed, or a weak reference's callback on the
stream fires; a stream still open when the interpreter exits is ended by an exit hook, so no lease
stays open after a clean exit. Every path calls the same idempotent ``Ending.end``. (A plain weak
reference and one module set instead of ``weakref.finalize``: the same guarantees for a tenth of
its ~6 us per stream.)
"""

from __future__ import annotations

import asyncio
import json
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, Protocol

from spendfuse._exit import at_exit_and_fork
from spendfuse._log import log_internal_error
from spendfuse.budgets import critical
from spendfuse.instrumentation.provider import StreamReader
from spendfuse.instrumentation.records import ResponseInfo


class StreamCall(Protocol):
    """The part of a call a stream ends (``call.ModelCall`` implements it)."""

    def first_chunk(self) -> None: ...

    def finish(
        self,
        info: ResponseInfo | None,
        *,
        complete: bool = True,
        error: BaseException | None = None,
        reason: str = "complete",
    ) -> None: ...


class RawCall(StreamCall, Protocol):
    """A call answered by a raw response whose body is read later."""

    stream: bool

    def on_result(self, result: Any) -> Any: ...

    def read_body(self, body: Any) -> ResponseInfo: ...


class Ending:
    """The observed state of one stream and its single settlement."""

    __slots__ = ("__weakref__", "_call", "_ended", "_reader", "_ref", "_seen")

    def __init__(self, call: StreamCall, reader: StreamReader) -> None:
        self._call = call
        self._reader = reader
        self._seen = False
        self._ended = False
        self._ref: weakref.ref[Any] | None = None

    def watch(self, stream: Any) -> None:
        """End as "abandoned" when ``stream`` is collected, or at exit if it is still open then."""
        self._ref = weakref.ref(stream, self._dropped)  # kept by us: the callback needs it alive
        _open.add(self)

    def _dropped(self, _ref: weakref.ref[Any]) -> None:
        self.end("abandoned")

    def observer(self) -> Callable[[Any], None]:
        """The reader's per-item handler, bound once per stream."""
        return self._reader.observer()

    def first_chunk(self) -> None:
        if not self._seen:
            self._seen = True
            self._call.first_chunk()

    def end(self, reason: str, error: BaseException | None = None) -> None:
        if self._ended:
            return
        if critical.must_defer():
            # Reached from a garbage collection (a dropped stream's weak reference or generator) or
            # from inside one of our locks: settling here could wait on a lock the interrupted code
            # holds. The deferred end runs at the next call, flush or exit, outside all of them.
            critical.defer(self.end, reason, error)
            return
        self._ended = True
        _open.discard(self)
        try:
            info: ResponseInfo | None = self._reader.result()
        except Exception:
            log_internal_error("reading a stream's result")
            info = None
        self._call.finish(info, complete=reason == "complete", error=error, reason=reason)


_open: set[Ending] = set()  # endings of streams not ended yet


def _end_open_streams() -> None:
    # Streams still open at a clean exit were received in part: settle them for what they got.
    for ending in list(_open):
        ending.end("abandoned")


def _forget_parent_streams() -> None:
    # A forked child holds copies of its parent's open streams: the parent settles them, once.
    for ending in _open:
        ending._ended = True
    _open.clear()


at_exit_and_fork(_end_open_streams, _forget_parent_streams)


def _watch(source: Iterator[Any], ending: Ending, skip: Callable[[Any], bool] | None = None) -> Iterator[Any]:
    try:
        source = iter(source)
        observe = ending.observer()
        for item in source:
            ending.first_chunk()
            try:
                observe(item)
            except Exception:
                log_internal_error("reading a stream event")
            if skip is not None and _skipped(skip, item):
                continue
            yield item
            break
        for item in source:  # the rest, without the first-chunk check
            try:
                observe(item)
            except Exception:
                log_internal_error("reading a stream event")
            if skip is not None and _skipped(skip, item):
                continue
            yield item
    except GeneratorExit:
        ending.end("abandoned")  # dropped before the end: charged for what it received
        raise
    except BaseException as error:
        ending.end("error", error)
        raise
    ending.end("complete")


async def _awatch(
    source: AsyncIterator[Any], ending: Ending, skip: Callable[[Any], bool] | None = None
) -> AsyncIterator[Any]:
    try:
        observe = ending.observer()
        async for item in source:
            ending.first_chunk()
            try:
                observe(item)
            except Exception:
                log_internal_error("reading a stream event")
            if skip is not None and _skipped(skip, item):
                continue
            yield item
    except GeneratorExit:
        ending.end("abandoned")
        raise
    except BaseException as error:
        ending.end("cancelled" if isinstance(error, asyncio.CancelledError) else "error", error)
        raise
    ending.end("complete")


def _skipped(skip: Callable[[Any], bool], item: Any) -> bool:
    # An item we added to the stream (the usage chunk we asked for) is read, never handed on.
    try:
        return skip(item)
    except Exception:
        log_internal_error("checking a stream event")
        return False


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


def watch_stream(stream: Any, call: StreamCall, reader: StreamReader, skip: Callable[[Any], bool] | None = None) -> Any:
    """Instrument ``stream`` in place and return it; on failure, settle now and return it as is.

    ``skip``: items observed but withheld from the caller (chunks only we asked for).
    """
    ending = Ending(call, reader)
    try:
        source = stream._iterator  # the SDK's generator (a cached property on newer releases)
        if hasattr(source, "__anext__"):
            stream._iterator = _awatch(source, ending, skip)
            stream.close = _aclosing(stream, ending)
        else:
            stream._iterator = _watch(source, ending, skip)
            stream.close = _closing(stream, ending)
        ending.watch(stream)
    except Exception:
        log_internal_error("watching a stream")
        ending.end("unreadable")
    return stream


class _RawWatch:
    """A raw response whose body is not read yet: usage arrives through ``parse()``."""

    __slots__ = ("__weakref__", "adopted", "call")

    def __init__(self, call: RawCall) -> None:
        self.call = call
        self.adopted = False

    def adopt(self, parsed: Any) -> Any:
        """The first ``parse()`` result decides the call: a stream is watched in place, a final
        object settles now. The SDK's result is returned as is, so a later ``parse(to=...)``
        still gets its own object (the SDK caches per type)."""
        if not self.adopted:
            self.adopted = True
            try:
                self.call.on_result(parsed)  # a stream is watched in place: same object
            except Exception:
                log_internal_error("reading a parsed raw response")
        return parsed

    def unparsed_end(self, response: Any = None) -> None:
        if self.adopted:
            return
        if critical.must_defer():  # from the finalizer, inside a collection: see Ending.end
            critical.defer(self.unparsed_end, response)
            return
        call = self.call
        try:
            content = getattr(getattr(response, "http_response", None), "_content", None)
            if content is not None and not call.stream:
                self.adopted = True
                call.finish(call.read_body(json.loads(content)))
                return
        except Exception:
            log_internal_error("reading a raw response body")
        # Read in a way we cannot see (iter_lines, iter_bytes): the provider billed something we
        # never learn, so the reserved worst case is charged rather than nothing.
        call.finish(None, complete=False, reason="unreadable")


def watch_raw_response(response: Any, call: RawCall) -> Any:
    """Instrument a raw response whose body is read later, in place.

    ``with_streaming_response`` responses (``APIResponse``) have ``parse`` and ``close``, async
    ones as coroutines; OpenAI's ``with_raw_response`` responses (``LegacyAPIResponse``) have a
    synchronous ``parse`` even on the async client (it returns the ``AsyncStream``) and no
    ``close`` at all. Whatever ``parse()`` returns first is handed to the call (a stream is
    watched and settled from its events); a response dropped unparsed is settled by its finalizer.
    """
    watch = _RawWatch(call)
    try:
        cls = type(response)
        # Strong references, unlike the streams' weak ones: ``create(...).parse()`` drops the
        # response as soon as ``parse`` is looked up, and the call must still reach it. The cycle
        # (the instance holds the closure that holds it) only delays an unparsed response's
        # finalizer to the next cyclic collection, or the exit.
        parse, close = cls.parse, getattr(cls, "close", None)
        if asyncio.iscoroutinefunction(parse):

            async def aparse(*args: Any, **kwargs: Any) -> Any:
                return watch.adopt(await parse(response, *args, **kwargs))

            response.parse = aparse
        else:

            def sparse(*args: Any, **kwargs: Any) -> Any:
                return watch.adopt(parse(response, *args, **kwargs))

            response.parse = sparse
        if close is not None:
            if asyncio.iscoroutinefunction(close):

                async def aclose() -> Any:
                    try:
                        return await close(response)
                    finally:
                        watch.unparsed_end(response)

                response.close = aclose
            else:

                def sclose() -> Any:
                    try:
                        return close(response)
                    finally:
                        watch.unparsed_end(response)

                response.close = sclose
        weakref.finalize(response, watch.unparsed_end)
    except Exception:
        log_internal_error("watching a raw response")
        watch.unparsed_end(response)
    return response
