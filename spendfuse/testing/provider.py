"""The fake provider: request router, reply script and request log.

One ``FakeProvider`` answers Anthropic Messages, OpenAI chat completions and the OpenAI Responses
API. Reach it in-process through the ``httpx2`` mock transports (``transport()``,
``async_transport()``, the ``*_client()`` helpers) or over a real socket with ``FakeServer``.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from spendfuse.testing import clients, render, transport
from spendfuse.testing.body import EventStream, PreparedResponse, StreamOutcome
from spendfuse.testing.completion import Completion, resolve
from spendfuse.testing.errors_wire import ProviderName, error_body
from spendfuse.testing.records import RecordedRequest
from spendfuse.testing.replies import DEFAULT_REPLY, Reply
from spendfuse.testing.routing import guess_provider, route, validation_error
from spendfuse.testing.usage import Api, FakeUsage

if TYPE_CHECKING:
    import anthropic
    import httpx2
    import openai

Responder = Callable[[RecordedRequest], Reply]

_JSON = "application/json"
_SSE = "text/event-stream; charset=utf-8"


class FakeProvider:
    """A scripted, deterministic stand-in for the Anthropic and OpenAI APIs.

    ``latency`` seconds pass before every response starts; ``chunk_delay`` seconds pass between
    SSE events. ``usage`` fixes the usage of every reply that does not carry its own; otherwise
    the rule in ``spendfuse.testing.usage`` applies. ``responder`` answers when the script queue
    is empty; without one the answer is "Hello from the fake provider.".
    """

    def __init__(
        self,
        *,
        latency: float = 0.0,
        chunk_delay: float = 0.0,
        usage: FakeUsage | None = None,
        responder: Responder | None = None,
    ) -> None:
        self.latency = latency
        self.chunk_delay = chunk_delay
        self.usage = usage
        self.responder = responder
        self._changed = threading.Condition()
        self._queue: deque[Reply] = deque()
        self._requests: list[RecordedRequest] = []
        self._counters: dict[str, int] = {}

    # -- script and log ---------------------------------------------------------------------------

    def enqueue(self, *replies: Reply) -> None:
        """Script the next replies, answered in order before the responder is consulted."""
        with self._changed:
            self._queue.extend(replies)

    @property
    def pending_replies(self) -> int:
        with self._changed:
            return len(self._queue)

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received so far, oldest first."""
        with self._changed:
            return list(self._requests)

    @property
    def request_count(self) -> int:
        with self._changed:
            return len(self._requests)

    @property
    def last_request(self) -> RecordedRequest | None:
        with self._changed:
            return self._requests[-1] if self._requests else None

    def reset(self) -> None:
        """Forget requests, scripted replies and id counters."""
        with self._changed:
            self._queue.clear()
            self._requests.clear()
            self._counters.clear()
            self._changed.notify_all()

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
        """Block until ``predicate()`` holds, re-checking after every request or stream update.

        Over a real socket a stream ends on the server thread, after the client has moved on.
        """
        with self._changed:
            return self._changed.wait_for(predicate, timeout)

    # -- transports and clients -------------------------------------------------------------------

    def transport(self) -> httpx2.MockTransport:
        """For ``httpx2.Client(transport=...)``; it also serves ``httpx2.AsyncClient``."""
        return transport.mock_transport(self)

    def async_transport(self) -> httpx2.MockTransport:
        """For ``httpx2.AsyncClient(transport=...)``; waits with ``asyncio.sleep``."""
        return transport.mock_transport(self)

    def httpx_transport(self) -> Any:
        """The same fake for SDK releases built on the original ``httpx`` (needs ``httpx``);
        an ``httpx.MockTransport`` for ``httpx.Client`` and ``httpx.AsyncClient``."""
        return transport.legacy_httpx_transport(self)

    def _transport_for(self, sdk_name: str) -> Any:
        # SDK releases before the switch to httpx2 take an httpx transport instead.
        return self.transport() if clients.uses_httpx2(sdk_name) else self.httpx_transport()

    def anthropic_client(self, **kwargs: Any) -> anthropic.Anthropic:
        return clients.anthropic_client(transport=self._transport_for("anthropic"), **kwargs)

    def async_anthropic_client(self, **kwargs: Any) -> anthropic.AsyncAnthropic:
        return clients.async_anthropic_client(transport=self._transport_for("anthropic"), **kwargs)

    def openai_client(self, **kwargs: Any) -> openai.OpenAI:
        return clients.openai_client(transport=self._transport_for("openai"), **kwargs)

    def async_openai_client(self, **kwargs: Any) -> openai.AsyncOpenAI:
        return clients.async_openai_client(transport=self._transport_for("openai"), **kwargs)

    # -- the router ---------------------------------------------------------------------------------

    def handle(self, method: str, path: str, query: str, headers: Mapping[str, str], body: bytes) -> PreparedResponse:
        """Answer one HTTP request. Transports call this, then apply latency and pacing."""
        lower_headers = {key.lower(): value for key, value in headers.items()}
        parsed = _parse_json(body)
        routed = route(path)
        provider_name: ProviderName = routed[0] if routed else guess_provider(lower_headers)
        api: Api | None = routed[1] if routed else None
        with self._changed:
            record = RecordedRequest(
                index=len(self._requests),
                method=method.upper(),
                path=path,
                query=dict(parse_qsl(query)),
                headers=lower_headers,
                body=body,
                json=parsed,
                provider=provider_name,
                api=api,
                stream=isinstance(parsed, dict) and parsed.get("stream") is True,
                time=time.time(),
            )
            self._requests.append(record)
            self._changed.notify_all()

        if api is None:
            return self._error(record, 404, message=f"Unknown route: {record.method} {path}")
        if record.method != "POST":
            return self._error(record, 405, message=f"Method {record.method} is not allowed on {path}")
        problem = validation_error(api, parsed)
        if problem is not None:
            return self._error(record, 400, message=problem)

        reply = self._next_reply(record)
        if reply.kind == "error":
            return self._error(
                record,
                reply.status,
                message=reply.message,
                error_type=reply.error_type,
                retry_after=reply.retry_after,
                reply=reply,
            )
        request: dict[str, Any] = parsed
        completion = resolve(reply, api=api, body=request, provider_usage=self.usage, new_id=self._new_id)
        with self._changed:
            record.reply = reply
            record.response_id = completion.response_id
            record.usage = completion.usage
        return self._answer(record, api, request, reply, completion)

    # -- internals ----------------------------------------------------------------------------------

    def _new_id(self, prefix: str) -> str:
        with self._changed:
            number = self._counters.get(prefix, 0) + 1
            self._counters[prefix] = number
        return f"{prefix}{number:04d}"

    def _next_reply(self, record: RecordedRequest) -> Reply:
        with self._changed:
            if self._queue:
                return self._queue.popleft()
        if self.responder is None:
            return DEFAULT_REPLY
        try:
            return self.responder(record)
        except Exception as exc:
            # Surfaced to the SDK caller as a 500 so a broken test responder is loud, not a hang.
            return Reply.error(500, message=f"fake provider responder failed: {exc!r}")

    def _headers(self, record: RecordedRequest, content_type: str) -> tuple[dict[str, str], str]:
        request_id = self._new_id("req_fake_")
        id_header = "request-id" if record.provider == "anthropic" else "x-request-id"
        return {"content-type": content_type, id_header: request_id}, request_id

    def _error(
        self,
        record: RecordedRequest,
        status: int,
        *,
        message: str | None = None,
        error_type: str | None = None,
        retry_after: float | None = None,
        reply: Reply | None = None,
    ) -> PreparedResponse:
        headers, request_id = self._headers(record, _JSON)
        if retry_after is not None:
            headers["retry-after"] = f"{retry_after:g}"
        payload = error_body(record.provider, status, message=message, error_type=error_type, request_id=request_id)
        with self._changed:
            record.status = status
            record.reply = reply
            record.outcome = "completed"
            self._changed.notify_all()
        return PreparedResponse(status=status, headers=headers, body=render.dumps(payload))

    def _answer(
        self, record: RecordedRequest, api: Api, request: dict[str, Any], reply: Reply, c: Completion
    ) -> PreparedResponse:
        streamed = record.stream
        headers, _ = self._headers(record, _SSE if streamed else _JSON)
        with self._changed:
            record.status = 200

        if reply.kind == "malformed_json":
            if streamed:
                return PreparedResponse(200, headers, self._stream(record, [render.malformed_event(api, c, request)]))
            whole = render.document(api, c, request)
            return self._finished(record, PreparedResponse(200, headers, whole[: len(whole) // 2]))

        if reply.kind == "stream_failure":
            if streamed:
                chunks = render.sse_chunks(api, c, request)
                return PreparedResponse(200, headers, self._stream(record, chunks, break_after=reply.after_events))
            # A plain JSON call fails the same way: half the body, then the connection drops.
            whole = render.document(api, c, request)
            return PreparedResponse(200, headers, self._stream(record, [whole[: len(whole) // 2]], break_after=1))

        if streamed:
            return PreparedResponse(200, headers, self._stream(record, render.sse_chunks(api, c, request)))
        return self._finished(record, PreparedResponse(200, headers, render.document(api, c, request)))

    def _finished(self, record: RecordedRequest, response: PreparedResponse) -> PreparedResponse:
        with self._changed:
            record.outcome = "completed"
            self._changed.notify_all()
        return response

    def _stream(
        self,
        record: RecordedRequest,
        chunks: Iterable[bytes],
        *,
        break_after: int | None = None,
    ) -> EventStream:
        def sent() -> None:
            with self._changed:
                record.events_sent += 1
                self._changed.notify_all()

        def ended(outcome: StreamOutcome) -> None:
            with self._changed:
                record.outcome = outcome
                self._changed.notify_all()

        return EventStream(chunks, break_after=break_after, on_chunk=sent, on_end=ended)


def _parse_json(body: bytes) -> Any:
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None
