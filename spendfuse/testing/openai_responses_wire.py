"""OpenAI Responses API wire format: the ``response`` object and its typed SSE events.

Stream order, as the API sends it (each event named by ``event:`` and carrying ``type`` and a
``sequence_number`` from 0)::

    response.created, response.in_progress
    per output item: response.output_item.added,
        message:       response.content_part.added, response.output_text.delta*,
                       response.output_text.done, response.content_part.done
        function_call: response.function_call_arguments.delta*, response.function_call_arguments.done
      response.output_item.done
    response.completed (usage here) -- or response.incomplete when the output cap cut the answer
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from itertools import count
from typing import Any

from spendfuse.testing.completion import Completion, ResolvedToolCall
from spendfuse.testing.pieces import argument_pieces, text_pieces
from spendfuse.testing.usage import FakeUsage

SseItem = tuple[str | None, object]


def usage_fields(usage: FakeUsage) -> dict[str, Any]:
    return {
        "input_tokens": usage.input_tokens,
        "input_tokens_details": {
            "cached_tokens": usage.cache_read_tokens,
            "cache_write_tokens": usage.cache_write_tokens,
        },
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": usage.total_tokens,
    }


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _message_item(c: Completion, *, text: str | None, status: str) -> dict[str, Any]:
    """``text`` None is the just-opened item, before its content part exists."""
    content = [] if text is None else [_text_part(text)]
    return {"id": c.message_id, "type": "message", "status": status, "role": "assistant", "content": content}


def _call_item(call: ResolvedToolCall, *, arguments: str, status: str) -> dict[str, Any]:
    return {
        "id": call.item_id,
        "type": "function_call",
        "status": status,
        "call_id": call.call_id,
        "name": call.name,
        "arguments": arguments,
    }


def _has_message(c: Completion) -> bool:
    return bool(c.text) or not c.tool_calls


def _final_output(c: Completion) -> list[dict[str, Any]]:
    item_status = "incomplete" if c.incomplete_reason else "completed"
    output = [_message_item(c, text=c.text, status=item_status)] if _has_message(c) else []
    output.extend(_call_item(call, arguments=call.arguments_json, status="completed") for call in c.tool_calls)
    return output


def _response(
    c: Completion, request: Mapping[str, Any], *, status: str, output: list[dict[str, Any]], final: bool
) -> dict[str, Any]:
    tools = request.get("tools")
    reason = c.incomplete_reason if final else None
    return {
        "id": c.response_id,
        "object": "response",
        "created_at": c.created,
        "status": status,
        "background": False,
        "error": None,
        "incomplete_details": {"reason": reason} if reason else None,
        "instructions": request.get("instructions"),
        "max_output_tokens": request.get("max_output_tokens"),
        "model": c.model,
        "output": output,
        "parallel_tool_calls": request.get("parallel_tool_calls", True),
        "previous_response_id": request.get("previous_response_id"),
        "store": request.get("store", True),
        "temperature": 1.0,
        "text": {"format": {"type": "text"}},
        "tool_choice": request.get("tool_choice", "auto"),
        "tools": tools if isinstance(tools, list) else [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": usage_fields(c.usage) if final and c.usage is not None else None,
        "metadata": {},
    }


def response_body(c: Completion, request: Mapping[str, Any]) -> dict[str, Any]:
    status = "incomplete" if c.incomplete_reason else "completed"
    return _response(c, request, status=status, output=_final_output(c), final=True)


def response_events(c: Completion, request: Mapping[str, Any]) -> Iterator[SseItem]:
    sequence = count()

    def event(kind: str, **fields: Any) -> SseItem:
        return kind, {"type": kind, "sequence_number": next(sequence), **fields}

    yield event("response.created", response=_response(c, request, status="in_progress", output=[], final=False))
    yield event("response.in_progress", response=_response(c, request, status="in_progress", output=[], final=False))

    final_output = _final_output(c)
    output_index = 0
    if _has_message(c):
        item_id = c.message_id
        where = {"item_id": item_id, "output_index": output_index, "content_index": 0}
        yield event(
            "response.output_item.added",
            output_index=output_index,
            item=_message_item(c, text=None, status="in_progress"),
        )
        yield event("response.content_part.added", part=_text_part(""), **where)
        for piece in text_pieces(c.text):
            yield event("response.output_text.delta", delta=piece, logprobs=[], **where)
        yield event("response.output_text.done", text=c.text, logprobs=[], **where)
        yield event("response.content_part.done", part=_text_part(c.text), **where)
        yield event("response.output_item.done", output_index=output_index, item=final_output[output_index])
        output_index += 1

    for call in c.tool_calls:
        where = {"item_id": call.item_id, "output_index": output_index}
        yield event(
            "response.output_item.added",
            output_index=output_index,
            item=_call_item(call, arguments="", status="in_progress"),
        )
        for piece in argument_pieces(call.arguments_json):
            yield event("response.function_call_arguments.delta", delta=piece, **where)
        yield event("response.function_call_arguments.done", arguments=call.arguments_json, name=call.name, **where)
        yield event("response.output_item.done", output_index=output_index, item=final_output[output_index])
        output_index += 1

    status = "incomplete" if c.incomplete_reason else "completed"
    yield event(f"response.{status}", response=_response(c, request, status=status, output=final_output, final=True))
