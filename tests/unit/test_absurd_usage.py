"""Absurd usage from upstream (7e307 tokens, 2**80 tokens) never becomes inf or NaN anywhere.

Each counter above ``MAX_TOKENS`` is charged as ``MAX_TOKENS`` with a logged error: the span, the
metrics and the run's balance all hold finite numbers, and the cost is exactly that many tokens
at the model's rates.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from typing import Any

import anthropic
import httpx2
import openai
import pytest

import spendfuse
from spendfuse.budgets.pricing import PriceBook
from spendfuse.budgets.usage import MAX_TOKENS, TokenUsage

PRICES = PriceBook()


def transport(body: dict[str, Any]) -> httpx2.MockTransport:
    payload = json.dumps(body).encode()
    return httpx2.MockTransport(
        lambda _request: httpx2.Response(200, content=payload, headers={"content-type": "application/json"})
    )


def claude(usage: dict[str, Any]) -> Callable[[], Any]:
    body = {
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
        "content": [{"type": "text", "text": "hi"}], "stop_reason": "end_turn", "usage": usage,
    }  # fmt: skip
    client = anthropic.Anthropic(api_key="k", base_url="http://fake.invalid", max_retries=0,
                                 http_client=httpx2.Client(transport=transport(body)))  # fmt: skip
    return lambda: client.messages.create(
        model="claude-sonnet-4-5", max_tokens=64, messages=[{"role": "user", "content": "hi"}]
    )


def gpt(usage: dict[str, Any]) -> Callable[[], Any]:
    body = {
        "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": "gpt-4.1",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "hi"}}],
        "usage": usage,
    }  # fmt: skip
    client = openai.OpenAI(api_key="k", base_url="http://fake.invalid/v1", max_retries=0,
                           http_client=httpx2.Client(transport=transport(body)))  # fmt: skip
    return lambda: client.chat.completions.create(
        model="gpt-4.1", max_tokens=64, messages=[{"role": "user", "content": "hi"}]
    )


CASES = {
    "anthropic-float": (claude, {"input_tokens": 7e307, "output_tokens": 12}, "anthropic", "claude-sonnet-4-5"),
    "anthropic-int": (claude, {"input_tokens": 5, "output_tokens": 2**80}, "anthropic", "claude-sonnet-4-5"),
    "openai-float": (gpt, {"prompt_tokens": 9, "completion_tokens": 1.5e308}, "openai", "gpt-4.1"),
    "openai-cache": (gpt, {"prompt_tokens": 9, "completion_tokens": 3,
                           "prompt_tokens_details": {"cached_tokens": 7e307}}, "openai", "gpt-4.1"),
}  # fmt: skip
EXPECTED = {
    "anthropic-float": TokenUsage(MAX_TOKENS, 12),
    "anthropic-int": TokenUsage(5, MAX_TOKENS),
    "openai-float": TokenUsage(9, MAX_TOKENS),
    "openai-cache": TokenUsage(MAX_TOKENS, 3, cache_read_tokens=MAX_TOKENS),
}


def finite(value: Any) -> bool:
    return not isinstance(value, float) or math.isfinite(value)


@pytest.mark.parametrize("case", list(CASES))
def test_absurd_counts_are_charged_as_max_tokens_and_stay_finite(
    case: str, instrument: Any, telemetry: Any, caplog: pytest.LogCaptureFixture
) -> None:
    make, usage, provider, model = CASES[case]
    instrument()
    call = make(usage)
    with caplog.at_level(logging.ERROR, logger="spendfuse"), spendfuse.run("absurd") as run:
        call()
    expected = EXPECTED[case]
    cost = PRICES.cost_micros(PRICES.rates(provider, model), expected)
    assert run.spent.usd_micros == cost
    assert (run.spent.input_tokens, run.spent.output_tokens) == (expected.input_tokens, expected.output_tokens)
    span = telemetry.span("chat ")
    attributes = dict(span.attributes or {})
    assert attributes["gen_ai.usage.input_tokens"] == expected.input_tokens
    assert attributes["gen_ai.usage.output_tokens"] == expected.output_tokens
    assert attributes["spendfuse.cost.usd"] == cost / 1_000_000
    assert all(finite(value) for value in attributes.values())
    assert all(finite(point.sum) for point in telemetry.metric_points("gen_ai.client.token.usage"))
    assert all(finite(point.value) for point in telemetry.metric_points("spendfuse.cost"))
    assert [r.levelname for r in caplog.records if "absurd" in r.getMessage()] == ["ERROR"]
