"""The SDK's own retries, seen from inside its ``request``: every attempt admitted before it is sent.

Both SDKs retry inside ``request`` and call ``self._sleep_for_retry(..., response=...)`` (awaited
on the async clients) before every retry, from the ``except`` block that caught the failed
attempt -- or, for an error status Anthropic passes through its middleware, with the response in
hand. The wrapper here runs before the SDK sleeps: it reaches the call in flight through
``CURRENT_CALL`` (set by the shells in ``wrappers``) and lets it close the failed attempt and admit
the next one, raising ``BudgetExceeded`` there when the next attempt no longer fits -- before the
backoff, so the caller does not wait for a refusal.

How an attempt ended decides what it may have cost (``outcome``):

* ``ANSWERED``: the provider answered with an error status; it generated nothing.
* ``UNSENT``: the request never left (connection refused, connect or pool timeout, the body not
  written); the provider cannot have billed it.
* ``UNANSWERED``: sent, and no answer came (read timeout, connection reset or closed after the
  body left); the provider may have billed it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from spendfuse._log import log_internal_error

if TYPE_CHECKING:
    from spendfuse.instrumentation.call import ModelCall

# The call whose SDK ``request`` is running in this context (thread or task).
CURRENT_CALL: ContextVar[ModelCall | None] = ContextVar("spendfuse_current_call", default=None)

ANSWERED = "answered"
UNSENT = "unsent"
UNANSWERED = "unanswered"

# httpx and httpx2 (and the httpcore layers under them) raise these when the request did not leave
# whole: no connection was made, none was free in the pool, or the body could not be written. The
# provider reads a request only once its body is complete, so none of these can have been billed.
_UNSENT_ERRORS = frozenset({
    "ConnectError", "ConnectTimeout", "PoolTimeout", "WriteError", "WriteTimeout",
    "UnsupportedProtocol", "ProxyError", "LocalProtocolError",
})  # fmt: skip
_TRANSPORT_MODULES = frozenset({"httpx", "httpx2", "httpcore", "httpcore2"})


def _transport_error(error: BaseException) -> bool:
    return type(error).__module__.partition(".")[0] in _TRANSPORT_MODULES


def _connection_error(error: BaseException) -> bool:
    # The SDKs' APIConnectionError (APITimeoutError is a subclass): matched by name, so that
    # neither SDK has to be imported and both (and their forks) are recognized.
    return any(cls.__name__ == "APIConnectionError" for cls in type(error).__mro__)


def failure(error: BaseException | None) -> str | None:
    """How a request that raised ``error`` ended: ``UNSENT``, ``UNANSWERED``, or None when ``error``
    is no transport failure (an error status, a body that could not be read, anything else).

    The SDKs wrap the transport's exception (``raise APITimeoutError(...) from err``), so the chain
    of causes is walked to find it.
    """
    seen: set[int] = set()
    current = error
    sdk_connection = False
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if _transport_error(current):
            names = {cls.__name__ for cls in type(current).__mro__}
            if names & _UNSENT_ERRORS:
                return UNSENT
            if "TransportError" in names or "TimeoutException" in names or "RequestError" in names:
                return UNANSWERED
        if _connection_error(current):
            sdk_connection = True
        current = current.__cause__ or current.__context__
    # An SDK connection error without a transport error under it (a TLS or stream error of anyio):
    # the request may have left.
    return UNANSWERED if sdk_connection else None


def outcome(response: Any, error: BaseException | None) -> str:
    """How the attempt the SDK is about to retry ended (``response``: the error-status answer)."""
    if response is not None:
        return ANSWERED
    # Without an answer and without a recognizable cause (a middleware's retryable error), the
    # request is taken to have left: charging it is the side that never lets a budget be overrun.
    return failure(error) or UNANSWERED


def sleep_wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``_sleep_for_retry``, sync and async alike: the work is done when it is called, before the
    SDK sleeps (an async client's coroutine is returned unchanged and awaited by the SDK)."""
    call = CURRENT_CALL.get()
    if call is not None:
        # Called from the SDK's ``except`` block: the exception it caught is the one handled now
        # (also inside the async client's coroutine, whose frames share the exception state).
        error = sys.exc_info()[1]
        try:
            response = kwargs.get("response")
        except Exception:
            log_internal_error("reading a retry")
            response = None
        call.retrying(outcome(response, error))  # raises only a deliberate budget error
    return wrapped(*args, **kwargs)
