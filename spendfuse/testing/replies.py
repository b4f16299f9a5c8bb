"""Scripted replies: what the fake provider answers to the next request.

A ``Reply`` is provider-neutral; the same script works for Anthropic Messages, OpenAI chat
completions and the Responses API, each rendered in its own wire format.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from spendfuse.testing.usage import FakeUsage

ReplyKind = Literal["text", "tool_call", "error", "stream_failure", "malformed_json"]

DEFAULT_TEXT = "Hello from the fake provider."
STREAM_FAILURE_TEXT = "This reply will be cut off before it ends."


@dataclass(frozen=True)
class ToolCall:
    """One tool call the fake model requests; ``call_id`` None means "allocate one"."""

    name: str
    arguments_json: str
    call_id: str | None = None

    @property
    def arguments(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.arguments_json)
        return parsed


@dataclass(frozen=True)
class Reply:
    """One scripted answer. Build it with the class methods, not the constructor.

    ``content`` holds the reply text (the ``text`` name belongs to the ``Reply.text`` constructor).
    """

    kind: ReplyKind
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    usage: FakeUsage | None = None
    include_usage: bool = True
    stop_reason: str | None = None
    status: int = 200
    message: str | None = None
    error_type: str | None = None
    retry_after: float | None = None
    after_events: int = 0
    model: str | None = None  # the model the response names; None: the request's model

    def answered_by(self, model: str) -> Reply:
        """This reply, naming ``model`` as the model that answered (an Azure deployment answers
        with the name of the model it serves, e.g. ``gpt-4o-2024-11-20``)."""
        return dataclasses.replace(self, model=model)

    @classmethod
    def text(cls, text: str, *, usage: FakeUsage | None = None, stop_reason: str | None = None) -> Reply:
        """A plain text answer; ``stop_reason`` in either vocabulary (``end_turn`` / ``stop``, ...)."""
        return cls(kind="text", content=text, usage=usage, stop_reason=stop_reason)

    @classmethod
    def tool_call(
        cls,
        name: str,
        arguments: Mapping[str, Any],
        *,
        call_id: str | None = None,
        text: str | None = None,
        usage: FakeUsage | None = None,
    ) -> Reply:
        """The model asks for one tool (Anthropic ``tool_use``, OpenAI ``tool_calls`` /
        Responses ``function_call``), optionally after some text."""
        call = ToolCall(name=name, arguments_json=json.dumps(dict(arguments)), call_id=call_id)
        return cls(kind="tool_call", content=text or "", tool_calls=(call,), usage=usage)

    @classmethod
    def error(
        cls,
        status: int,
        *,
        message: str | None = None,
        error_type: str | None = None,
        retry_after: float | None = None,
    ) -> Reply:
        """An HTTP error with the provider's own error body; ``error_type`` overrides the type
        derived from the status (e.g. ``"overloaded_error"`` for Anthropic 529)."""
        if not 400 <= status <= 599:
            raise ValueError(f"an error reply needs a 4xx or 5xx status, got {status}")
        return cls(kind="error", status=status, message=message, error_type=error_type, retry_after=retry_after)

    @classmethod
    def stream_failure(cls, after_events: int, text: str = STREAM_FAILURE_TEXT) -> Reply:
        """A stream that delivers ``after_events`` SSE events (Anthropic's ``ping`` counts), then
        the connection breaks without the end of the chunked body.

        A non-streaming request gets half of its JSON body before the break. The SDKs surface it
        differently: OpenAI raises ``openai.APIConnectionError``; Anthropic raises
        ``anthropic.APIConnectionError`` for a plain call but lets ``httpx2.RemoteProtocolError``
        out of a stream iterator.
        """
        if after_events < 0:
            raise ValueError("after_events must not be negative")
        return cls(kind="stream_failure", content=text, after_events=after_events)

    @classmethod
    def malformed_json(cls) -> Reply:
        """HTTP 200 whose body (or first SSE event) is truncated JSON; both SDKs then raise a bare
        ``json.JSONDecodeError``."""
        return cls(kind="malformed_json")

    @classmethod
    def no_usage(cls, text: str) -> Reply:
        """A normal text reply with every usage field left out of the response and stream.

        Real for OpenAI-compatible servers; the Anthropic API always reports usage, and the
        Anthropic SDK's ``messages.stream()`` helper fails (AttributeError) without it, while raw
        ``stream=True`` iteration and ``messages.create`` cope (``message.usage`` is None).
        """
        return cls(kind="text", content=text, include_usage=False)


DEFAULT_REPLY = Reply(kind="text", content=DEFAULT_TEXT)
