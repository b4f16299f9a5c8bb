"""Open a spendfuse run around one framework invocation: the shared logic of every adapter.

An invocation outside a run opens a top-level run (the configured run budget applies); inside a run
it opens a nested run that rolls up into it. Streaming forms keep the run open until the stream is
consumed or closed. Nothing here may break the framework's call: a failure to open or close a run is
logged and the call goes on unchanged; budget errors raised by the calls inside are the framework's
own exceptions to surface.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from spendfuse import runtime
from spendfuse.runs.run import Run, run

log = logging.getLogger("spendfuse")

# The framework whose outermost entry point already opened the run for this invocation. Its inner
# entry points (run_sync -> run, invoke -> stream) clear it and pass through, so one invocation is one
# run, while an agent started from inside a tool still opens its own nested run.
_DELEGATING: ContextVar[str | None] = ContextVar("spendfuse_framework_delegating", default=None)


@dataclass(frozen=True, slots=True)
class Identity:
    """What the framework tells us about an invocation."""

    name: str
    run_id: str | None = None
    user_id: str | None = None


def enabled(framework: str) -> bool:
    active = runtime.current()
    return active is not None and framework not in active.settings.disable_frameworks


def should_open(framework: str) -> bool:
    """Whether this entry point opens a run; a delegated inner entry point passes through."""
    if _DELEGATING.get() == framework:
        # Cleared without a reset: the outer entry point resets it when the invocation returns.
        _DELEGATING.set(None)
        return False
    return enabled(framework)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _start(identity: Callable[[], Identity]) -> tuple[run, Run] | None:
    try:
        who = identity()
        opener = run(_text(who.run_id), user_id=_text(who.user_id), name=who.name or "agent")
        return opener, opener.__enter__()
    except Exception:
        log.debug("spendfuse: could not open a run for a framework invocation", exc_info=True)
        return None


def _finish(started: tuple[run, Run] | None, error: BaseException | None) -> None:
    if started is None:
        return
    try:
        started[0].__exit__(type(error) if error is not None else None, error, None)
    except Exception:
        log.debug("spendfuse: could not close a framework run", exc_info=True)


def call_sync(
    framework: str,
    identity: Callable[[], Identity],
    wrapped: Callable[..., Any],
    args: Any,
    kwargs: Any,
    *,
    delegates: bool = False,
) -> Any:
    """A blocking entry point (``run_sync``, ``invoke``): the run spans the call.

    ``delegates``: the entry point calls another patched entry point of the same framework first
    thing (``run_sync`` -> ``run``), which must pass through.
    """
    if not should_open(framework):
        return wrapped(*args, **kwargs)
    started = _start(identity)
    if started is None:
        return wrapped(*args, **kwargs)
    token = _DELEGATING.set(framework if delegates else None)
    try:
        result = wrapped(*args, **kwargs)
    except BaseException as error:
        _DELEGATING.reset(token)
        _finish(started, error)
        raise
    _DELEGATING.reset(token)
    _finish(started, None)
    return result


def call_async(
    framework: str,
    identity: Callable[[], Identity],
    wrapped: Callable[..., Awaitable[Any]],
    args: Any,
    kwargs: Any,
    *,
    delegates: bool = False,
) -> Awaitable[Any]:
    """A coroutine entry point (``run``, ``ainvoke``): the run spans the awaited call."""
    if not should_open(framework):
        return wrapped(*args, **kwargs)

    async def invoke() -> Any:
        started = _start(identity)
        if started is None:
            return await wrapped(*args, **kwargs)
        token = _DELEGATING.set(framework if delegates else None)
        try:
            result = await wrapped(*args, **kwargs)
        except BaseException as error:
            _DELEGATING.reset(token)
            _finish(started, error)
            raise
        _DELEGATING.reset(token)
        _finish(started, None)
        return result

    return invoke()


def iterate_sync(framework: str, identity: Callable[[], Identity], source: Callable[[], Iterator[Any]]) -> Any:
    """A generator entry point (``stream``): the run is open from the first item until the
    generator is exhausted, fails or is closed."""
    if not should_open(framework):
        return source()

    def items() -> Iterator[Any]:
        started = _start(identity)
        inner = source()
        try:
            yield from inner
        except BaseException as error:
            _finish(started, None if isinstance(error, GeneratorExit) else error)
            raise
        _finish(started, None)

    return items()


def iterate_async(framework: str, identity: Callable[[], Identity], source: Callable[[], AsyncIterator[Any]]) -> Any:
    """An async generator entry point (``astream``), as ``iterate_sync``."""
    if not should_open(framework):
        return source()

    async def items() -> AsyncIterator[Any]:
        started = _start(identity)
        inner = source()
        try:
            async for item in inner:
                yield item
        except BaseException as error:
            closer = getattr(inner, "aclose", None)
            if closer is not None:
                try:
                    await closer()
                except Exception:
                    log.debug("spendfuse: closing a framework stream failed", exc_info=True)
            _finish(started, None if isinstance(error, GeneratorExit) else error)
            raise
        _finish(started, None)

    return items()


class RunningAsyncContext:
    """An async context manager (``Agent.iter``) whose run lasts from enter to exit.

    ``adopt`` sees the entered value and may name the run after the framework's own run id.
    """

    def __init__(
        self,
        inner: Any,
        identity: Callable[[], Identity],
        framework: str,
        adopt: Callable[[Run, Any], None] | None = None,
    ) -> None:
        self._inner = inner
        self._identity = identity
        self._framework = framework
        self._adopt = adopt
        self._started: tuple[run, Run] | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def __aenter__(self) -> Any:
        self._started = _start(self._identity)
        try:
            value = await self._inner.__aenter__()
        except BaseException as error:
            _finish(self._started, error)
            raise
        if self._started is not None and self._adopt is not None:
            try:
                self._adopt(self._started[1], value)
            except Exception:
                log.debug("spendfuse: could not read the framework's run id", exc_info=True)
        return value

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> Any:
        try:
            suppressed = await self._inner.__aexit__(exc_type, exc, tb)
        except BaseException as error:
            _finish(self._started, error)
            raise
        _finish(self._started, None if suppressed else exc)
        return suppressed


class PrivateRun:
    """A run opened in a private copy of the context, for work the framework hands to a task it
    creates (a streamed run): the task inherits the run, the caller's context is left as it was,
    and the run ends when ``finish`` is called from anywhere."""

    def __init__(self, identity: Callable[[], Identity]) -> None:
        self.context = contextvars.copy_context()
        self._started = self.context.run(_start, identity)
        self._done = False

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return self.context.run(fn, *args, **kwargs)

    def finish(self, error: BaseException | None) -> None:
        if self._done:
            return
        self._done = True
        try:
            self.context.run(_finish, self._started, error)
        except RuntimeError:  # the context is entered right now (finished from inside the task)
            _finish(self._started, error)
