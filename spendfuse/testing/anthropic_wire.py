"""Anthropic Messages API wire format: the JSON message and its SSE event sequence.

Stream order, as the API sends it and ``anthropic.lib.streaming`` accumulates it::

    message_start (usage: input counts, output_tokens 1)
    ping
    content_block_start / content_block_delta* / content_block_stop   per block
    message_delta (stop_reason; usage cumulative: output_tokens plus the input counts again)
    message_stop
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from spendfuse.testing.completion import Completion
from spendfuse.testing.pieces import argument_pieces, text_pieces
from spendfuse.testing.usage import FakeUsage

SseItem = tuple[str | None, object]


def usage_fields(usage: FakeUsage, *, output_tokens: int | None = None) -> dict[str, Any]:
    # Anthropic's input_tokens excludes cache traffic; the total is the sum of the three.
    return {
        "input_tokens": usage.uncached_input_tokens,
        "cache_creation_input_tokens": usage.cache_write_tokens,
        "cache_read_input_tokens": usage.cache_read_tokens,
        "cache_creation": {
            "ephemeral_5m_input_tokens": usage.cache_write_tokens,
            "ephemeral_1h_input_tokens": 0,
        },
        "output_tokens": usage.output_tokens if output_tokens is None else output_tokens,
        "service_tier": "standard",
    }


def _content_blocks(c: Completion) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if c.text or not c.tool_calls:
        blocks.append({"type": "text", "text": c.text})
    blocks.extend(
        {"type": "tool_use", "id": call.call_id, "name": call.name, "input": json.loads(call.arguments_json)}
        for call in c.tool_calls
    )
    return blocks


def _envelope(c: Completion, content: list[dict[str, Any]], stop_reason: str | None) -> dict[str, Any]:
    return {
        "id": c.message_id,
        "type": "message",
        "role": "assistant",
        "model": c.model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
    }


def message_body(c: Completion) -> dict[str, Any]:
    body = _envelope(c, _content_blocks(c), c.stop_reason)
    if c.usage is not None:
        body["usage"] = usage_fields(c.usage)
    return body


def message_events(c: Completion) -> Iterator[SseItem]:
    start = _envelope(c, [], None)
    if c.usage is not None:
        # The API reports a token or so of output at message_start; the final count comes later.
        start["usage"] = usage_fields(c.usage, output_tokens=min(1, c.usage.output_tokens))
    yield "message_start", {"type": "message_start", "message": start}
    yield "ping", {"type": "ping"}

    for index, block in enumerate(_content_blocks(c)):
        if block["type"] == "text":
            yield (
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": {"type": "text", "text": ""},
                },
            )
            for piece in text_pieces(block["text"]):
                yield (
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": index,
                        "delta": {"type": "text_delta", "text": piece},
                    },
                )
        else:
            yield (
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": {
                        "type": "tool_use",
                        "id": block["id"],
                        "name": block["name"],
                        "input": {},
                    },
                },
            )
            for piece in ["", *argument_pieces(json.dumps(block["input"]))]:
                yield (
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": index,
                        "delta": {"type": "input_json_delta", "partial_json": piece},
                    },
                )
        yield "content_block_stop", {"type": "content_block_stop", "index": index}

    delta: dict[str, Any] = {
        "type": "message_delta",
        "delta": {"stop_reason": c.stop_reason, "stop_sequence": None},
    }
    if c.usage is not None:
        delta["usage"] = {
            "input_tokens": c.usage.uncached_input_tokens,
            "cache_creation_input_tokens": c.usage.cache_write_tokens,
            "cache_read_input_tokens": c.usage.cache_read_tokens,
            "output_tokens": c.usage.output_tokens,
        }
    yield "message_delta", delta
    yield "message_stop", {"type": "message_stop"}
