"""OpenAI Chat Completions wire format: ``chat.completion`` JSON and ``chat.completion.chunk`` SSE.

Stream shape, as the API sends it: a first chunk with the role, content deltas word by word,
tool-call argument fragments, a chunk carrying ``finish_reason``, then -- only when the request
set ``stream_options.include_usage`` -- a chunk with empty ``choices`` and the usage (every
earlier chunk then has ``"usage": null``), then ``data: [DONE]``. Without ``include_usage`` a
stream carries no usage at all.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from spendfuse.testing.completion import Completion
from spendfuse.testing.pieces import argument_pieces, text_pieces
from spendfuse.testing.usage import FakeUsage

SseItem = tuple[str | None, object]

SYSTEM_FINGERPRINT = "fp_fake"


def usage_fields(usage: FakeUsage) -> dict[str, Any]:
    # prompt_tokens is the whole prompt; cached_tokens is the part of it read from cache.
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {
            "cached_tokens": usage.cache_read_tokens,
            "cache_write_tokens": usage.cache_write_tokens,
            "audio_tokens": 0,
        },
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def wants_stream_usage(body: Mapping[str, Any]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, Mapping) and options.get("include_usage") is True


def completion_body(c: Completion) -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": c.text if c.text or not c.tool_calls else None,
        "refusal": None,
        "annotations": [],
    }
    if c.tool_calls:
        message["tool_calls"] = [
            {
                "id": call.call_id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments_json},
            }
            for call in c.tool_calls
        ]
    body: dict[str, Any] = {
        "id": c.response_id,
        "object": "chat.completion",
        "created": c.created,
        "model": c.model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": c.finish_reason}],
        "service_tier": "default",
        "system_fingerprint": SYSTEM_FINGERPRINT,
    }
    if c.usage is not None:
        body["usage"] = usage_fields(c.usage)
    return body


def completion_chunks(c: Completion, *, include_usage: bool) -> Iterator[SseItem]:
    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> SseItem:
        data: dict[str, Any] = {
            "id": c.response_id,
            "object": "chat.completion.chunk",
            "created": c.created,
            "model": c.model,
            "service_tier": "default",
            "system_fingerprint": SYSTEM_FINGERPRINT,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
        }
        if include_usage:
            data["usage"] = None
        return None, data

    content_start = "" if c.text or not c.tool_calls else None
    yield chunk({"role": "assistant", "content": content_start, "refusal": None})
    for piece in text_pieces(c.text):
        yield chunk({"content": piece})
    for index, call in enumerate(c.tool_calls):
        yield chunk(
            {
                "tool_calls": [
                    {
                        "index": index,
                        "id": call.call_id,
                        "type": "function",
                        "function": {"name": call.name, "arguments": ""},
                    }
                ]
            }
        )
        for piece in argument_pieces(call.arguments_json):
            yield chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
    yield chunk({}, c.finish_reason)

    if include_usage and c.usage is not None:
        yield (
            None,
            {
                "id": c.response_id,
                "object": "chat.completion.chunk",
                "created": c.created,
                "model": c.model,
                "service_tier": "default",
                "system_fingerprint": SYSTEM_FINGERPRINT,
                "choices": [],
                "usage": usage_fields(c.usage),
            },
        )
    yield None, "[DONE]"
