"""Budget scopes (#18) through the real SDK clients and spendfuse.testing: team, org, model and
provider budgets at once, exact micro-dollars and request counts."""

from __future__ import annotations

import logging
import time
from typing import Any

import anthropic
import pytest

import spendfuse
from spendfuse import runtime
from spendfuse.budgets import stores
from spendfuse.budgets.budget import scope_key, window_bounds
from spendfuse.errors import ConfigError
from spendfuse.testing import FakeProvider, FakeUsage

SONNET = "claude-sonnet-4-5"
GPT = "gpt-4o"
MESSAGES = [{"role": "user", "content": "hi"}]
USAGE = FakeUsage(input_tokens=1000, output_tokens=200)
SONNET_COST = 1000 * 3 + 200 * 15  # micro-dollars at $3/$15 per MTok
GPT_COST = int(1000 * 2.5 + 200 * 10)
DAY = spendfuse.Budget


def call(client: anthropic.Anthropic, max_tokens: int = 1024) -> Any:
    return client.messages.create(model=SONNET, max_tokens=max_tokens, messages=MESSAGES)


def usage(scope: str, key: str, window: str = "1d") -> stores.ScopeUsage:
    active = runtime.current()
    assert active is not None
    now = time.time()
    start, _ = window_bounds(window, now)
    return active.breaker.store.usage(scope_key(scope, key, window, start), now)


def test_team_org_and_model_budgets_at_once(instrument: Any, telemetry: Any) -> None:
    instrument(
        budgets={
            "team": {"search": DAY(turns=3, window="1d"), "*": DAY(turns=100, window="1d")},
            "org": lambda key: DAY(usd=10, window="1d") if key == "acme" else None,
            "model": {SONNET: DAY(turns=5, window="1d")},
        }
    )
    fake = FakeProvider(usage=USAGE)
    client = fake.anthropic_client()
    with spendfuse.run("t1", scopes={"team": "search", "org": "acme"}):
        for _ in range(3):
            call(client)
        with pytest.raises(spendfuse.TurnLimitExceeded) as caught:
            call(client)
    assert fake.request_count == 3
    error = caught.value
    assert (error.scope, error.key, error.limit, error.limit_value, error.spent) == ("team", "search", "turns", 3, 3)
    assert "team 'search' (1d window) has used 3 of its 3 turns" in error.message
    assert "budgets['team'] for 'search'" in error.message
    # The refused call reserved nothing anywhere: every scope holds exactly the three settled calls.
    for scope, key in (("team", "search"), ("org", "acme"), ("model", SONNET)):
        got = usage(scope, key)
        assert got.spent == {"usd": 3 * SONNET_COST, "turns": 3, "tokens": 3 * 1200}, scope
        assert got.in_flight == {"usd": 0, "turns": 0, "tokens": 0} and got.leases == 0, scope
    # Another team of the same org: the model's budget (5 turns, all teams) stops it after 2 calls.
    with spendfuse.run("t2", scopes={"team": "ads", "org": "acme"}):
        call(client)
        call(client)
        with pytest.raises(spendfuse.TurnLimitExceeded) as caught:
            call(client)
    assert (caught.value.scope, caught.value.key) == ("model", SONNET)
    assert fake.request_count == 5
    assert usage("org", "acme").spent == {"usd": 5 * SONNET_COST, "turns": 5, "tokens": 5 * 1200}
    assert usage("team", "ads").spent["turns"] == 2 and usage("team", "search").spent["turns"] == 3
    trips = telemetry.metric_sum("spendfuse.breaker.trips", **{"spendfuse.scope": "model"})
    assert trips == 1


def test_org_usd_budget_is_exact_and_counts_across_runs(instrument: Any, telemetry: Any) -> None:
    # Worst case of one call: max_tokens 1024 at $15/MTok = 15,360 micro-dollars plus its input.
    # Settled: 6,000 each. After 3 calls (18,000 spent) the 4th's worst case cannot fit in 30,000.
    instrument(budgets={"org": {"acme": DAY(usd=0.03, window="month")}})
    fake = FakeProvider(usage=USAGE)
    client = fake.anthropic_client()
    for index in range(3):
        with spendfuse.run(f"r{index}", scopes={"org": "acme"}):
            call(client)
    with spendfuse.run("r3", scopes={"org": "acme"}), pytest.raises(spendfuse.CostLimitExceeded) as caught:
        call(client)
    assert fake.request_count == 3
    error = caught.value
    assert (error.scope, error.key, error.window) == ("org", "acme", "month")
    assert round(error.spent * 1_000_000) == 3 * SONNET_COST
    assert error.in_flight == 0
    assert usage("org", "acme", "month").spent["usd"] == 3 * SONNET_COST
    tripped = [s for s in telemetry.spans("chat ") if (s.attributes or {}).get("spendfuse.breaker.tripped")]
    event = next(e for e in tripped[0].events if e.name == "spendfuse.breaker.tripped")
    assert event.attributes["spendfuse.breaker.scope"] == "org" and event.attributes["spendfuse.breaker.key"] == "acme"
    assert event.attributes["spendfuse.breaker.spent"] == pytest.approx(3 * SONNET_COST / 1e6)
    assert event.attributes["spendfuse.breaker.in_flight"] == 0.0
    # Without the org key the call is not in the org's budget at all.
    with spendfuse.run("free"):
        call(client)
    assert fake.request_count == 4


def test_provider_scope_and_model_keys_come_from_each_call(instrument: Any) -> None:
    instrument(
        budgets={
            "provider": {"openai": DAY(turns=2, window="1h")},
            "model": {"*": DAY(turns=10, window="1h")},
        }
    )
    fake = FakeProvider(usage=USAGE)
    openai_client = fake.openai_client()
    for _ in range(2):
        openai_client.chat.completions.create(model=GPT, messages=MESSAGES, max_tokens=512)
    with pytest.raises(spendfuse.TurnLimitExceeded) as caught:
        openai_client.chat.completions.create(model=GPT, messages=MESSAGES, max_tokens=512)
    assert (caught.value.scope, caught.value.key) == ("provider", "openai")
    call(fake.anthropic_client())  # another provider: not in the openai budget
    assert fake.request_count == 3
    assert usage("model", GPT, "1h").spent == {"usd": 2 * GPT_COST, "turns": 2, "tokens": 2 * 1200}
    assert usage("model", SONNET, "1h").spent["usd"] == SONNET_COST
    assert usage("provider", "openai", "1h").spent["turns"] == 2


def test_nested_runs_inherit_and_override_keys(instrument: Any, telemetry: Any) -> None:
    instrument(budgets={"team": DAY(turns=100, window="1d"), "org": DAY(turns=100, window="1d")})
    fake = FakeProvider(usage=USAGE)
    client = fake.anthropic_client()
    with spendfuse.run("parent", user_id="alice", scopes={"team": "search", "org": "acme"}) as parent:
        call(client)
        with spendfuse.run("child", scopes={"team": "ads", "tenant": "t-9"}) as child:
            assert child.scopes == {"team": "ads", "org": "acme", "tenant": "t-9", "user": "alice"}
            assert child.user_id == "alice"
            call(client)
    assert parent.scopes == {"team": "search", "org": "acme", "user": "alice"}
    assert usage("team", "search").spent["turns"] == 1
    assert usage("team", "ads").spent["turns"] == 1
    assert usage("org", "acme").spent["turns"] == 2
    chats = telemetry.spans("chat ")
    assert [s.attributes.get("spendfuse.scope.team") for s in chats] == ["search", "ads"]
    assert chats[1].attributes.get("spendfuse.scope.tenant") == "t-9"
    child_span = next(s for s in telemetry.spans("invoke_agent") if s.attributes["spendfuse.run.id"] == "child")
    assert child_span.attributes["spendfuse.scope.org"] == "acme"
    assert "spendfuse.scope.user" not in child_span.attributes  # user.id says it


def test_metric_labels_only_for_metric_scopes(instrument: Any, telemetry: Any) -> None:
    instrument(budgets={"team": DAY(usd=5, window="1d")}, metric_scopes=["team"])
    fake = FakeProvider(usage=USAGE)
    with spendfuse.run("m", scopes={"team": "search", "org": "acme"}):
        call(fake.anthropic_client())
    points = telemetry.metric_points("gen_ai.client.token.usage")
    assert points and all(p.attributes.get("spendfuse.scope.team") == "search" for p in points)
    assert all("spendfuse.scope.org" not in p.attributes for p in points)
    assert all("spendfuse.run.id" not in p.attributes for p in points)
    cost = telemetry.metric_sum("spendfuse.cost", **{"spendfuse.scope.team": "search"})
    assert round(cost * 1_000_000) == SONNET_COST


def test_refusal_on_one_scope_reserves_nothing_on_the_others(instrument: Any) -> None:
    instrument(
        budgets={"team": DAY(usd=1, window="1d"), "org": DAY(usd=0.001, window="1d")},
        user_budget=DAY(usd=1, window="1d"),
    )
    fake = FakeProvider(usage=USAGE)
    with spendfuse.run("x", user_id="bob", scopes={"team": "search", "org": "tiny"}) as the_run:
        with pytest.raises(spendfuse.CostLimitExceeded) as caught:
            call(fake.anthropic_client())
        assert the_run.balance.flight_usd == 0 and the_run.spent.turns == 0
    assert (caught.value.scope, caught.value.key) == ("org", "tiny")
    assert fake.request_count == 0
    for scope, key in (("team", "search"), ("user", "bob"), ("org", "tiny")):
        got = usage(scope, key)
        assert got.leases == 0 and sum(got.in_flight.values()) == 0 and sum(got.spent.values()) == 0, scope


def test_on_exceeded_and_clamp_work_for_keyed_scopes(instrument: Any) -> None:
    seen: list[spendfuse.BudgetExceeded] = []

    def approve(error: spendfuse.BudgetExceeded) -> bool:
        seen.append(error)
        return True

    instrument(budgets={"team": DAY(turns=1, window="1d")}, on_exceeded=approve)
    fake = FakeProvider(usage=USAGE)
    with spendfuse.run("hook", scopes={"team": "ops"}):
        call(fake.anthropic_client())
        call(fake.anthropic_client())  # approved overrun
    assert [(e.scope, e.key) for e in seen] == [("team", "ops")]
    assert usage("team", "ops").spent["turns"] == 2 and usage("team", "ops").leases == 0
    spendfuse.uninstrument()

    instrument(budgets={"team": DAY(tokens=700, window="1d")}, clamp=True, clamp_floor=16)
    fake = FakeProvider(usage=FakeUsage(input_tokens=10, output_tokens=20))
    with spendfuse.run("clamp", scopes={"team": "small"}):
        call(fake.anthropic_client(), max_tokens=4096)
    sent = fake.requests[0].json
    assert sent is not None and 16 <= sent["max_tokens"] < 700


def test_warning_says_spent_and_in_flight_apart(instrument: Any, telemetry: Any, caplog: Any) -> None:
    instrument(budgets={"team": DAY(usd=0.02, window="1d")}, warn_at=0.5)
    fake = FakeProvider(usage=USAGE)
    with caplog.at_level(logging.WARNING, logger="spendfuse"), spendfuse.run("w", scopes={"team": "carol"}):
        call(fake.anthropic_client())
    chat = telemetry.span("chat ")
    event = next(e for e in chat.events if e.name == "spendfuse.budget.warning")
    attributes = dict(event.attributes or {})
    assert attributes["spendfuse.breaker.scope"] == "team" and attributes["spendfuse.breaker.key"] == "carol"
    assert attributes["spendfuse.breaker.spent"] == 0.0
    # In flight: this call's own worst case (max_tokens 1024 at $15/MTok plus its input estimate).
    assert 0.01536 <= attributes["spendfuse.breaker.in_flight"] < 0.02
    messages = [r.getMessage() for r in caplog.records if "budget" in r.getMessage()]
    assert any(
        "team 'carol' has spent $0 of its $0.02 usd budget, and calls in flight have reserved $0.015" in m
        and "(warn_at=0.5)" in m
        for m in messages
    ), messages


def test_run_scope_errors_name_the_key_and_the_form() -> None:
    with pytest.raises(ConfigError, match=r"the model scope takes its key from each call"):
        spendfuse.run("x", scopes={"model": "gpt-4o"})
    with pytest.raises(ConfigError, match=r"'Team' is not a scope name"):
        spendfuse.run("x", scopes={"Team": "a"})
    with pytest.raises(ConfigError, match=r"\['team'\]: ''; accepted: a non-empty string key"):
        spendfuse.run("x", scopes={"team": ""})
    with pytest.raises(ConfigError, match=r"two different users"):
        spendfuse.run("x", user_id="a", scopes={"user": "b"})
    assert spendfuse.run("x", user_id="a", scopes={"user": "a"})._user_id == "a"


def test_concurrent_tasks_and_threads_never_overspend_overlapping_scopes(instrument: Any) -> None:
    import asyncio
    import threading

    # org: 11 turns; team search: 7 turns. Tasks of two teams race; the org must stop at 11 exactly.
    instrument(budgets={"team": {"search": DAY(turns=7, window="1d")}, "org": DAY(turns=11, window="1d")})
    fake = FakeProvider(usage=USAGE, latency=0.02)
    client = fake.async_anthropic_client()

    async def one(team: str) -> bool:
        with spendfuse.run(scopes={"team": team, "org": "acme"}):
            try:
                await client.messages.create(model=SONNET, max_tokens=64, messages=MESSAGES)
            except spendfuse.BudgetExceeded:
                return False
            return True

    async def race() -> list[bool]:
        return await asyncio.gather(*(one("search" if i % 2 else "ads") for i in range(30)))

    admitted = asyncio.run(race())
    assert sum(admitted) == 11 == fake.request_count
    before = usage("team", "search").spent["turns"]
    assert 0 < before <= 7
    assert usage("org", "acme").spent == {"usd": 11 * SONNET_COST, "turns": 11, "tokens": 11 * 1200}
    assert usage("org", "acme").leases == 0

    sync_client = fake.anthropic_client()
    results: list[bool] = []

    def worker() -> None:
        with spendfuse.run(scopes={"team": "search", "org": "other"}):
            try:
                sync_client.messages.create(model=SONNET, max_tokens=64, messages=MESSAGES)
                results.append(True)
            except spendfuse.BudgetExceeded as error:
                assert (error.scope, error.key) == ("team", "search")
                results.append(False)

    threads = [threading.Thread(target=worker) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    team = usage("team", "search")
    assert team.spent["turns"] == 7 and team.leases == 0
    assert sum(results) == 7 - before and len(results) == 12
    assert fake.request_count == 11 + sum(results)


@pytest.mark.parametrize("policy", ["closed", "open"])
def test_a_failing_scope_callable_outside_a_run_follows_store_failure(instrument: Any, policy: str) -> None:
    def broken(_key: str) -> spendfuse.Budget | None:
        raise RuntimeError("pricing service down")

    instrument(budgets={"model": broken}, store_failure=policy)
    fake = FakeProvider(usage=USAGE)
    if policy == "closed":
        with pytest.raises(spendfuse.BudgetStoreUnavailable, match=r"the budgets\['model'\] callable failed"):
            call(fake.anthropic_client())
        assert fake.request_count == 0
    else:
        call(fake.anthropic_client())
        assert fake.request_count == 1
