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
import importlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

import spendfuse
from spendfuse import runtime
from spendfuse.config.settings import load_settings
from spendfuse.errors import ConfigError
from spendfuse.testing import FakeProvider, FakeServer, FakeUsage, Reply, clients
from spendfuse.testing.clients import uses_httpx2

from ._calls import SpanTracker, attributes_of, micros

GPT = "gpt-4.1"
SONNET = "claude-sonnet-4-5"
MESSAGES = [{"role": "user", "content": "Summarize the ticket."}]
LATENCY = 0.4  # the provider's think time; the client gives up after TIMEOUT
TIMEOUT = 0.05
# The SDK release's own HTTP package: httpx2, or the original httpx before the switch (oldest.lock).
http: Any = importlib.import_module("httpx2" if uses_httpx2("openai") else "httpx")


def sdk_transport(fake: FakeProvider) -> Any:
    return fake.transport() if uses_httpx2("openai") else fake.httpx_transport()


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

    def refuse(request: Any) -> Any:
        raise http.ConnectError("Connection refused", request=request)

    client = openai.OpenAI(api_key="k", base_url="http://fake.invalid/v1", max_retries=2,
                           http_client=http.Client(transport=http.MockTransport(refuse)))  # fmt: skip
    with spendfuse.run("offline", budget=spendfuse.Budget(usd=5)) as run, pytest.raises(openai.APIConnectionError):
        gpt_call(client)
    assert (run.spent.turns, run.spent.usd_micros) == (1, 0)
    # Three attempts, each admitted and released: nothing left in flight, nothing estimated.
    assert (run.balance.flight_usd, run.balance.flight_turns, run.balance.flight_tokens) == (0, 0, 0)
    attributes = attributes_of(tracker.chat_ended()[-1])
    assert attributes["spendfuse.attempts"] == 3
    assert "spendfuse.usage.estimated" not in attributes


# -- every scope: the user's window in the store, both SDKs, streams -------------------------------

USER = "retried-user"


def user_usage(user: str = USER) -> Any:
    """The user's window in the configured store (the breaker's own scope key for the window)."""
    active = runtime.current()
    assert active is not None
    scope = active.breaker._scopes.get("user", user, time.time())
    assert scope is not None
    return active.breaker.store.usage(scope.store_key, time.time())


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from stores._redis_server import RedisServer, require_redis_server

    server = RedisServer(require_redis_server(), tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(params=["memory", "sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    kind = request.param
    if kind == "memory":
        return "memory://"
    if kind == "sqlite":
        return f"sqlite:///{tmp_path}/budgets.db"
    server = request.getfixturevalue("redis_server")
    server.flush()
    url: str = server.url
    return url


def test_the_user_window_holds_no_lease_and_exact_spend_after_retries(
    store_url: str, server: FakeServer, instrument: Any, tracker: SpanTracker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    no_backoff(monkeypatch)
    instrument(user_budget={"usd": 100, "window": "1d"}, store=store_url)
    client = server.openai_client(timeout=TIMEOUT, max_retries=2)
    with (
        spendfuse.run("window", user_id=USER, budget=spendfuse.Budget(usd=5)) as run,
        pytest.raises(openai.APITimeoutError),
    ):
        gpt_call(client)
    assert server.provider.request_count == 3
    reserved = reserved_per_attempt(tracker)
    usage = user_usage()
    # Three leases taken and each settled exactly once: nothing in flight, the money of three.
    assert usage.leases == 0 and all(value == 0 for value in usage.in_flight.values()), usage
    assert usage.spent["usd"] == run.spent.usd_micros == 3 * reserved
    assert usage.spent["turns"] == run.spent.turns == 1
    assert usage.spent["tokens"] == run.spent.tokens > 0
    attributes = attributes_of(tracker.chat_ended()[-1])
    assert run.spent.tokens == attributes["gen_ai.usage.input_tokens"] + attributes["gen_ai.usage.output_tokens"]


def test_a_retry_the_user_window_no_longer_admits_is_refused(
    store_url: str, server: FakeServer, instrument: Any, tracker: SpanTracker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    no_backoff(monkeypatch)
    instrument(store=store_url)
    with spendfuse.run("probe"), pytest.raises(openai.APITimeoutError):
        gpt_call(server.openai_client(timeout=TIMEOUT, max_retries=0))
    reserved = reserved_per_attempt(tracker)
    sent_before = server.provider.request_count
    # Room in the user's window for one attempt and a half; the run itself has plenty.
    instrument(user_budget={"usd": (reserved + reserved // 2) / 1_000_000, "window": "1d"},
               store=store_url)  # fmt: skip
    client = server.openai_client(timeout=TIMEOUT, max_retries=3)
    with (
        spendfuse.run("window", user_id=USER, budget=spendfuse.Budget(usd=5)) as run,
        pytest.raises(spendfuse.CostLimitExceeded) as caught,
    ):
        gpt_call(client)
    assert server.provider.request_count - sent_before == 1  # the retry never left
    assert (caught.value.scope, caught.value.key) == ("user", USER)
    usage = user_usage()
    assert usage.leases == 0 and all(value == 0 for value in usage.in_flight.values()), usage
    assert usage.spent["usd"] == run.spent.usd_micros == reserved
    assert usage.spent["turns"] == run.spent.turns == 1
    assert (run.balance.flight_usd, run.balance.flight_turns, run.balance.flight_tokens) == (0, 0, 0)


def test_anthropic_timed_out_attempts_are_each_charged(
    server: FakeServer, instrument: Any, tracker: SpanTracker, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_backoff(monkeypatch)
    instrument(user_budget={"usd": 100})
    client = server.anthropic_client(timeout=TIMEOUT, max_retries=1)
    with (
        spendfuse.run("claude", user_id=USER, budget=spendfuse.Budget(usd=5)) as run,
        pytest.raises(anthropic.APITimeoutError),
    ):
        client.messages.create(model=SONNET, max_tokens=256, messages=MESSAGES)
    assert server.provider.request_count == 2
    reserved = reserved_per_attempt(tracker)
    attributes = attributes_of(tracker.chat_ended()[-1])
    assert attributes["spendfuse.attempts"] == 2
    assert run.spent.usd_micros == micros(attributes["spendfuse.cost.usd"]) == 2 * reserved
    assert run.spent.turns == 1
    usage = user_usage()
    assert usage.leases == 0 and usage.spent["usd"] == 2 * reserved and usage.spent["turns"] == 1


def test_async_anthropic_timed_out_attempts_are_each_charged(
    server: FakeServer, instrument: Any, tracker: SpanTracker, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_backoff(monkeypatch)
    instrument()

    async def go() -> None:
        client = server.async_anthropic_client(timeout=TIMEOUT, max_retries=2)
        with pytest.raises(anthropic.APITimeoutError):
            await client.messages.create(model=SONNET, max_tokens=256, messages=MESSAGES)

    with spendfuse.run("async-claude", budget=spendfuse.Budget(usd=5)) as run:
        asyncio.run(go())
    assert server.provider.request_count == 3
    assert run.spent.turns == 1
    assert run.spent.usd_micros == 3 * reserved_per_attempt(tracker)


@pytest.mark.parametrize("sdk", ["anthropic", "openai"])
def test_a_stream_retried_after_a_529_costs_only_its_answer(
    sdk: str, instrument: Any, tracker: SpanTracker, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_backoff(monkeypatch)
    instrument(user_budget={"usd": 100})
    fake = FakeProvider(usage=FakeUsage(1000, 200))
    fake.enqueue(Reply.error(529), Reply.text("Sunny in Paris."))
    with spendfuse.run("stream", user_id=USER, budget=spendfuse.Budget(usd=5)) as run:
        if sdk == "anthropic":
            stream: Any = fake.anthropic_client(max_retries=1).messages.create(
                model=SONNET, max_tokens=256, messages=MESSAGES, stream=True
            )
        else:
            stream = fake.openai_client(max_retries=1).chat.completions.create(
                model=GPT, max_tokens=100, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
            )
        for _ in stream:
            pass
    assert fake.request_count == 2
    # claude-sonnet-4-5 $3/$15 per MTok, gpt-4.1 $2/$8: 1000 input and 200 output tokens, once.
    expected = 1000 * 3 + 200 * 15 if sdk == "anthropic" else 1000 * 2 + 200 * 8
    assert run.spent.usd_micros == expected and run.spent.turns == 1
    attributes = attributes_of(tracker.chat_ended()[-1])
    assert attributes["spendfuse.attempts"] == 2
    assert attributes["spendfuse.stream.end"] == "complete"
    assert micros(attributes["spendfuse.cost.usd"]) == expected
    assert "spendfuse.usage.estimated" not in attributes
    usage = user_usage()
    assert usage.leases == 0 and usage.spent["usd"] == expected and usage.spent["turns"] == 1


def test_a_refused_retry_is_recorded_on_the_call_span(
    server: FakeServer, instrument: Any, tracker: SpanTracker, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_backoff(monkeypatch)
    instrument()
    with spendfuse.run("probe"), pytest.raises(openai.APITimeoutError):
        gpt_call(server.openai_client(timeout=TIMEOUT, max_retries=0))
    reserved = reserved_per_attempt(tracker)
    budget = spendfuse.Budget(usd=(reserved + reserved // 2) / 1_000_000)
    with spendfuse.run("tight", budget=budget) as run, pytest.raises(spendfuse.CostLimitExceeded):
        gpt_call(server.openai_client(timeout=TIMEOUT, max_retries=2))
    span = tracker.chat_ended()[-1]
    attributes = attributes_of(span)
    assert attributes["spendfuse.breaker.tripped"] is True
    assert attributes["error.type"] == "CostLimitExceeded"
    assert [event.name for event in span.events] == ["spendfuse.breaker.tripped"]
    assert attributes["spendfuse.attempts"] == 1  # the refused retry was never sent
    assert micros(attributes["spendfuse.cost.usd"]) == run.spent.usd_micros == reserved
    assert attributes["spendfuse.usage.estimated"] is True
    assert run.tripped is not None and tracker.open_spans() == []


def test_a_retry_after_a_connection_that_never_opened_costs_only_its_answer(
    instrument: Any, tracker: SpanTracker, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_backoff(monkeypatch)
    instrument()
    fake = FakeProvider(usage=FakeUsage(1000, 200))
    answer = sdk_transport(fake)
    attempts: list[int] = []

    def refuse_once(request: Any) -> Any:
        attempts.append(1)
        if len(attempts) == 1:
            raise http.ConnectError("Connection refused", request=request)
        return answer.handle_request(request)

    client = clients.openai_client(max_retries=1, transport=http.MockTransport(refuse_once))
    with spendfuse.run("flaky", budget=spendfuse.Budget(usd=5)) as run:
        gpt_call(client)
    assert len(attempts) == 2 and fake.request_count == 1
    assert run.spent.usd_micros == 1000 * 2 + 200 * 8 and run.spent.turns == 1
    attributes = attributes_of(tracker.chat_ended()[-1])
    assert attributes["spendfuse.attempts"] == 2
    assert "spendfuse.usage.estimated" not in attributes


def test_a_read_reset_retried_then_answered_charges_both(
    instrument: Any, tracker: SpanTracker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reset after the body left, then answered: the lost attempt at its reservation, plus the answer."""
    no_backoff(monkeypatch)
    instrument()
    fake = FakeProvider(usage=FakeUsage(1000, 200))
    answer = sdk_transport(fake)
    attempts: list[int] = []

    def reset_once(request: Any) -> Any:
        attempts.append(1)
        if len(attempts) == 1:
            raise http.ReadError("Connection reset by peer", request=request)
        return answer.handle_request(request)

    client = clients.openai_client(max_retries=1, transport=http.MockTransport(reset_once))
    with spendfuse.run("reset", budget=spendfuse.Budget(usd=5)) as run:
        gpt_call(client)
    reserved = reserved_per_attempt(tracker)
    answered = 1000 * 2 + 200 * 8
    assert run.spent.usd_micros == reserved + answered and run.spent.turns == 1
    attributes = attributes_of(tracker.chat_ended()[-1])
    assert (attributes["spendfuse.attempts"], attributes["spendfuse.usage.estimated"]) == (2, True)
    assert micros(attributes["spendfuse.cost.usd"]) == reserved + answered
    assert run.spent.tokens == attributes["gen_ai.usage.input_tokens"] + attributes["gen_ai.usage.output_tokens"]


# -- the setting and the patch --------------------------------------------------------------------


def test_the_unanswered_setting() -> None:
    assert load_settings({}, environ={}).unanswered == "reserved"
    assert load_settings({}, environ={"SPENDFUSE_UNANSWERED": "released"}).unanswered == "released"
    assert load_settings({"unanswered": "reserved"}, environ={"SPENDFUSE_UNANSWERED": "released"}).unanswered == (
        "reserved"
    )
    with pytest.raises(ConfigError, match=r"SPENDFUSE_UNANSWERED: 'refund' .*accepted: 'reserved' or 'released'"):
        load_settings({}, environ={"SPENDFUSE_UNANSWERED": "refund"})
    with pytest.raises(ConfigError, match=r"^unanswered: True .*accepted: 'reserved' or 'released'"):
        load_settings({"unanswered": True}, environ={})


def test_uninstrument_restores_the_retry_hook(instrument: Any) -> None:
    classes = [getattr(module, name) for module in (anthropic._base_client, openai._base_client)
               for name in ("SyncAPIClient", "AsyncAPIClient")]  # fmt: skip
    instrument()
    assert all(hasattr(vars(cls)["_sleep_for_retry"], "__wrapped__") for cls in classes)
    spendfuse.uninstrument()
    assert not any(hasattr(vars(cls)["_sleep_for_retry"], "__wrapped__") for cls in classes)


def test_async_a_retry_after_a_connection_that_never_opened_costs_only_its_answer(
    instrument: Any, tracker: SpanTracker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The async clients' retry hook sees the exception the SDK caught, as the sync ones do."""
    no_backoff(monkeypatch)
    instrument()
    fake = FakeProvider(usage=FakeUsage(1000, 200))
    answer = fake.async_transport() if uses_httpx2("openai") else fake.httpx_transport()
    attempts: list[int] = []

    async def refuse_once(request: Any) -> Any:
        attempts.append(1)
        if len(attempts) == 1:
            raise http.ConnectError("Connection refused", request=request)
        return await answer.handle_async_request(request)

    async def go() -> None:
        client = clients.async_openai_client(max_retries=1, transport=http.MockTransport(refuse_once))
        await gpt_call(client)

    with spendfuse.run("async-flaky", budget=spendfuse.Budget(usd=5)) as run:
        asyncio.run(go())
    assert len(attempts) == 2 and fake.request_count == 1
    assert run.spent.usd_micros == 1000 * 2 + 200 * 8 and run.spent.turns == 1
    assert attributes_of(tracker.chat_ended()[-1])["spendfuse.attempts"] == 2


def test_a_retry_past_the_runs_clock_is_refused(
    server: FakeServer, instrument: Any, tracker: SpanTracker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run's wall clock runs out while the SDK waits for a slow provider: no further attempt."""
    no_backoff(monkeypatch)
    instrument()
    client = server.openai_client(timeout=TIMEOUT, max_retries=5)
    with (
        spendfuse.run("clock", budget=spendfuse.Budget(seconds=TIMEOUT / 2)) as run,
        pytest.raises(spendfuse.BudgetExceeded) as caught,
    ):
        gpt_call(client)
    assert caught.value.limit == "seconds"
    assert server.provider.request_count == 1
    assert run.spent.turns == 1 and run.spent.usd_micros == reserved_per_attempt(tracker)
    assert (run.balance.flight_usd, run.balance.flight_turns, run.balance.flight_tokens) == (0, 0, 0)


def test_a_retry_after_an_error_status_fits_where_its_released_attempt_was(
    store_url: str, instrument: Any, tracker: SpanTracker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Budgets with room for exactly one attempt: the 529'd attempt is released, so its retry fits.

    The retry's check counts the balances as they are once the failed attempt is closed (in the
    store, its lease is still in flight while the next one is taken): it must not see both."""
    no_backoff(monkeypatch)
    instrument(store=store_url)
    probe = FakeProvider(usage=FakeUsage(1000, 200))
    with spendfuse.run("probe"):
        probe.anthropic_client().messages.create(model=SONNET, max_tokens=256, messages=MESSAGES)
    reserved = reserved_per_attempt(tracker)
    exactly_one = reserved / 1_000_000
    instrument(user_budget={"usd": exactly_one, "window": "1d"}, store=store_url)
    fake = FakeProvider(usage=FakeUsage(1000, 200))
    fake.enqueue(Reply.error(529), Reply.text("Sunny."))
    with spendfuse.run("exact", user_id=USER, budget=spendfuse.Budget(usd=exactly_one)) as run:
        fake.anthropic_client(max_retries=1).messages.create(model=SONNET, max_tokens=256, messages=MESSAGES)
    assert fake.request_count == 2
    answered = 1000 * 3 + 200 * 15
    assert run.spent.usd_micros == answered and run.spent.turns == 1
    usage = user_usage()
    assert usage.leases == 0 and usage.spent["usd"] == answered and usage.spent["turns"] == 1


def test_an_approved_retry_overrun_is_reserved_and_settled(
    server: FakeServer, instrument: Any, tracker: SpanTracker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """on_exceeded approves the retries that no longer fit: they are sent, charged, and settled."""
    no_backoff(monkeypatch)
    instrument()
    with spendfuse.run("probe"), pytest.raises(openai.APITimeoutError):
        gpt_call(server.openai_client(timeout=TIMEOUT, max_retries=0))
    reserved = reserved_per_attempt(tracker)
    approvals: list[spendfuse.BudgetExceeded] = []

    def approve(error: spendfuse.BudgetExceeded) -> bool:
        approvals.append(error)
        return True

    limit = (reserved + reserved // 2) / 1_000_000
    instrument(user_budget={"usd": limit, "window": "1d"}, on_exceeded=approve)
    sent_before = server.provider.request_count
    with (
        spendfuse.run("approved", user_id=USER, budget=spendfuse.Budget(usd=5)) as run,
        pytest.raises(openai.APITimeoutError),
    ):
        gpt_call(server.openai_client(timeout=TIMEOUT, max_retries=2))
    assert server.provider.request_count - sent_before == 3
    assert [error.scope for error in approvals] == ["user", "user"]
    assert run.spent.usd_micros == 3 * reserved and run.spent.turns == 1
    assert (run.balance.flight_usd, run.balance.flight_turns, run.balance.flight_tokens) == (0, 0, 0)
    usage = user_usage()
    assert usage.leases == 0 and usage.spent["usd"] == 3 * reserved and usage.spent["turns"] == 1
    assert attributes_of(tracker.chat_ended()[-1])["spendfuse.breaker.approved"] is True
