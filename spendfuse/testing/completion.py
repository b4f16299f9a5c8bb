"""Turn a scripted ``Reply`` into the concrete answer to one request.

This is where ids are fixed, the output cap is applied and usage is decided, so that every wire
format renders exactly the same answer.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from spendfuse.testing.replies import Reply
from spendfuse.testing.usage import Api, FakeUsage, default_input_tokens, output_cap

# Canonical stop reasons use Anthropic's vocabulary; OpenAI's names are accepted as aliases.
_OPENAI_TO_STOP_REASON = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
}
_STOP_REASON_TO_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
_INCOMPLETE_REASONS = {"max_tokens": "max_output_tokens", "refusal": "content_filter"}

_WORD = re.compile(r"\S+")

IdAllocator = Callable[[str], str]


@dataclass(frozen=True)
class ResolvedToolCall:
    call_id: str
    item_id: str
    name: str
    arguments_json: str


@dataclass(frozen=True)
class Completion:
    """The answer to one request, provider-neutral. ``usage`` None means "report no usage"."""

    response_id: str
    message_id: str
    model: str
    text: str
    tool_calls: tuple[ResolvedToolCall, ...]
    stop_reason: str
    usage: FakeUsage | None
    created: int

    @property
    def finish_reason(self) -> str:
        """OpenAI chat ``finish_reason``."""
        return _STOP_REASON_TO_FINISH.get(self.stop_reason, self.stop_reason)

    @property
    def incomplete_reason(self) -> str | None:
        """Responses ``incomplete_details.reason``, or None for a completed response."""
        return _INCOMPLETE_REASONS.get(self.stop_reason)


def _truncate_words(text: str, limit: int) -> str:
    if limit <= 0:
        return ""
    for count, match in enumerate(_WORD.finditer(text), start=1):
        if count == limit:
            return text[: match.end()]
    return text


def _response_prefixes(api: Api) -> tuple[str, str]:
    if api == "messages":
        return "msg_fake_", "msg_fake_"
    if api == "chat":
        return "chatcmpl-fake-", "chatcmpl-fake-"
    return "resp_fake_", "msg_fake_"


def resolve(
    reply: Reply,
    *,
    api: Api,
    body: Mapping[str, Any],
    provider_usage: FakeUsage | None,
    new_id: IdAllocator,
) -> Completion:
    """Apply ids, the request's output cap and the usage rule to ``reply``."""
    text = reply.content
    tool_calls = reply.tool_calls
    stop_reason = reply.stop_reason
    if stop_reason is not None:
        stop_reason = _OPENAI_TO_STOP_REASON.get(stop_reason, stop_reason)

    explicit_usage = reply.usage or provider_usage
    usage: FakeUsage | None
    if explicit_usage is not None:
        usage = explicit_usage
    else:
        words = len(_WORD.findall(text))
        cap = output_cap(api, body)
        if cap is not None and words + len(tool_calls) > cap:
            # Like the real APIs: the answer is cut where the budget runs out.
            kept_words = min(words, cap)
            text = _truncate_words(text, kept_words)
            tool_calls = tool_calls[: cap - kept_words]
            stop_reason = "max_tokens"
            words = kept_words
        usage = FakeUsage(input_tokens=default_input_tokens(api, body), output_tokens=words + len(tool_calls))

    if stop_reason is None:
        stop_reason = "tool_use" if tool_calls else "end_turn"

    response_prefix, message_prefix = _response_prefixes(api)
    response_id = new_id(response_prefix)
    message_id = response_id if message_prefix == response_prefix else new_id(message_prefix)
    call_prefix = "toolu_fake_" if api == "messages" else "call_fake_"
    resolved_calls = tuple(
        ResolvedToolCall(
            call_id=call.call_id or new_id(call_prefix),
            item_id=new_id("fc_fake_") if api == "responses" else "",
            name=call.name,
            arguments_json=call.arguments_json,
        )
        for call in tool_calls
    )
    model = reply.model or body.get("model")
    return Completion(
        response_id=response_id,
        message_id=message_id,
        model=model if isinstance(model, str) else "fake-model",
        text=text,
        tool_calls=resolved_calls,
        stop_reason=stop_reason,
        usage=usage if reply.include_usage else None,
        created=int(time.time()),
    )
