"""Unanswered attempts and the SDK's own retries (DESIGN §4, "Settle").

A request that was sent but got no answer (client timeout, connection reset after the body left)
may still be billed by the provider: by default it stays charged at its reservation, marked
estimated (``unanswered="reserved"``); ``"released"`` opts out. Every retry the SDK makes is a new
billable request: it is admitted (reserved) again before it is sent and refused with
``BudgetExceeded`` when it no longer fits -- and it is still the same turn. An attempt the provider
answered with an error status generated nothing and costs nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx2
import openai
import pytest

import spendfuse
from spendfuse.testing import FakeProvider, FakeServer, FakeUsage, Reply

from ._calls import SpanTracker, attributes_of, micros

GPT = "gpt-4.1"
SONNET = "claude-sonnet-4-5"
MESSAGES = [{"role": "user", "content": "Summarize the ticket."}]
LATENCY = 0.4  # the provider's think time; the client gives up after TIMEOUT
TIMEOUT = 0.05


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with FakeServer(FakeProvider(latency=LATENCY, usage=FakeUsage(1000, 200))) as running:
        yield running


def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    # The SDKs back off 0.5-8 s between attempts; what is tested here is admission, not the wait.
    for module in (anthropic._base_client, openai._base_client):
        monkeypatch.setattr(module.BaseClient, "_calculate_retry_timeout", lambda *_a, **_k: 0.0)


def gpt_call(client: Any) -> Any:
    return client.chat.completions.create(model=GPT, max_tokens=100, messages=MESSAGES)


def reserved_per_attempt(tracker: SpanTracker) -> int:
    return micros(attributes_of(tracker.chat_ended()[-1])["spendfuse.reserved.usd"])


def test_timed_out_attempts_are_each_charged_their_reservation(
    server: FakeServer, instrument: Any, tracker: SpanTracker, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_backoff(monkeypatch)
    instrument()
    client = server.openai_client(timeout=TIMEOUT, max_retries=2)
    with spendfuse.run("slow", budget=spendfuse.Budget(usd=5)) as run, pytest.raises(openai.APITimeoutError):
        gpt_call(client)
    assert server.provider.request_count == 3  # the provider generated three completions
    reserved = reserved_per_attempt(tracker)
    assert reserved > 0
    assert run.spent.turns == 1  # the SDK's retries of one call are one turn
    assert run.spent.usd_micros == 3 * reserved
    assert (run.balance.flight_usd, run.balance.flight_turns, run.balance.flight_tokens) == (0, 0, 0)
    attributes = attributes_of(tracker.chat_ended()[-1])
    assert attributes["spendfuse.usage.estimated"] is True
    assert attributes["spendfuse.attempts"] == 3
    assert micros(attributes["spendfuse.cost.usd"]) == 3 * reserved


def test_released_policy_charges_unanswered_attempts_nothing(
    server: FakeServer, instrument: Any, tracker: SpanTracker, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_backoff(monkeypatch)
    instrument(unanswered="released")
    client = server.openai_client(timeout=TIMEOUT, max_retries=2)
    with spendfuse.run("slow") as run, pytest.raises(openai.APITimeoutError):
        gpt_call(client)
    assert server.provider.request_count == 3
    assert (run.spent.turns, run.spent.usd_micros) == (1, 0)


def test_a_retry_that_no_longer_fits_is_refused_before_it_is_sent(
    server: FakeServer, instrument: Any, tracker: SpanTracker, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_backoff(monkeypatch)
    instrument()
    client = server.openai_client(timeout=TIMEOUT, max_retries=5)
    # Measure one attempt's worst case, then give a run room for exactly two attempts.
    with spendfuse.run("probe", budget=spendfuse.Budget(usd=5)), pytest.raises(openai.APITimeoutError):
        server.openai_client(timeout=TIMEOUT, max_retries=0).chat.completions.create(
            model=GPT, max_tokens=100, messages=MESSAGES
        )
    reserved = reserved_per_attempt(tracker)
    sent_before = server.provider.request_count
    budget = spendfuse.Budget(usd=(2 * reserved + reserved // 2) / 1_000_000)
    with spendfuse.run("tight", budget=budget) as run, pytest.raises(spendfuse.CostLimitExceeded) as caught:
        gpt_call(client)
    assert server.provider.request_count - sent_before == 2  # the third attempt never left
    assert caught.value.scope == "run" and caught.value.key == "tight"
    assert run.spent.turns == 1
    assert run.spent.usd_micros == 2 * reserved <= budget.usd_micros  # type: ignore[operator]
    assert (run.balance.flight_usd, run.balance.flight_turns) == (0, 0)


def test_an_attempt_answered_with_an_error_costs_nothing_and_the_retry_is_charged(
    instrument: Any, tracker: SpanTracker, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_backoff(monkeypatch)
    instrument()
    fake = FakeProvider(usage=FakeUsage(1000, 200))
    fake.enqueue(Reply.error(529), Reply.error(500))
    client = fake.anthropic_client(max_retries=2)
    with spendfuse.run("overloaded", budget=spendfuse.Budget(usd=5)) as run:
        client.messages.create(model=SONNET, max_tokens=256, messages=MESSAGES)
    assert fake.request_count == 3
    assert run.spent.turns == 1
    assert run.spent.usd_micros == 1000 * 3 + 200 * 15  # only the answered attempt: $3/$15 per MTok
    assert (run.spent.input_tokens, run.spent.output_tokens) == (1000, 200)
    assert attributes_of(tracker.chat_ended()[-1])["spendfuse.attempts"] == 3


def test_async_retries_are_admitted_again(
    server: FakeServer, instrument: Any, tracker: SpanTracker, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_backoff(monkeypatch)
    instrument()

    async def go() -> None:
        client = server.async_openai_client(timeout=TIMEOUT, max_retries=1)
        with pytest.raises(openai.APITimeoutError):
            await client.chat.completions.create(model=GPT, max_tokens=100, messages=MESSAGES)

    with spendfuse.run("async-slow", budget=spendfuse.Budget(usd=5)) as run:
        asyncio.run(go())
    assert server.provider.request_count == 2
    assert run.spent.turns == 1
    assert run.spent.usd_micros == 2 * reserved_per_attempt(tracker)


def test_a_connection_that_never_opened_is_not_charged(
    instrument: Any, tracker: SpanTracker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Connection refused: the request never left, so nothing can be billed for it."""
    no_backoff(monkeypatch)
    instrument()

    def refuse(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("Connection refused", request=request)

    client = openai.OpenAI(api_key="k", base_url="http://fake.invalid/v1", max_retries=2,
                           http_client=httpx2.Client(transport=httpx2.MockTransport(refuse)))  # fmt: skip
    with spendfuse.run("offline", budget=spendfuse.Budget(usd=5)) as run, pytest.raises(openai.APIConnectionError):
        gpt_call(client)
    assert (run.spent.turns, run.spent.usd_micros) == (1, 0)
