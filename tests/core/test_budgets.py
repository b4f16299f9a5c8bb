"""The breaker through the real SDK clients and the fake provider: exact counts and money."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import logging
import threading
from typing import Any

import anthropic
import pytest

import spendfuse
from spendfuse.testing import FakeProvider, FakeUsage, Reply

SONNET = "claude-sonnet-4-5"
MESSAGES = [{"role": "user", "content": "hi"}]
USAGE = FakeUsage(input_tokens=1000, output_tokens=200)
COST = 1000 * 3 + 200 * 15  # micro-dollars at $3/$15 per MTok


def call(client: anthropic.Anthropic, max_tokens: int = 1024) -> Any:
    return client.messages.create(model=SONNET, max_tokens=max_tokens, messages=MESSAGES)


def test_turns_limit_lets_exactly_n_calls_through(instrument: Any, telemetry: Any) -> None:
    instrument()
    fake = FakeProvider(usage=USAGE)
    client = fake.anthropic_client()
    with pytest.raises(spendfuse.TurnLimitExceeded) as caught, spendfuse.run("t1", budget=spendfuse.Budget(turns=3)):
        for _ in range(10):
            call(client)
    assert fake.request_count == 3
    error = caught.value
    assert (error.scope, error.key, error.limit, error.limit_value, error.spent) == ("run", "t1", "turns", 3, 3)
    assert error.run_id == "t1" and error.model == SONNET
    assert not isinstance(error, anthropic.APIError)
    blocked = [s for s in telemetry.spans("chat ") if (s.attributes or {}).get("spendfuse.breaker.tripped")]
    assert len(blocked) == 1
    event = blocked[0].events[0]
    assert event.name == "spendfuse.breaker.tripped"
    assert event.attributes["spendfuse.breaker.limit"] == "turns"
    assert event.attributes["spendfuse.breaker.scope"] == "run"
    assert blocked[0].status.status_code.name == "ERROR"
    run_span = telemetry.span("invoke_agent")
    assert run_span.attributes["spendfuse.outcome"] == "tripped"
    assert run_span.attributes["spendfuse.spent.turns"] == 3
    assert run_span.attributes["spendfuse.spent.usd"] == pytest.approx(3 * COST / 1e6)
    assert telemetry.metric_sum("spendfuse.breaker.trips", **{"spendfuse.limit": "turns"}) == 1
    assert telemetry.metric_sum("spendfuse.runs", **{"spendfuse.outcome": "tripped"}) == 1


def test_turns_limit_holds_with_16_threads(instrument: Any) -> None:
    instrument()
    fake = FakeProvider(usage=USAGE, latency=0.02)
    client = fake.anthropic_client()
    refused: list[BaseException] = []
    with spendfuse.run("threads", budget=spendfuse.Budget(turns=5)) as run:
        barrier = threading.Barrier(16)

        def worker() -> None:
            barrier.wait()
            try:
                call(client)
            except spendfuse.BudgetExceeded as exc:
                refused.append(exc)

        threads = [threading.Thread(target=contextvars.copy_context().run, args=(worker,)) for _ in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert fake.request_count == 5
    assert len(refused) == 11
    assert run.spent.turns == 5
    assert run.balance.flight_turns == 0 and run.balance.flight_usd == 0


def test_turns_limit_holds_with_32_overlapping_tasks(instrument: Any) -> None:
    instrument()
    fake = FakeProvider(usage=USAGE, latency=0.02)

    async def main() -> tuple[int, Any]:
        client = fake.async_anthropic_client()
        async with spendfuse.run("tasks", budget=spendfuse.Budget(turns=7)) as run:
            results = await asyncio.gather(
                *[client.messages.create(model=SONNET, max_tokens=64, messages=MESSAGES) for _ in range(32)],
                return_exceptions=True,
            )
        return sum(isinstance(r, spendfuse.TurnLimitExceeded) for r in results), run

    refused, run = asyncio.run(main())
    assert fake.request_count == 7
    assert refused == 25
    assert run.spent.turns == 7


def test_usd_limit_never_exceeded_and_blocked_call_never_sent(instrument: Any) -> None:
    instrument()
    fake = FakeProvider(usage=USAGE)
    client = fake.anthropic_client()
    # Worst case of one call: the estimate of "hi" + 1024 output tokens at $15/MTok.
    budget = spendfuse.Budget(usd=0.05)
    with pytest.raises(spendfuse.CostLimitExceeded) as caught, spendfuse.run("usd", budget=budget) as run:
        for _ in range(100):
            call(client)
    sent = fake.request_count
    assert run.spent.usd_micros == sent * COST
    assert run.spent.usd_micros <= 50_000
    # No false block: the refused call's worst case did not fit next to what was spent.
    error = caught.value
    assert error.spent * 1e6 + error.requested * 1e6 > 50_000
    assert error.limit_value == pytest.approx(0.05)
    assert "run 'usd' would exceed its $0.05 budget" in str(error)
    assert "claude-sonnet-4-5, max_tokens=1024" in str(error)
    assert "raise the budget or lower max_tokens" in str(error)


def test_exact_settlement_of_a_stream(instrument: Any) -> None:
    instrument()
    fake = FakeProvider(usage=USAGE)
    with spendfuse.run("s") as run:
        stream = fake.anthropic_client().messages.create(model=SONNET, max_tokens=1024, messages=MESSAGES, stream=True)
        for _ in stream:
            pass
    assert run.spent.usd_micros == COST


def test_abandoned_stream_is_charged_for_what_it_received(instrument: Any, telemetry: Any) -> None:
    instrument()
    fake = FakeProvider()
    fake.enqueue(Reply.text(" ".join(["word"] * 200)))
    with spendfuse.run("abandon") as run:
        stream = fake.anthropic_client().messages.create(model=SONNET, max_tokens=1024, messages=MESSAGES, stream=True)
        for index, _event in enumerate(stream):
            if index == 5:
                break
        del stream
        gc.collect()  # on releases where the stream sits in a reference cycle, it is freed here...
        spendfuse.flush()  # ...and settled at the next safe point outside every lock (see critical)
        assert run.balance.flight_turns == 0
    span = telemetry.span("chat ")
    attributes = span.attributes or {}
    assert attributes["spendfuse.stream.end"] == "abandoned"
    assert attributes["spendfuse.usage.estimated"] is True
    assert attributes["gen_ai.usage.output_tokens"] >= 1
    assert run.spent.usd_micros > 0
    assert run.spent.turns == 1


def test_closed_stream_settles_once(instrument: Any, telemetry: Any) -> None:
    instrument()
    fake = FakeProvider(usage=USAGE)
    with spendfuse.run("closed") as run:
        stream = fake.anthropic_client().messages.create(model=SONNET, max_tokens=1024, messages=MESSAGES, stream=True)
        next(iter(stream))
        stream.close()
        stream.close()
        del stream
        gc.collect()
    assert len(telemetry.spans("chat ")) == 1
    assert telemetry.span("chat ").attributes["spendfuse.stream.end"] == "closed"
    assert run.spent.turns == 1


def test_failed_call_releases_money_and_keeps_the_turn(instrument: Any, telemetry: Any) -> None:
    instrument()
    fake = FakeProvider(usage=USAGE)
    fake.enqueue(Reply.error(500))
    with spendfuse.run("fail", budget=spendfuse.Budget(usd=1.0, turns=5)) as run:
        with pytest.raises(anthropic.InternalServerError):
            call(fake.anthropic_client())
        assert run.balance.flight_usd == 0 and run.balance.flight_turns == 0
        assert run.spent.usd_micros == 0
        assert run.spent.turns == 1
    span = telemetry.span("chat ")
    assert span.attributes["error.type"] == "InternalServerError"
    assert span.status.status_code.name == "ERROR"
    assert span.attributes["spendfuse.cost.usd"] == 0.0


def test_mid_stream_failure_charges_what_was_received(instrument: Any, telemetry: Any) -> None:
    instrument()
    fake = FakeProvider()
    fake.enqueue(Reply.stream_failure(after_events=4))
    with spendfuse.run("cut") as run:
        stream = call_stream(fake)
        with pytest.raises(Exception) as caught:
            for _ in stream:
                pass
        assert not isinstance(caught.value, spendfuse.BudgetExceeded)
    span = telemetry.span("chat ")
    assert span.attributes["spendfuse.stream.end"] == "error"
    assert run.spent.turns == 1
    assert run.balance.flight_usd == 0


def call_stream(fake: FakeProvider) -> Any:
    return fake.anthropic_client().messages.create(model=SONNET, max_tokens=1024, messages=MESSAGES, stream=True)


def test_cancellation_mid_call_leaves_no_reservation(instrument: Any) -> None:
    instrument()
    fake = FakeProvider(usage=USAGE, latency=1.0)

    async def main() -> Any:
        client = fake.async_anthropic_client()
        async with spendfuse.run("cancel", budget=spendfuse.Budget(usd=1.0)) as run:
            task = asyncio.create_task(client.messages.create(model=SONNET, max_tokens=64, messages=MESSAGES))
            await asyncio.sleep(0.1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        return run

    run = asyncio.run(main())
    assert run.balance.flight_usd == 0 and run.balance.flight_turns == 0 and run.balance.flight_tokens == 0
    assert run.spent.usd_micros == 0


def test_nested_runs_roll_up_into_the_parent_budget(instrument: Any, telemetry: Any) -> None:
    instrument()
    fake = FakeProvider(usage=USAGE)
    client = fake.anthropic_client()
    with spendfuse.run("parent", user_id="alice", budget=spendfuse.Budget(turns=3)) as parent:
        with spendfuse.run("child-1") as child:
            call(client)
            call(client)
            assert child.user_id == "alice"
        with pytest.raises(spendfuse.TurnLimitExceeded) as caught, spendfuse.run("child-2"):
            call(client)
            call(client)
    assert caught.value.key == "parent"
    assert fake.request_count == 3
    assert parent.spent.turns == 3 and child.spent.turns == 2
    assert parent.spent.usd_micros == 3 * COST
    parent_span = next(s for s in telemetry.spans("invoke_agent") if s.parent is None)
    children = [s for s in telemetry.spans("invoke_agent") if s.parent is not None]
    assert len(children) == 2
    assert all(c.context.trace_id == parent_span.context.trace_id for c in children)
    assert {c.attributes["spendfuse.run.id"] for c in children} == {"child-1", "child-2"}


def test_user_window_spans_runs_and_separates_users(instrument: Any) -> None:
    instrument(user_budget=spendfuse.Budget(turns=2, window="1d"))
    fake = FakeProvider(usage=USAGE)
    client = fake.anthropic_client()
    with spendfuse.run("a1", user_id="alice"):
        call(client)
    with spendfuse.run("a2", user_id="alice"):
        call(client)
        with pytest.raises(spendfuse.TurnLimitExceeded) as caught:
            call(client)
    assert caught.value.scope == "user" and caught.value.key == "alice"
    assert caught.value.window_resets_at is not None and caught.value.window_resets_at.tzinfo is not None
    with spendfuse.run("b1", user_id="bob"):
        call(client)
        call(client)
    assert fake.request_count == 4


def test_tiers_and_per_user_overrides(instrument: Any) -> None:
    instrument(
        user_budget={
            "tiers": {"free": {"usd": 0.01, "window": "1d"}, "enterprise": {"usd": 20, "window": "1d"}},
            "users": {"carol": "enterprise"},
            "default": "free",
        }
    )
    fake = FakeProvider(usage=USAGE)
    client = fake.anthropic_client()
    with spendfuse.run(user_id="dave"), pytest.raises(spendfuse.CostLimitExceeded) as caught:
        call(client, max_tokens=1024)  # worst case > $0.01
    assert caught.value.scope == "user" and caught.value.limit_value == pytest.approx(0.01)
    assert fake.request_count == 0
    with spendfuse.run(user_id="carol"):
        call(client, max_tokens=1024)
    assert fake.request_count == 1


def test_clamp_lowers_max_tokens_to_fit(instrument: Any, telemetry: Any) -> None:
    instrument(clamp=True, clamp_floor=16)
    fake = FakeProvider(usage=FakeUsage(input_tokens=10, output_tokens=20))
    with spendfuse.run("clamp", budget=spendfuse.Budget(tokens=600)):
        call(fake.anthropic_client(), max_tokens=4096)
    sent = fake.requests[0].json
    assert sent is not None
    assert 16 <= sent["max_tokens"] < 600
    assert telemetry.span("chat ").attributes["spendfuse.clamped.max_tokens"] == sent["max_tokens"]


def test_clamp_refuses_below_the_floor(instrument: Any) -> None:
    instrument(clamp=True, clamp_floor=500)
    fake = FakeProvider(usage=USAGE)
    with spendfuse.run("clamp", budget=spendfuse.Budget(tokens=300)), pytest.raises(spendfuse.TokenLimitExceeded):
        call(fake.anthropic_client(), max_tokens=4096)
    assert fake.request_count == 0


def test_warn_at_fires_once_per_scope(instrument: Any, telemetry: Any, caplog: Any) -> None:
    instrument(warn_at=0.5)
    fake = FakeProvider(usage=USAGE)
    client = fake.anthropic_client()
    with caplog.at_level(logging.WARNING, logger="spendfuse"), spendfuse.run("w", budget=spendfuse.Budget(turns=10)):
        for _ in range(8):
            call(client)
    assert telemetry.metric_sum("spendfuse.budget.warnings") == 1
    warned = [s for s in telemetry.spans("chat ") if any(e.name == "spendfuse.budget.warning" for e in s.events)]
    assert len(warned) == 1
    assert sum("warn_at" in r.getMessage() for r in caplog.records) == 1


def test_on_exceeded_can_approve_and_deny(instrument: Any, telemetry: Any) -> None:
    seen: list[spendfuse.BudgetExceeded] = []

    def approve(error: spendfuse.BudgetExceeded) -> bool:
        seen.append(error)
        return True

    instrument(on_exceeded=approve)
    fake = FakeProvider(usage=USAGE)
    with spendfuse.run("approve", budget=spendfuse.Budget(turns=1)) as run:
        call(fake.anthropic_client())
        call(fake.anthropic_client())
    assert fake.request_count == 2 and len(seen) == 1
    assert run.spent.turns == 2
    assert any((s.attributes or {}).get("spendfuse.breaker.approved") for s in telemetry.spans("chat "))

    def explode(error: spendfuse.BudgetExceeded) -> bool:
        raise RuntimeError("hook broke")

    instrument(on_exceeded=explode)
    with spendfuse.run("deny", budget=spendfuse.Budget(turns=1)), pytest.raises(spendfuse.TurnLimitExceeded):
        call(fake.anthropic_client())
        call(fake.anthropic_client())
    assert fake.request_count == 3


def test_unpriced_model_with_usd_limit_is_refused(instrument: Any, telemetry: Any) -> None:
    instrument()
    fake = FakeProvider(usage=USAGE)
    client = fake.anthropic_client()
    with spendfuse.run("unpriced", budget=spendfuse.Budget(usd=1)), pytest.raises(spendfuse.UnpricedModelError) as e:
        client.messages.create(model="claude-imaginary-9", max_tokens=64, messages=MESSAGES)
    assert "claude-imaginary-9" in str(e.value) and "prices" in str(e.value)
    assert fake.request_count == 0
    with spendfuse.run("tokens-only", budget=spendfuse.Budget(turns=5)) as run:
        client.messages.create(model="claude-imaginary-9", max_tokens=64, messages=MESSAGES)
    span = telemetry.spans("chat claude-imaginary-9")[-1]
    assert span.attributes["spendfuse.cost.unknown"] is True
    assert "spendfuse.cost.usd" not in span.attributes
    assert run.spent.unknown_cost_calls == 1 and run.spent.tokens == 1200


def test_price_overrides_make_a_model_priced(instrument: Any) -> None:
    instrument(prices={"claude-imaginary-9": {"input": 1.0, "output": 2.0}})
    fake = FakeProvider(usage=USAGE)
    with spendfuse.run("priced", budget=spendfuse.Budget(usd=1)) as run:
        fake.anthropic_client().messages.create(model="claude-imaginary-9", max_tokens=64, messages=MESSAGES)
    assert run.spent.usd_micros == 1000 * 1 + 200 * 2


def test_repeats_stops_a_stuck_tool_loop(instrument: Any) -> None:
    instrument()
    fake = FakeProvider(usage=USAGE)
    fake.responder = lambda _request: Reply.tool_call("search", {"q": "same"})
    client = fake.anthropic_client()
    with (
        pytest.raises(spendfuse.RepeatLimitExceeded) as caught,
        spendfuse.run("loop", budget=spendfuse.Budget(repeats=3)),
    ):
        for _ in range(20):
            call(client)
    assert fake.request_count == 4  # the 4th identical request is seen, the 5th call refused
    assert caught.value.limit == "repeats" and caught.value.spent == 4
    assert "stuck in a loop" in str(caught.value)


def test_seconds_limit_refuses_calls_after_the_wall_clock(instrument: Any) -> None:
    instrument()
    fake = FakeProvider(usage=USAGE)
    with pytest.raises(spendfuse.TimeLimitExceeded), spendfuse.run("slow", budget=spendfuse.Budget(seconds=0.2)) as r:
        call(fake.anthropic_client())
        r.started -= 1.0  # as if a second passed
        call(fake.anthropic_client())
    assert fake.request_count == 1


def test_budget_validation_names_the_problem() -> None:
    for bad, text in (
        ({"usd": -1}, "negative"),
        ({"usd": float("nan")}, "finite"),
        ({"turns": 1.5}, "whole"),
        ({"window": "2w"}, "window"),
    ):
        with pytest.raises(spendfuse.ConfigError, match=text):
            spendfuse.Budget(**bad)
    with pytest.raises(spendfuse.ConfigError, match="SPENDFUSE_RUN_BUDGET"):
        spendfuse.Budget.parse("usd=abc", source="SPENDFUSE_RUN_BUDGET")
    assert spendfuse.Budget.parse("usd=0.5,turns=20") == spendfuse.Budget(usd=0.5, turns=20)


def test_cache_tokens_are_priced_exactly(instrument: Any, telemetry: Any) -> None:
    instrument()
    fake = FakeProvider(
        usage=FakeUsage(input_tokens=1000, output_tokens=200, cache_read_tokens=600, cache_write_tokens=300)
    )
    system = [{"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}}]
    with spendfuse.run("cache") as run:
        fake.anthropic_client().messages.create(model=SONNET, max_tokens=64, system=system, messages=MESSAGES)
    # 100 uncached at $3, 600 cache reads at $0.30, 300 cache writes (5m) at $3.75, 200 out at $15.
    assert run.spent.usd_micros == 100 * 3 + 180 + 1125 + 3000
    attributes = telemetry.span("chat ").attributes
    assert attributes["gen_ai.usage.input_tokens"] == 1000
    assert attributes["gen_ai.usage.cache_read.input_tokens"] == 600
    assert attributes["gen_ai.usage.cache_creation.input_tokens"] == 300


def test_cache_control_prices_the_worst_case_as_cache_writes() -> None:
    from spendfuse.instrumentation.anthropic import extract_request

    plain = extract_request("messages", {"model": SONNET, "max_tokens": 10, "messages": MESSAGES})
    cached = extract_request(
        "messages",
        {
            "model": SONNET,
            "max_tokens": 10,
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "text", "text": "hi", "cache_control": {"type": "ephemeral", "ttl": "1h"}}],
                }
            ],
        },
    )
    assert (plain.cache_write, plain.cache_write_1h) == (False, False)
    assert (cached.cache_write, cached.cache_write_1h) == (True, True)
