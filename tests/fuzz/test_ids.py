"""Fuzzed user ids and run ids: any unicode (lone surrogates too), control characters, huge.

The stores keep every scope key apart (no cross-talk between keys that differ by one character,
by normalization, or that look like each other's prefix), and the breaker, end to end through the
real SDK client, budgets each user on their own and never raises anything but its deliberate errors.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from stores._redis_server import RedisServer, require_redis_server

import spendfuse
from spendfuse import runtime
from spendfuse.budgets.stores import TURNS, USD, BudgetStore, ScopeRequest, open_store
from spendfuse.testing import FakeProvider, FakeUsage

MESSAGES = [{"role": "user", "content": "hi"}]
IDS = settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

tricky = st.sampled_from([
    "", " ", "*", "?", "[a]", "{tag}", "}{", "'; DROP TABLE leases; --", "\x00", "a\x00b", "\n", "\r\n", "\t",
    "user/lifetime/x", "\\", "%s", "%", "_", "é", "e\u0301", "ﬁ", "\U0001f600", "\u202e", "\ufeff", "\udc80",
    "\ud800", "a" * 10_000,
])  # fmt: skip
any_text = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=40)
identifier = st.one_of(tricky, any_text, st.tuples(tricky, any_text).map("".join))


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = RedisServer(require_redis_server(), tmp_path_factory.mktemp("redis-ids"))
    server.start()
    yield server.url
    server.stop()


BACKENDS = ["memory", "sqlite", pytest.param("redis", marks=pytest.mark.redis)]


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "memory":
        return "memory://"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/ids.db"
    url: str = request.getfixturevalue("redis_url")
    return url


@pytest.fixture
def store(store_url: str) -> Iterator[BudgetStore]:
    opened = open_store(store_url, timeout=2.0)
    yield opened
    opened.close()


@IDS
@given(first=identifier, second=identifier, spend_a=st.integers(1, 10**6), spend_b=st.integers(1, 10**6))
def test_store_keys_never_share_a_balance(
    first: str, second: str, spend_a: int, spend_b: int, store: BudgetStore
) -> None:
    assume(first != second)
    for key in (first, second):
        store.reset(key)
    now = time.time()
    limits = {USD: 10**7, TURNS: 1}
    assert store.reserve("a", [ScopeRequest(first, limits, {USD: spend_a, TURNS: 1})], now + 60, now) is None
    assert store.reserve("b", [ScopeRequest(second, limits, {USD: spend_b, TURNS: 1})], now + 60, now) is None
    # The turn limit of 1 is per key: a second reservation on either key is refused, with its own numbers.
    denial = store.reserve("a2", [ScopeRequest(first, limits, {USD: 1, TURNS: 1})], now + 60, now)
    assert denial is not None and denial.key == first and denial.metric == TURNS and denial.in_flight == 1
    assert store.settle("a", {USD: spend_a - 1, TURNS: 1}, now)
    usage_a, usage_b = store.usage(first, now), store.usage(second, now)
    assert (usage_a.spent[USD], usage_a.in_flight[USD], usage_a.leases) == (spend_a - 1, 0, 0)
    assert (usage_b.spent[USD], usage_b.in_flight[USD], usage_b.leases) == (0, spend_b, 1)
    assert store.release("b", now)
    assert store.usage(second, now).in_flight[USD] == 0
    assert store.usage(first, now).spent[USD] == spend_a - 1


@pytest.fixture
def breaker_store(store_url: str) -> str:
    return store_url


@IDS
@given(first=identifier, second=identifier, run_id=identifier.filter(bool))  # run("") means "make me an id"
def test_breaker_budgets_each_user_alone(
    first: str, second: str, run_id: str, breaker_store: str, instrument: Any, telemetry: Any
) -> None:
    assume(first != second)
    instrument(store=breaker_store, user_budget={"turns": 1})
    active = runtime.current()
    assert active is not None
    for user in (first, second):
        active.breaker.store.reset(f"user/lifetime/{user}")
    telemetry.clear_spans()
    fake = FakeProvider(usage=FakeUsage(10, 5))
    client = fake.anthropic_client()

    def call(user: str) -> spendfuse.Run:
        with spendfuse.run(run_id, user_id=user) as run:
            client.messages.create(model="claude-sonnet-4-5", max_tokens=32, messages=MESSAGES)
        return run

    first_run = call(first)
    with pytest.raises(spendfuse.TurnLimitExceeded) as caught:
        call(first)
    assert (caught.value.scope, caught.value.key, caught.value.user_id) == ("user", first, first)
    assert caught.value.run_id == run_id
    second_run = call(second)  # not blocked by the first user's spend
    assert fake.request_count == 2
    assert first_run.run_id == second_run.run_id == run_id
    assert first_run.spent.turns == second_run.spent.turns == 1
    spans = telemetry.spans("chat ")
    assert [span.attributes["user.id"] for span in spans] == [first, first, second]
    assert all(span.attributes["spendfuse.run.id"] == run_id for span in spans)
    client.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_megabyte_user_id(backend: str, request: pytest.FixtureRequest, tmp_path: Path, instrument: Any) -> None:
    url = {"memory": "memory://", "sqlite": f"sqlite:///{tmp_path}/huge.db"}.get(backend)
    if url is None:
        url = request.getfixturevalue("redis_url")
    instrument(store=url, user_budget={"turns": 2})
    huge = "\U0001f600" * 250_000  # 1 MB of UTF-8
    fake = FakeProvider(usage=FakeUsage(10, 5))
    with spendfuse.run("x" * 100_000, user_id=huge) as run:
        fake.anthropic_client().messages.create(model="claude-sonnet-4-5", max_tokens=32, messages=MESSAGES)
    assert run.spent.turns == 1
    active = runtime.current()
    assert active is not None
    assert active.breaker.store.usage(f"user/lifetime/{huge}", time.time()).spent[TURNS] == 1
    assert active.breaker.store.usage(f"user/lifetime/{huge[:-1]}", time.time()).spent[TURNS] == 0
