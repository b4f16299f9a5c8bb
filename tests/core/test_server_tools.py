"""Server-side tool fees (#15 class 4): charged at settlement, bounded in the worst case.

Wire fixtures written from the providers' documented formats: Anthropic reports
``usage.server_tool_use.web_search_requests`` (and ``web_fetch_requests``), in the message and in
the stream's ``message_delta``; OpenAI Responses reports one ``web_search_call`` /
``file_search_call`` output item per call. Prices: claude-sonnet-4-5 $3 / $15 per MTok and web
search $10 per 1000; gpt-4o $2.50 / $10 per MTok, web search $10 and file search $2.50 per 1000
(genai-prices snapshot).
"""

from __future__ import annotations

import asyncio
import importlib
import json
from collections.abc import Callable
from typing import Any

import anthropic
import openai
import pytest

import spendfuse
from spendfuse import Budget
from spendfuse.budgets.pricing import PriceBook
from spendfuse.budgets.usage import TokenUsage, anthropic_usage
from spendfuse.config.settings import load_settings
from spendfuse.errors import ConfigError
from spendfuse.testing.clients import uses_httpx2

SONNET, GPT = "claude-sonnet-4-5", "gpt-4o"
TOKENS_SONNET = 1000 * 3 + 200 * 15  # micro-dollars
TOKENS_GPT = int(1000 * 2.5 + 200 * 10)
SEARCH = 10_000  # $10 per 1000 uses, in micro-dollars per use
FILE_SEARCH = 2_500
MESSAGES = [{"role": "user", "content": "What is the weather in Paris?"}]
WEB_SEARCH_TOOL = {"type": "web_search_20250305", "name": "web_search", "max_uses": 3}

ANTHROPIC_USAGE = {
    "input_tokens": 1000,
    "output_tokens": 200,
    "cache_read_input_tokens": 0,
    "cache_creation_input_tokens": 0,
    "server_tool_use": {"web_search_requests": 2},
}
ANTHROPIC_CONTENT = [
    {"type": "server_tool_use", "id": "srvtoolu_01", "name": "web_search", "input": {"query": "paris weather"}},
    {
        "type": "web_search_tool_result",
        "tool_use_id": "srvtoolu_01",
        "content": [
            {
                "type": "web_search_result",
                "url": "https://example.com/paris",
                "title": "Paris weather",
                "encrypted_content": "EqgfCioIARgB",
                "page_age": "1 day",
            }
        ],
    },
    {"type": "text", "text": "It is sunny in Paris."},
]
OPENAI_OUTPUT = [
    {
        "type": "web_search_call",
        "id": "ws_1",
        "status": "completed",
        "action": {"type": "search", "query": "paris weather"},
    },
    {
        "type": "web_search_call",
        "id": "ws_2",
        "status": "completed",
        "action": {"type": "search", "query": "paris forecast"},
    },
    {"type": "file_search_call", "id": "fs_1", "status": "completed", "queries": ["paris"], "results": None},
    {
        "type": "message",
        "id": "msg_1",
        "status": "completed",
        "role": "assistant",
        "content": [{"type": "output_text", "text": "It is sunny in Paris.", "annotations": []}],
    },
]
ANTHROPIC_COST = TOKENS_SONNET + 2 * SEARCH
OPENAI_COST = TOKENS_GPT + 2 * SEARCH + FILE_SEARCH


def _message() -> dict[str, Any]:
    return {
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5-20250929",
        "content": ANTHROPIC_CONTENT,
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": ANTHROPIC_USAGE,
    }


def _anthropic_events() -> list[tuple[str, dict[str, Any]]]:
    start = {
        **_message(),
        "content": [],
        "stop_reason": None,
        "usage": {
            "input_tokens": 1000,
            "output_tokens": 1,
            "cache_read_input_tokens": 0,
            "cache_creation_input_tokens": 0,
        },
    }
    events: list[tuple[str, dict[str, Any]]] = [("message_start", {"type": "message_start", "message": start})]
    text = {"type": "text", "text": ""}
    events += [
        ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": text}),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": "It is sunny in Paris."},
            },
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": 200, "server_tool_use": {"web_search_requests": 2}},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    return events


def _response(status: str = "completed") -> dict[str, Any]:
    return {
        "id": "resp_1",
        "object": "response",
        "created_at": 0,
        "model": GPT,
        "status": status,
        "output": OPENAI_OUTPUT,
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [{"type": "web_search"}, {"type": "file_search", "vector_store_ids": ["vs_1"]}],
        "usage": {
            "input_tokens": 1000,
            "output_tokens": 200,
            "total_tokens": 1200,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens_details": {"reasoning_tokens": 0},
        },
    }


def _openai_events() -> list[tuple[str, dict[str, Any]]]:
    created = {**_response("in_progress"), "output": [], "usage": None}
    events: list[tuple[str, dict[str, Any]]] = [
        ("response.created", {"type": "response.created", "response": created}),
    ]
    for index, item in enumerate(OPENAI_OUTPUT):
        if item["type"] != "message":
            events.append(
                (
                    "response.output_item.added",
                    {"type": "response.output_item.added", "output_index": index, "item": item},
                )
            )
            events.append(
                (
                    "response.output_item.done",
                    {"type": "response.output_item.done", "output_index": index, "item": item},
                )
            )
            continue
        text = item["content"][0]["text"]
        where = {"item_id": item["id"], "output_index": index, "content_index": 0}
        events += [
            (
                "response.output_item.added",
                {
                    "type": "response.output_item.added",
                    "output_index": index,
                    "item": {**item, "status": "in_progress", "content": []},
                },
            ),
            (
                "response.content_part.added",
                {
                    "type": "response.content_part.added",
                    **where,
                    "part": {"type": "output_text", "text": "", "annotations": []},
                },
            ),
            (
                "response.output_text.delta",
                {"type": "response.output_text.delta", **where, "delta": text, "logprobs": []},
            ),
            ("response.output_text.done", {"type": "response.output_text.done", **where, "text": text, "logprobs": []}),
            ("response.content_part.done", {"type": "response.content_part.done", **where, "part": item["content"][0]}),
            ("response.output_item.done", {"type": "response.output_item.done", "output_index": index, "item": item}),
        ]
    events.append(("response.completed", {"type": "response.completed", "response": _response()}))
    return [(name, {**data, "sequence_number": number}) for number, (name, data) in enumerate(events)]


def _sse(events: list[tuple[str, dict[str, Any]]]) -> bytes:
    return "".join(f"event: {name}\ndata: {json.dumps(data)}\n\n" for name, data in events).encode()


def _answer(http: Any) -> Callable[[Any], Any]:
    def answer(request: Any) -> Any:
        body = json.loads(request.content)
        anthropic_call = request.url.path.endswith("/messages")
        if body.get("stream"):
            events = _anthropic_events() if anthropic_call else _openai_events()
            return http.Response(200, content=_sse(events), headers={"content-type": "text/event-stream"})
        data = _message() if anthropic_call else _response()
        return http.Response(200, content=json.dumps(data), headers={"content-type": "application/json"})

    return answer


def _anthropic(asynchronous: bool = False) -> Any:
    http = importlib.import_module("httpx2" if uses_httpx2("anthropic") else "httpx")
    kind = http.MockTransport(_answer(http))
    if asynchronous:
        return anthropic.AsyncAnthropic(
            api_key="k",
            base_url="http://anthropic.fake.invalid",
            max_retries=0,
            http_client=anthropic.DefaultAsyncHttpxClient(transport=kind),
        )
    return anthropic.Anthropic(
        api_key="k",
        base_url="http://anthropic.fake.invalid",
        max_retries=0,
        http_client=anthropic.DefaultHttpxClient(transport=kind),
    )


def _openai(asynchronous: bool = False) -> Any:
    http = importlib.import_module("httpx2" if uses_httpx2("openai") else "httpx")
    kind = http.MockTransport(_answer(http))
    if asynchronous:
        return openai.AsyncOpenAI(
            api_key="k",
            base_url="http://openai.fake.invalid/v1",
            max_retries=0,
            http_client=openai.DefaultAsyncHttpxClient(transport=kind),
        )
    return openai.OpenAI(
        api_key="k",
        base_url="http://openai.fake.invalid/v1",
        max_retries=0,
        http_client=openai.DefaultHttpxClient(transport=kind),
    )


A_KW: dict[str, Any] = {"model": SONNET, "max_tokens": 1024, "messages": MESSAGES, "tools": [WEB_SEARCH_TOOL]}
O_KW: dict[str, Any] = {
    "model": GPT,
    "input": "What is the weather?",
    "max_output_tokens": 512,
    "tools": [{"type": "web_search"}],
}


def a_create() -> Any:
    return _anthropic().messages.create(**A_KW)


def a_stream() -> Any:
    return list(_anthropic().messages.create(**A_KW, stream=True))


def a_helper() -> Any:
    with _anthropic().messages.stream(**A_KW) as stream:
        return stream.get_final_message()


def a_raw() -> Any:
    return _anthropic().messages.with_raw_response.create(**A_KW).parse()


def a_async() -> Any:
    async def go() -> Any:
        return await _anthropic(True).messages.create(**A_KW)

    return asyncio.run(go())


def o_create() -> Any:
    return _openai().responses.create(**O_KW)


def o_stream() -> Any:
    return list(_openai().responses.create(**O_KW, stream=True))


def o_helper() -> Any:
    with _openai().responses.stream(**O_KW) as stream:
        return stream.get_final_response()


def o_raw_stream() -> Any:
    return list(_openai().responses.with_raw_response.create(**O_KW, stream=True).parse())


def o_async_stream() -> Any:
    async def go() -> Any:
        return [event async for event in await _openai(True).responses.create(**O_KW, stream=True)]

    return asyncio.run(go())


SHAPES: dict[str, tuple[Callable[[], Any], int]] = {
    "anthropic.create": (a_create, ANTHROPIC_COST),
    "anthropic.create(stream)": (a_stream, ANTHROPIC_COST),
    "anthropic.stream()": (a_helper, ANTHROPIC_COST),
    "anthropic.raw": (a_raw, ANTHROPIC_COST),
    "anthropic.async.create": (a_async, ANTHROPIC_COST),
    "openai.responses.create": (o_create, OPENAI_COST),
    "openai.responses.create(stream)": (o_stream, OPENAI_COST),
    "openai.responses.stream()": (o_helper, OPENAI_COST),
    "openai.responses.raw(stream)": (o_raw_stream, OPENAI_COST),
    "openai.async.responses.create(stream)": (o_async_stream, OPENAI_COST),
}


@pytest.mark.parametrize("name", list(SHAPES))
def test_server_tool_fees_are_charged_at_settlement(name: str, instrument: Any, telemetry: Any) -> None:
    run_shape, cost = SHAPES[name]
    instrument()
    with spendfuse.run("tools", budget=Budget(usd=5.0)) as run:
        result = run_shape()
    assert result is not None
    attributes = dict(telemetry.span("chat ").attributes or {})
    assert attributes["gen_ai.usage.input_tokens"] == 1000
    assert attributes["gen_ai.usage.output_tokens"] == 200
    assert "spendfuse.usage.estimated" not in attributes
    assert attributes["spendfuse.cost.usd"] == pytest.approx(cost / 1e6, abs=1e-12)
    assert run.spent.usd_micros == cost
    assert attributes["spendfuse.reserved.usd"] * 1e6 >= cost  # the worst case bounded the fees


def _reserved(instrument: Any, telemetry: Any, call: Callable[[], Any], **settings: Any) -> float:
    spendfuse.uninstrument()
    telemetry.clear_spans()
    instrument(**settings)
    with spendfuse.run("bound", budget=Budget(usd=5.0)):
        call()
    return float(dict(telemetry.span("chat ").attributes or {})["spendfuse.reserved.usd"])


def test_the_worst_case_is_bounded_by_max_uses_or_the_default(instrument: Any, telemetry: Any) -> None:
    # Bodies of the same length (the input estimate is the same): only the tool bound differs.
    def with_tool(tool: dict[str, Any]) -> Callable[[], Any]:
        return lambda: _anthropic().messages.create(**{**A_KW, "tools": [tool]})

    none = _reserved(instrument, telemetry, with_tool({**WEB_SEARCH_TOOL, "max_uses": 0}))
    three = _reserved(instrument, telemetry, with_tool(WEB_SEARCH_TOOL))  # max_uses=3
    assert round((three - none) * 1e6) == 3 * SEARCH
    unbounded = {"type": "web_search_20250305", "name": "web_search"}
    zero = _reserved(instrument, telemetry, with_tool(unbounded), server_tool_default_uses=0)
    seven = _reserved(instrument, telemetry, with_tool(unbounded), server_tool_default_uses=7)
    assert round((seven - zero) * 1e6) == 7 * SEARCH


def test_openai_max_tool_calls_bounds_every_built_in_tool(instrument: Any, telemetry: Any) -> None:
    def with_calls(count: int) -> Callable[[], Any]:
        tools = [{"type": "web_search"}, {"type": "file_search", "vector_store_ids": ["vs_1"]}]
        return lambda: _openai().responses.create(**{**O_KW, "max_tool_calls": count, "tools": tools})

    none = _reserved(instrument, telemetry, with_calls(0))
    two = _reserved(instrument, telemetry, with_calls(2))
    assert round((two - none) * 1e6) == 2 * SEARCH + 2 * FILE_SEARCH


def test_fees_come_from_overrides_with_the_users_mechanism() -> None:
    usage = TokenUsage(input_tokens=1000, output_tokens=200, web_search_uses=2, web_fetch_uses=3)
    bundled = PriceBook()
    sonnet = bundled.rates("anthropic", SONNET)
    assert sonnet is not None
    assert bundled.cost_micros(sonnet, usage) == TOKENS_SONNET + 2 * SEARCH  # web fetch: no fee of its own
    # A fee-only entry keeps the bundled token prices and the other fees.
    fetch = PriceBook({SONNET: {"web_fetch": 1.0}})
    rates = fetch.rates("anthropic", SONNET)
    assert rates is not None and fetch.cost_micros(rates, usage) == TOKENS_SONNET + 2 * SEARCH + 3 * 1_000
    # A full price entry without fees keeps the bundled fees; with a fee, it wins.
    full = PriceBook({SONNET: {"input": 3, "output": 15, "web_search": 5}})
    rates = full.rates("anthropic", SONNET)
    assert rates is not None and full.cost_micros(rates, usage) == TOKENS_SONNET + 2 * 5_000
    with pytest.raises(ConfigError, match="web_search"):
        PriceBook({SONNET: {"web_search": -1}})


def test_anthropic_usage_reads_server_tool_use() -> None:
    usage = anthropic_usage(ANTHROPIC_USAGE)
    assert usage is not None and usage.web_search_uses == 2 and usage.web_fetch_uses == 0
    assert usage.input_tokens == 1000 and usage.output_tokens == 200


def test_default_uses_setting_is_validated() -> None:
    assert load_settings(environ={"SPENDFUSE_SERVER_TOOL_DEFAULT_USES": "3"}).server_tool_default_uses == 3
    assert load_settings(environ={}).server_tool_default_uses == 10
    with pytest.raises(ConfigError, match="server_tool_default_uses"):
        load_settings({"server_tool_default_uses": -1})
