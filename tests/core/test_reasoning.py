"""Reasoning tokens: on the call span always, split on the token metric only under the opt-in.

OpenAI reports reasoning tokens as a part of the output tokens (``completion_tokens_details`` /
``output_tokens_details``) and bills them as output: the cost must not count them twice.
"""

from __future__ import annotations

import importlib
import json
from typing import Any

import openai
import pytest

import spendfuse
from spendfuse.testing.clients import uses_httpx2

GPT = "o4-mini"  # $1.10 / $4.40 per MTok (genai-prices snapshot)
COST = int(1000 * 1.1 + 300 * 4.4)  # micro-dollars: reasoning is inside the 300 output tokens
MESSAGES = [{"role": "user", "content": "Think, then answer."}]


def _chat_body() -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": GPT,
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "42"}}],
        "usage": {
            "prompt_tokens": 1000,
            "completion_tokens": 300,
            "total_tokens": 1300,
            "completion_tokens_details": {"reasoning_tokens": 256},
        },
    }


def _responses_body() -> dict[str, Any]:
    return {
        "id": "resp_1",
        "object": "response",
        "created_at": 0,
        "model": GPT,
        "status": "completed",
        "output": [],
        "parallel_tool_calls": False,
        "tool_choice": "auto",
        "tools": [],
        "usage": {
            "input_tokens": 1000,
            "output_tokens": 300,
            "total_tokens": 1300,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens_details": {"reasoning_tokens": 256},
        },
    }


def _client() -> openai.OpenAI:
    http = importlib.import_module("httpx2" if uses_httpx2("openai") else "httpx")  # the SDK release's own

    def answer(request: Any) -> Any:
        body = _chat_body() if request.url.path.endswith("/chat/completions") else _responses_body()
        return http.Response(200, content=json.dumps(body), headers={"content-type": "application/json"})

    return openai.OpenAI(
        api_key="test-key", base_url="http://openai.fake.invalid/v1", max_retries=0,
        http_client=openai.DefaultHttpxClient(transport=http.MockTransport(answer)),
    )  # fmt: skip


def _call(api: str) -> None:
    client = _client()
    if api == "chat":
        client.chat.completions.create(model=GPT, messages=MESSAGES, max_completion_tokens=2048)
    else:
        client.responses.create(model=GPT, input="Think, then answer.", max_output_tokens=2048)


def _output_points(telemetry: Any) -> list[tuple[str | None, float]]:
    return sorted(
        (p.attributes.get("gen_ai.token.phase"), p.sum)
        for p in telemetry.metric_points("gen_ai.client.token.usage")
        if p.attributes["gen_ai.token.type"] == "output"
    )


@pytest.mark.parametrize("api", ["chat", "responses"])
def test_reasoning_tokens_on_the_span_and_not_counted_twice(
    api: str, instrument: Any, telemetry: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OTEL_SEMCONV_STABILITY_OPT_IN", raising=False)
    instrument()
    with spendfuse.run("reasoning") as run:
        _call(api)
    attributes = telemetry.span("chat ").attributes
    assert attributes["gen_ai.usage.reasoning.output_tokens"] == 256
    assert attributes["gen_ai.usage.output_tokens"] == 300
    assert attributes["spendfuse.cost.usd"] == pytest.approx(COST / 1e6, abs=1e-12)
    assert run.spent.usd_micros == COST
    assert run.spent.output_tokens == 300
    # Default output: what the shipped dashboards query, no experimental attribute.
    assert _output_points(telemetry) == [(None, 300)]


@pytest.mark.parametrize("opt_in", ["gen_ai_latest_experimental", "http, gen_ai_latest_experimental"])
def test_the_opt_in_splits_output_tokens_by_phase(
    opt_in: str, instrument: Any, telemetry: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", opt_in)
    instrument()
    _call("chat")
    # The two phases add up to the output total: a sum over token type is unchanged.
    assert _output_points(telemetry) == [("reasoning", 256), ("response", 44)]


def test_other_opt_in_values_keep_the_default(instrument: Any, telemetry: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "gen_ai_latest_experimental_not, http")
    instrument()
    _call("responses")
    assert _output_points(telemetry) == [(None, 300)]
