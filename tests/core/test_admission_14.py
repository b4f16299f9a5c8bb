"""Issue #14: admission that cannot be bypassed, block or leak (the budgets side).

Each test here failed on the code before the fix it names.
"""

from __future__ import annotations

from typing import Any

import openai
import pytest

import spendfuse
from spendfuse.budgets.estimate import estimate_input_tokens
from spendfuse.budgets.pricing import PriceBook
from spendfuse.testing import FakeProvider, FakeUsage

GPT = "gpt-4o"
CHAT = [{"role": "user", "content": "Give me four taglines for a bakery."}]


def _worst_micros(choices: int, per_choice: int) -> int:
    prices = PriceBook()
    rates = prices.rates("openai", GPT)
    assert rates is not None
    body = {"model": GPT, "messages": CHAT, "n": choices}
    estimate = estimate_input_tokens("openai", "chat", GPT, body)
    return prices.worst_case_micros(rates, input_tokens=estimate, max_output_tokens=per_choice * choices)


# -- item 1: n > 1 without max_tokens ------------------------------------------------------------


def test_n_choices_without_max_tokens_reserve_every_choice(instrument: Any, telemetry: Any) -> None:
    instrument()
    fake = FakeProvider(usage=FakeUsage(input_tokens=20, output_tokens=40))
    client = fake.openai_client()
    model_max = PriceBook().max_output_tokens("openai", GPT)
    assert model_max == 16_384
    four = _worst_micros(4, model_max)
    one = _worst_micros(1, model_max)
    # A limit the one-choice worst case fits under and the four-choice one does not.
    limit_micros = (one + four) // 2
    budget = spendfuse.Budget(usd=limit_micros / 1e6)
    with pytest.raises(spendfuse.CostLimitExceeded) as caught, spendfuse.run("n4", budget=budget):
        client.chat.completions.create(model=GPT, messages=CHAT, n=4)
    assert fake.request_count == 0
    assert round(caught.value.requested * 1e6) == four
    # With room for it, the reservation on the span is the exact four-choice worst case.
    with spendfuse.run("n4-fits", budget=spendfuse.Budget(usd=1.0)):
        client.chat.completions.create(model=GPT, messages=CHAT, n=4)
    assert fake.request_count == 1
    [span] = [s for s in telemetry.spans("chat ") if s.attributes and "spendfuse.reserved.usd" in s.attributes]
    assert round(span.attributes["spendfuse.reserved.usd"] * 1e6) == four


def test_n_choices_with_max_tokens_reserve_max_tokens_times_n(instrument: Any, telemetry: Any) -> None:
    instrument()
    fake = FakeProvider(usage=FakeUsage(input_tokens=20, output_tokens=40))
    client = fake.openai_client()
    with spendfuse.run("n3", budget=spendfuse.Budget(usd=1.0)):
        client.chat.completions.create(model=GPT, messages=CHAT, n=3, max_completion_tokens=500)
    [span] = telemetry.spans("chat ")
    assert round(span.attributes["spendfuse.reserved.usd"] * 1e6) == _worst_micros(3, 500)


def test_user_window_is_not_overspent_by_n_choices(instrument: Any) -> None:
    # The report: n=4 without max_tokens overspent a $1.00 user limit. Each call's actual cost is
    # its full four-choice worst case here, so one-choice reservations admit two calls ($1.31).
    model_max = 16_384
    fake = FakeProvider(usage=FakeUsage(input_tokens=10, output_tokens=4 * model_max))
    instrument(user_budget=spendfuse.Budget(usd=1.0, window="1d"))
    client = fake.openai_client()
    refused = 0
    for index in range(3):
        with spendfuse.run(f"u{index}", user_id="bob"):
            try:
                client.chat.completions.create(model=GPT, messages=CHAT, n=4)
            except spendfuse.CostLimitExceeded:
                refused += 1
    assert fake.request_count == 1
    assert refused == 2
    assert not issubclass(spendfuse.BudgetExceeded, openai.APIError)
