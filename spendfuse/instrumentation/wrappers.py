"""The thin sync and async shells around each SDK's ``request`` method.

The SDK call sits alone in its ``try``: reading the request (``begin``) happens before it, and
handling the result (``on_result``) after it, each catching its own errors. While the SDK sends
the request the call span is the current span, so spans and log records made meanwhile (an HTTP
instrumentation, an event hook) are its children; it is detached again before control returns to
the caller, in the same context it was attached in. A context variable guards re-entry, so a
helper that calls ``create`` internally, or a client subclass whose ``request`` calls its
parent's, is budgeted and traced once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any

from spendfuse import runtime
from spendfuse.instrumentation.attempts import CURRENT_CALL
from spendfuse.instrumentation.call import ModelCall, begin
from spendfuse.instrumentation.provider import Provider

_IN_CALL: ContextVar[bool] = ContextVar("spendfuse_in_call", default=False)

Wrapper = Callable[[Callable[..., Any], Any, tuple[Any, ...], dict[str, Any]], Any]


def sync_wrapper(provider: Provider) -> Wrapper:
    def wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        active = runtime.current()
        if active is None or _IN_CALL.get():
            return wrapped(*args, **kwargs)
        call = begin(active, provider, instance, args, kwargs)
        if call is None:
            return wrapped(*args, **kwargs)
        token = _IN_CALL.set(True)
        call_token = CURRENT_CALL.set(call if isinstance(call, ModelCall) else None)  # see ``attempts``
        span_token = call.enter()
        try:
            result = wrapped(*args, **kwargs)
        except BaseException as error:
            call.leave(span_token)
            CURRENT_CALL.reset(call_token)
            _IN_CALL.reset(token)
            call.on_error(error)
            raise
        call.leave(span_token)
        CURRENT_CALL.reset(call_token)
        _IN_CALL.reset(token)
        return call.on_result(result)

    return wrapper


def async_wrapper(provider: Provider) -> Wrapper:
    def wrapper(
        wrapped: Callable[..., Awaitable[Any]], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Awaitable[Any]:
        async def run() -> Any:
            active = runtime.current()
            if active is None or _IN_CALL.get():
                return await wrapped(*args, **kwargs)
            call = begin(active, provider, instance, args, kwargs)
            if call is None:
                return await wrapped(*args, **kwargs)
            token = _IN_CALL.set(True)
            call_token = CURRENT_CALL.set(call if isinstance(call, ModelCall) else None)  # see ``attempts``
            span_token = call.enter()
            try:
                result = await wrapped(*args, **kwargs)
            except BaseException as error:
                call.leave(span_token)
                CURRENT_CALL.reset(call_token)
                _IN_CALL.reset(token)
                call.on_error(error)
                raise
            call.leave(span_token)
            CURRENT_CALL.reset(call_token)
            _IN_CALL.reset(token)
            return call.on_result(result)

        return run()

    return wrapper
