"""The user budget's store down, hung or restarted, through the real SDK client and the breaker.

``store_failure="closed"`` refuses with ``BudgetStoreUnavailable`` before dispatch (the provider sees
nothing) within about the store timeout; ``"open"`` admits, counts ``spendfuse.store.errors`` and logs
once per outage. Run limits live in process memory and hold either way. After the store comes back
calls flow again and the user's balance adds up to the micro-dollar.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from stores._redis_server import RedisServer, require_redis_server

import spendfuse
from spendfuse import runtime
from spendfuse.testing import FakeProvider, FakeUsage, RecordedRequest, Reply

from ._calls import SONNET, SpanTracker, attributes_of, micros

MESSAGES = [{"role": "user", "content": "Summarize the ticket."}]
COST = 1000 * 3 + 200 * 15  # micro-dollars: 1000 input + 200 output tokens at $3/$15 per MTok
USER = "alice"
KEY = f"user/lifetime/{USER}"
USER_BUDGET = {"usd": 10.0}
TIMEOUT = 0.25
LEASE = 60  # seconds; tests that need a lease expired read the store at a later time instead of sleeping


def call(client: Any) -> Any:
    return client.messages.create(model=SONNET, max_tokens=256, messages=MESSAGES)


def one_call(client: Any, run_id: str, budget: spendfuse.Budget | None = None) -> spendfuse.Run:
    with spendfuse.run(run_id, user_id=USER, budget=budget) as run:
        call(client)
    return run


def user_usage(at: float | None = None) -> Any:
    """The user's balance as the store sees it at ``at`` (now by default). Reading it at a future
    time expires leases deterministically, where sleeping past a short lease would race a loaded
    machine (a call that takes longer than the lease lets it expire before the first check)."""
    active = runtime.current()
    assert active is not None
    return active.breaker.store.usage(KEY, time.time() if at is None else at)


def store_errors(telemetry: Any, reason: str) -> float:
    return float(telemetry.metric_sum("spendfuse.store.errors", **{"spendfuse.reason": reason}))


def outage_logs(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "spendfuse" and "admitting calls" in r.getMessage()]


def assert_nothing_in_flight(run: spendfuse.Run) -> None:
    balance = run.balance
    assert (balance.flight_usd, balance.flight_turns, balance.flight_tokens) == (0, 0, 0)


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    # AOF: acknowledged writes survive a SIGKILL, so a restart keeps the balances.
    server = RedisServer(require_redis_server(), tmp_path / "redis", appendonly=True)
    server.start()
    yield server
    server.stop()


class SQLiteLock:
    """Another connection holding the database's write lock, like a process stuck mid-transaction."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.conn: sqlite3.Connection | None = None

    def hold(self) -> None:
        self.conn = sqlite3.connect(self.path, isolation_level=None)
        self.conn.execute("BEGIN EXCLUSIVE")

    def release(self) -> None:
        if self.conn is not None:
            self.conn.execute("ROLLBACK")
            self.conn.close()
            self.conn = None


@pytest.fixture
def sqlite_lock(tmp_path: Path) -> Iterator[SQLiteLock]:
    lock = SQLiteLock(tmp_path / "budgets.db")
    yield lock
    lock.release()


def sqlite_url(lock: SQLiteLock) -> str:
    # A lock wait is bounded by busy_timeout (at least 5 s by default, see the store's docstring).
    return f"sqlite:///{lock.path}?busy_timeout=0.3"


# -- fail closed -----------------------------------------------------------------------------------


@pytest.mark.redis
@pytest.mark.parametrize("how", ["killed", "sigstopped"])
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_redis_outage_fails_closed_before_dispatch(
    how: str, mode: str, redis: RedisServer, instrument: Any, telemetry: Any, tracker: SpanTracker
) -> None:
    instrument(store=redis.url, user_budget=USER_BUDGET, store_failure="closed", store_timeout=TIMEOUT)
    fake = FakeProvider(usage=FakeUsage(1000, 200))
    one_call(fake.anthropic_client(), "warm")  # a pooled connection exists
    if how == "killed":
        redis.stop()
    else:
        redis.pause()
    try:
        with spendfuse.run("refused", user_id=USER, budget=spendfuse.Budget(usd=1, turns=5)) as run:
            started = time.monotonic()
            with pytest.raises(spendfuse.BudgetStoreUnavailable) as caught:
                if mode == "sync":
                    call(fake.anthropic_client())
                else:
                    asyncio.run(_acall(fake))
            elapsed = time.monotonic() - started
    finally:
        if how == "sigstopped":
            redis.resume()
    assert fake.request_count == 1  # the warm-up call only: the refused one never left
    assert elapsed < 4 * TIMEOUT
    if how == "sigstopped":
        assert elapsed >= 0.8 * TIMEOUT  # it did wait for the hung server, for the timeout
    assert not isinstance(caught.value, spendfuse.BudgetExceeded)
    assert "store_failure='closed'" in str(caught.value)
    assert_nothing_in_flight(run)
    assert run.spent.turns == 0  # refused before dispatch: no turn
    assert store_errors(telemetry, "unavailable") == 1
    refused = tracker.chat_ended()[-1]
    assert refused.attributes is not None and refused.attributes["error.type"] == "BudgetStoreUnavailable"
    assert refused.status.status_code.name == "ERROR"
    assert tracker.open_spans() == []


async def _acall(fake: FakeProvider) -> None:
    client = fake.async_anthropic_client()
    try:
        await client.messages.create(model=SONNET, max_tokens=256, messages=MESSAGES)
    finally:
        await client.close()


def test_sqlite_locked_fails_closed_then_recovers(
    sqlite_lock: SQLiteLock, instrument: Any, telemetry: Any, tracker: SpanTracker
) -> None:
    instrument(store=sqlite_url(sqlite_lock), user_budget=USER_BUDGET, store_failure="closed", store_timeout=TIMEOUT)
    fake = FakeProvider(usage=FakeUsage(1000, 200))
    client = fake.anthropic_client()
    one_call(client, "before")
    sqlite_lock.hold()
    with spendfuse.run("locked", user_id=USER, budget=spendfuse.Budget(turns=3)) as run:
        started = time.monotonic()
        with pytest.raises(spendfuse.BudgetStoreUnavailable):
            call(client)
        elapsed = time.monotonic() - started
    assert 0.25 <= elapsed < 2.0
    assert fake.request_count == 1
    assert_nothing_in_flight(run)
    assert store_errors(telemetry, "unavailable") == 1
    sqlite_lock.release()
    one_call(client, "after")
    assert fake.request_count == 2
    usage = user_usage()
    assert (usage.spent["usd"], usage.spent["turns"], usage.leases) == (2 * COST, 2, 0)
    assert all(value == 0 for value in usage.in_flight.values())
    assert tracker.open_spans() == []


# -- fail open -------------------------------------------------------------------------------------


@pytest.mark.redis
def test_redis_fail_open_admits_counts_and_logs_once_per_outage(
    redis: RedisServer, instrument: Any, telemetry: Any, tracker: SpanTracker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="spendfuse")
    instrument(store=redis.url, user_budget=USER_BUDGET, store_failure="open", store_timeout=TIMEOUT)
    fake = FakeProvider(usage=FakeUsage(1000, 200))
    client = fake.anthropic_client()
    one_call(client, "up-1")

    redis.stop()
    for index in range(3):
        one_call(client, f"down-{index}")
    assert fake.request_count == 4
    assert store_errors(telemetry, "fail_open") == 3
    assert len(outage_logs(caplog)) == 1
    opened = [s for s in tracker.chat_ended() if attributes_of(s).get("spendfuse.store.fail_open")]
    assert len(opened) == 3

    redis.start()  # same port, same AOF file
    one_call(client, "up-2")
    usage = user_usage()
    # Fail-open calls were never recorded in the store: only the two calls made while it was up.
    assert (usage.spent["usd"], usage.spent["turns"], usage.leases) == (2 * COST, 2, 0)

    redis.stop()
    one_call(client, "down-again")
    one_call(client, "down-again-2")
    assert len(outage_logs(caplog)) == 2  # the second outage is logged once too
    assert store_errors(telemetry, "fail_open") == 5
    assert fake.request_count == 7
    assert tracker.open_spans() == []


def test_sqlite_locked_fail_open(
    sqlite_lock: SQLiteLock, instrument: Any, telemetry: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="spendfuse")
    instrument(store=sqlite_url(sqlite_lock), user_budget=USER_BUDGET, store_failure="open", store_timeout=TIMEOUT)
    fake = FakeProvider(usage=FakeUsage(1000, 200))
    client = fake.anthropic_client()
    one_call(client, "before")
    sqlite_lock.hold()
    runs = [one_call(client, f"locked-{index}") for index in range(2)]
    sqlite_lock.release()
    assert fake.request_count == 3
    assert store_errors(telemetry, "fail_open") == 2
    assert len(outage_logs(caplog)) == 1
    for run in runs:
        assert run.spent.usd_micros == COST
        assert_nothing_in_flight(run)
    usage = user_usage()
    assert (usage.spent["usd"], usage.spent["turns"], usage.leases) == (COST, 1, 0)


# -- run limits hold locally -------------------------------------------------------------------------


@pytest.mark.redis
@pytest.mark.parametrize("policy", ["closed", "open"])
def test_run_limits_are_enforced_locally_during_an_outage(policy: str, redis: RedisServer, instrument: Any) -> None:
    instrument(store=redis.url, user_budget=USER_BUDGET, store_failure=policy, store_timeout=TIMEOUT)
    fake = FakeProvider(usage=FakeUsage(1000, 200))
    client = fake.anthropic_client()
    with spendfuse.run("local", user_id=USER, budget=spendfuse.Budget(turns=2)) as run:
        if policy == "closed":
            call(client)
            call(client)  # both turns used while the store was up
            redis.stop()
        else:
            redis.stop()
            call(client)
            call(client)  # admitted fail-open, still counted against the run
        with pytest.raises(spendfuse.TurnLimitExceeded) as caught:
            call(client)
    assert fake.request_count == 2
    assert caught.value.scope == "run" and caught.value.spent == 2
    assert run.spent.turns == 2 and run.spent.usd_micros == 2 * COST
    assert_nothing_in_flight(run)


@pytest.mark.redis
def test_run_usd_limit_is_enforced_when_failing_open(redis: RedisServer, instrument: Any) -> None:
    instrument(store=redis.url, user_budget=USER_BUDGET, store_failure="open", store_timeout=TIMEOUT)
    redis.stop()
    fake = FakeProvider(usage=FakeUsage(1000, 200))
    with (
        spendfuse.run("tiny", user_id=USER, budget=spendfuse.Budget(usd=0.001)) as run,
        pytest.raises(spendfuse.CostLimitExceeded),
    ):
        call(fake.anthropic_client())  # worst case ~$0.004 > $0.001
    assert fake.request_count == 0
    assert_nothing_in_flight(run)


# -- restart -----------------------------------------------------------------------------------------


@pytest.mark.redis
def test_after_a_restart_calls_flow_and_the_balance_adds_up(redis: RedisServer, instrument: Any) -> None:
    # Not a latency test: the first reserve after the restart reconnects and reloads the Lua scripts
    # (three round trips), which a loaded 2-core machine can stretch past 0.25 s. A killed server
    # refuses connections at once, so the outage is still detected immediately.
    instrument(store=redis.url, user_budget=USER_BUDGET, store_failure="closed", store_timeout=5.0)
    fake = FakeProvider(usage=FakeUsage(1000, 200))
    client = fake.anthropic_client()
    one_call(client, "one")
    one_call(client, "two")
    redis.stop()
    with pytest.raises(spendfuse.BudgetStoreUnavailable):
        one_call(client, "refused")
    redis.start()
    one_call(client, "three")
    one_call(client, "four")
    assert fake.request_count == 4
    usage = user_usage()
    assert (usage.spent["usd"], usage.spent["turns"], usage.spent["tokens"]) == (4 * COST, 4, 4 * 1200)
    assert usage.leases == 0 and all(value == 0 for value in usage.in_flight.values())


@pytest.mark.redis
def test_a_reserve_lost_to_a_hung_server_is_charged_at_most_its_worst_case(
    redis: RedisServer, instrument: Any, tracker: SpanTracker
) -> None:
    """SIGSTOP after the reserve was sent: the caller gets BudgetStoreUnavailable, but the server may
    still apply the reserve when it wakes up. That lease is never settled, so it expires and is
    charged at its reserved amount (the documented safe direction) -- and never more."""
    instrument(store=redis.url, user_budget=USER_BUDGET, store_failure="closed", store_timeout=TIMEOUT,
               lease_seconds=LEASE)  # fmt: skip
    fake = FakeProvider(usage=FakeUsage(1000, 200))
    client = fake.anthropic_client()
    one_call(client, "ok")
    reserved = micros(attributes_of(tracker.chat_ended()[0])["spendfuse.reserved.usd"])
    redis.pause()
    try:
        with pytest.raises(spendfuse.BudgetStoreUnavailable):
            one_call(client, "hung")
    finally:
        redis.resume()
    deadline = time.monotonic() + 3
    while user_usage().leases == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    landed = user_usage().leases
    assert landed in (0, 1)
    usage = user_usage(time.time() + LEASE + 1)  # past the lease expiry
    assert usage.spent["usd"] == COST + landed * reserved
    assert usage.leases == 0 and usage.in_flight["usd"] == 0
    one_call(client, "later")
    assert fake.request_count == 2


# -- the store dies between reserve and settle --------------------------------------------------------


@pytest.mark.parametrize("backend", [pytest.param("redis", marks=pytest.mark.redis), "sqlite"])
def test_store_lost_before_settlement_charges_the_lease_at_expiry(
    backend: str,
    request: pytest.FixtureRequest,
    sqlite_lock: SQLiteLock,
    instrument: Any,
    telemetry: Any,
    tracker: SpanTracker,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="spendfuse")
    break_store: Callable[[], None]
    heal_store: Callable[[], None]
    if backend == "redis":
        server: RedisServer = request.getfixturevalue("redis")
        url, break_store, heal_store = server.url, server.stop, server.start
    else:
        url, break_store, heal_store = sqlite_url(sqlite_lock), sqlite_lock.hold, sqlite_lock.release
    instrument(store=url, user_budget=USER_BUDGET, store_failure="closed", store_timeout=TIMEOUT, lease_seconds=LEASE)

    def break_then_answer(_request: RecordedRequest) -> Reply:
        break_store()  # the reserve went through; now the store goes away mid-call
        return Reply.text("Done.")

    # Realistic numbers for this short prompt: 20 input and 2 output tokens, within the worst case.
    fake = FakeProvider(usage=FakeUsage(20, 2), responder=break_then_answer)
    cost = 20 * 3 + 2 * 15
    client = fake.anthropic_client()
    run = one_call(client, "orphaned")  # the caller never notices
    assert run.spent.usd_micros == cost
    assert_nothing_in_flight(run)
    assert store_errors(telemetry, "settle") == 1
    assert any("could not settle lease" in r.getMessage() for r in caplog.records)
    reserved = micros(attributes_of(tracker.chat_ended()[0])["spendfuse.reserved.usd"])
    assert reserved > cost

    heal_store()
    usage = user_usage()
    assert (usage.in_flight["usd"], usage.leases) == (reserved, 1)
    usage = user_usage(time.time() + LEASE + 1)  # past the lease expiry: charged at the reserved amount
    assert (usage.spent["usd"], usage.in_flight["usd"], usage.leases) == (reserved, 0, 0)

    fake.responder = None
    one_call(client, "flowing")
    usage = user_usage()
    assert (usage.spent["usd"], usage.spent["turns"], usage.leases) == (reserved + cost, 2, 0)


# -- the user's budget cannot be resolved ------------------------------------------------------------


def failing_resolver(user_id: str) -> spendfuse.Budget | None:
    raise RuntimeError(f"tier service down for {user_id}")


@pytest.mark.parametrize("policy", ["closed", "open"])
def test_a_failing_user_budget_callable_fails_like_the_store(
    policy: str, instrument: Any, telemetry: Any, tracker: SpanTracker, caplog: pytest.LogCaptureFixture
) -> None:
    """Unknown user limits never mean "no limits": closed refuses before dispatch, open admits and
    counts it; either way the run's own limits keep holding and nothing stays reserved."""
    caplog.set_level(logging.WARNING, logger="spendfuse")
    instrument(user_budget=failing_resolver, store_failure=policy)
    fake = FakeProvider(usage=FakeUsage(1000, 200))
    client = fake.anthropic_client()
    with spendfuse.run("unresolved", user_id=USER, budget=spendfuse.Budget(turns=1)) as run:
        if policy == "closed":
            with pytest.raises(spendfuse.BudgetStoreUnavailable, match="the user_budget callable failed"):
                call(client)
            assert fake.request_count == 0 and run.spent.turns == 0
            assert store_errors(telemetry, "error") == 1
        else:
            call(client)
            with pytest.raises(spendfuse.TurnLimitExceeded):
                call(client)  # the run's limit still holds
            assert fake.request_count == 1 and run.spent.turns == 1 and run.spent.usd_micros == COST
            assert store_errors(telemetry, "fail_open") == 1
            assert len([m for m in outage_logs(caplog) if "user_budget callable" in m]) == 1
            assert attributes_of(tracker.chat_ended()[0]).get("spendfuse.store.fail_open") is True
    assert_nothing_in_flight(run)
    assert tracker.open_spans() == []
