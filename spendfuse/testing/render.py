"""Render a ``Completion`` as the body of the API that was called: JSON bytes or SSE chunks."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from spendfuse.testing import anthropic_wire, openai_chat_wire, openai_responses_wire
from spendfuse.testing.body import sse_event
from spendfuse.testing.completion import Completion
from spendfuse.testing.usage import Api

SseItem = tuple[str | None, object]


def dumps(payload: object) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


def document(api: Api, c: Completion, request: Mapping[str, Any]) -> bytes:
    if api == "messages":
        return dumps(anthropic_wire.message_body(c))
    if api == "chat":
        return dumps(openai_chat_wire.completion_body(c))
    return dumps(openai_responses_wire.response_body(c, request))


def _events(api: Api, c: Completion, request: Mapping[str, Any]) -> Iterator[SseItem]:
    if api == "messages":
        return anthropic_wire.message_events(c)
    if api == "chat":
        include_usage = openai_chat_wire.wants_stream_usage(request)
        return openai_chat_wire.completion_chunks(c, include_usage=include_usage)
    return openai_responses_wire.response_events(c, request)


def sse_chunks(api: Api, c: Completion, request: Mapping[str, Any]) -> Iterator[bytes]:
    """One encoded SSE event per chunk, generated only as the consumer asks for it."""
    return (sse_event(data, name) for name, data in _events(api, c, request))


def malformed_event(api: Api, c: Completion, request: Mapping[str, Any]) -> bytes:
    """The stream's first event with its JSON cut in half."""
    name, data = next(_events(api, c, request))
    text = json.dumps(data, separators=(",", ":"))
    return sse_event(text[: len(text) // 2], name)
