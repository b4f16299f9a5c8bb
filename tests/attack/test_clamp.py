"""clamp=True: 'lowers max_tokens so the worst case fits instead of refusing'. Attack: a request the
provider only accepts with max_tokens above another field of the same body."""

from __future__ import annotations

from typing import Any

import pytest

import spendfuse
from spendfuse.testing import FakeProvider

SONNET = "claude-sonnet-4-5"
MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.mark.xfail(
    strict=True,
    reason="clamp lowers max_tokens below thinking.budget_tokens (breaker/core.py:_clamp, "
    "call.py:admitted -> write_max_tokens): Anthropic rejects such a request with a 400 "
    "('max_tokens must be greater than thinking.budget_tokens'), so the clamp turns an admissible "
    "decision (refuse, or lower the thinking budget too) into a provider error on the user's call",
)
def test_clamp_never_sends_max_tokens_below_the_thinking_budget(instrument: Any) -> None:
    instrument(clamp=True)
    fake = FakeProvider()
    with spendfuse.run("thinking", budget=spendfuse.Budget(usd=0.05)):
        try:
            fake.anthropic_client().messages.create(
                model=SONNET, max_tokens=16000, thinking={"type": "enabled", "budget_tokens": 10000}, messages=MESSAGES
            )
        except spendfuse.BudgetExceeded:
            assert fake.request_count == 0
            return
    sent = fake.requests[-1].json
    assert sent is not None
    assert sent["max_tokens"] > sent["thinking"]["budget_tokens"] >= 1024, sent


def test_clamp_with_n_choices_keeps_the_worst_case_within_the_limit(instrument: Any, telemetry: Any) -> None:
    """Held: with n=4 the clamp divides the fit by the choices; the reservation fits the limit."""
    instrument(clamp=True)
    fake = FakeProvider()
    with spendfuse.run("n4", budget=spendfuse.Budget(usd=0.05)):
        fake.openai_client().chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=16000, n=4)
    sent = fake.requests[-1].json
    assert sent is not None and sent["max_tokens"] < 16000
    span = telemetry.span("chat ")
    assert span.attributes["spendfuse.reserved.usd"] <= 0.05
    # n x max_tokens at $10/M output must fit too.
    assert sent["max_tokens"] * 4 * 10 / 1_000_000 <= 0.05
