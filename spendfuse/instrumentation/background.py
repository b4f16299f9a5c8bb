"""OpenAI background responses: settled from the usage the SDK retrieves later.

``responses.create(background=True)`` answers ``queued`` (or ``in_progress``) with no usage: the
model has not run yet. Settling then would charge an input-only estimate, so the call is held,
its reservation in flight and its span open, under the response id. Any later request for that
response settles it once it is final (``completed``, ``incomplete``, ``failed``, ``cancelled``):
``responses.retrieve`` and polling (GET ``/responses/{id}``), a stream resumed by id (GET with
``stream=true``: settled by its ``response.completed`` event) and ``responses.cancel``. A held
call that nothing settles within ``lease_seconds`` (the lease the store would expire it at), or
that is still held when the process exits, is charged its reservation, as any call whose answer
we never learn.
"""

from __future__ import annotations

import json
import threading
import time
from typing import TYPE_CHECKING, Any

from spendfuse._exit import at_exit_and_fork
from spendfuse._log import log_internal_error
from spendfuse.instrumentation.records import ResponseInfo
from spendfuse.instrumentation.streams import watch_stream

if TYPE_CHECKING:
    from spendfuse.instrumentation.call import ModelCall
    from spendfuse.instrumentation.provider import Provider

WAITING = frozenset({"queued", "in_progress"})
FINAL = frozenset({"completed", "incomplete", "failed", "cancelled"})

_held: dict[str, tuple[ModelCall, float]] = {}  # response id -> (call, deadline)
_lock = threading.Lock()


def waiting() -> bool:
    """Whether any call is held (a dict read: the fast path of every request that is no model call)."""
    return bool(_held)


def hold(call: ModelCall, response_id: str, lease_seconds: float) -> None:
    with _lock:
        _held[response_id] = (call, time.monotonic() + lease_seconds)
    _expire()


def _release(response_id: str) -> ModelCall | None:
    with _lock:
        entry = _held.pop(response_id, None)
    return None if entry is None else entry[0]


def _expire(now: float | None = None) -> None:
    now = time.monotonic() if now is None else now
    with _lock:
        expired = [key for key, (_, deadline) in _held.items() if deadline <= now]
        calls = [_held.pop(key)[0] for key in expired]
    for call in calls:  # outside the lock: settling takes the breaker's
        call.finish(None, complete=False, reason="expired")


def _end_all() -> None:
    _expire(float("inf"))


def _forget_parent_calls() -> None:
    _held.clear()  # a forked child: the parent settles its own held calls


at_exit_and_fork(_end_all, _forget_parent_calls)


def response_id_of(url: str) -> str | None:
    """The id in ``.../responses/{id}`` or ``.../responses/{id}/cancel``, else None."""
    parts = url.split("?", 1)[0].rstrip("/").split("/")
    if len(parts) >= 2 and parts[-1] == "cancel":
        parts = parts[:-1]
    if len(parts) >= 2 and parts[-2] == "responses" and parts[-1]:
        return parts[-1]
    return None


def follower(provider: Provider, options: Any) -> Follower | None:
    """A request about a held background response, or None."""
    if provider.name != "openai":
        return None
    _expire()
    response_id = response_id_of(str(options.url))
    if response_id is None or response_id not in _held:
        return None
    return Follower(provider, response_id)


class _Resumed:
    """The ``StreamCall`` of a stream resumed by id: settles the held call from its final event."""

    __slots__ = ("_follower",)

    def __init__(self, owner: Follower) -> None:
        self._follower = owner

    def first_chunk(self) -> None:
        pass

    def finish(
        self, info: ResponseInfo | None, *, complete: bool = True, error: BaseException | None = None,
        reason: str = "complete",
    ) -> None:  # fmt: skip
        self._follower.settle(info)


class Follower:
    """A retrieve, poll, resumed stream or cancel of a held background response.

    It has the shape the SDK shells expect of a call (``enter``, ``leave``, ``on_result``,
    ``on_error``) but is no call of its own: no span, no admission, no turn.
    """

    __slots__ = ("provider", "response_id")

    def __init__(self, provider: Provider, response_id: str) -> None:
        self.provider = provider
        self.response_id = response_id

    def enter(self) -> object:
        return None

    @staticmethod
    def leave(token: object) -> None:
        pass

    def on_error(self, error: BaseException) -> None:
        pass  # a failed poll says nothing about the response: still held

    def on_result(self, result: Any) -> Any:
        try:
            provider = self.provider
            if isinstance(result, provider.stream_types):
                reader = provider.stream_reader("responses", False)
                return watch_stream(result, _Resumed(self), reader)
            if isinstance(result, provider.raw_response_types):
                content = getattr(getattr(result, "http_response", None), "_content", None)
                if content is not None:
                    self.settle(provider.read_response("responses", json.loads(content)))
                return result
            self.settle(provider.read_response("responses", result))
        except Exception:
            log_internal_error("reading a background response")
        return result

    def settle(self, info: ResponseInfo | None) -> None:
        """Settle the held call when ``info`` is the response in a final state with its usage."""
        if info is None or not info.finish_reasons:
            return
        status = info.finish_reasons[-1]
        if status in WAITING:
            return
        if info.usage is None and status not in FINAL:
            return
        call = _release(self.response_id)
        if call is not None:
            call.finish(info)
