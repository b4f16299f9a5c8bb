"""``@spendfuse.tool``: an ``execute_tool {name}`` span around each call of a tool function."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar, cast, overload

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from spendfuse import runtime
from spendfuse._log import log_internal_error
from spendfuse.telemetry import names

F = TypeVar("F", bound=Callable[..., Any])


@contextmanager
def _tool_span(name: str) -> Iterator[Span]:
    span = runtime.tracer().start_span(
        f"{names.OPERATION_EXECUTE_TOOL} {name}",
        kind=SpanKind.INTERNAL,
        attributes={
            names.GEN_AI_OPERATION_NAME: names.OPERATION_EXECUTE_TOOL,
            names.GEN_AI_TOOL_NAME: name,
            names.GEN_AI_TOOL_TYPE: "function",
        },
    )
    try:
        with trace.use_span(span, end_on_exit=False, record_exception=False, set_status_on_exception=False):
            try:
                yield span
            except BaseException as exc:
                span.set_attribute(names.ERROR_TYPE, type(exc).__qualname__)
                span.set_status(Status(StatusCode.ERROR, str(exc)[:200]))
                raise
    finally:
        try:
            span.end()
        except Exception:
            log_internal_error("ending a tool span")


def _decorate(fn: F, name: str) -> F:
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            with _tool_span(name):
                return await fn(*args, **kwargs)

        return cast(F, async_wrapper)

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with _tool_span(name):
            return fn(*args, **kwargs)

    return cast(F, wrapper)


@overload
def tool(fn: F, /) -> F: ...
@overload
def tool(*, name: str | None = None) -> Callable[[F], F]: ...
def tool(fn: F | None = None, /, *, name: str | None = None) -> F | Callable[[F], F]:
    """Trace a tool function: ``@spendfuse.tool`` or ``@spendfuse.tool(name="search")``."""
    if fn is not None:
        return _decorate(fn, name or fn.__name__)
    return lambda f: _decorate(f, name or f.__name__)
