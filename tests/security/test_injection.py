"""Hostile user ids and run ids against the SQLite and Redis stores, end to end through the breaker.

SQL, glob, hash-tag and separator characters in ids must neither reach a query nor a key name: each
user's balance is exact and separate, the schema is intact, Redis holds only fixed-shape hashed key
names, and a scan for expired leases never strays into another user's scope.
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from stores._redis_server import RedisServer, require_redis_server

import spendfuse
from spendfuse import runtime
from spendfuse.budgets.stores import TURNS, USD
from spendfuse.testing import FakeProvider, FakeUsage

HOSTILE = [
    "*",
    "?",
    "[a-z]",
    "'; DROP TABLE leases; --",
    "'); DELETE FROM balances; --",
    "' OR '1'='1",
    "alice' --",
    '"; DROP TABLE scopes; --',
    "%",
    "_",
    "a%",
    "{tag}",
    "}:s",
    "{",
    "\x00",
    "alice\x00bob",
    "user/lifetime/alice",
    "alice/../bob",
    "\\",
    "KEYS *",
    "FLUSHALL",
    "\r\nFLUSHALL\r\n",
    "local x = redis.call('FLUSHALL')",
    "\udc80",
    "alice",
]
COST = 10 * 3 + 5 * 15  # micro-dollars: 10 input + 5 output tokens at $3/$15 per MTok
MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(require_redis_server(), tmp_path / "redis")
    server.start()
    yield server
    server.stop()


def spend_per_user(calls_per_user: dict[str, int]) -> dict[str, spendfuse.Run]:
    """Each user makes their number of calls, in a run whose id is hostile too."""
    fake = FakeProvider(usage=FakeUsage(10, 5))
    client = fake.anthropic_client()
    runs = {}
    for user, calls in calls_per_user.items():
        with spendfuse.run(f"run {user}", user_id=user) as run:
            for _ in range(calls):
                client.messages.create(model="claude-sonnet-4-5", max_tokens=32, messages=MESSAGES)
        runs[user] = run
    assert fake.request_count == sum(calls_per_user.values())
    return runs


def assert_balances(calls_per_user: dict[str, int]) -> None:
    active = runtime.current()
    assert active is not None
    for user, calls in calls_per_user.items():
        usage = active.breaker.store.usage(f"user/lifetime/{user}", time.time())
        assert (usage.spent[USD], usage.spent[TURNS], usage.leases) == (calls * COST, calls, 0), user
        assert usage.in_flight[USD] == 0


def calls_for(users: list[str]) -> dict[str, int]:
    calls = {user: 1 + index % 3 for index, user in enumerate(users)}  # different counts: no mix-up hides
    if "alice" in calls:
        calls["alice"] = 3  # at her limit
    return calls


def test_sqlite_keys_are_bound_never_spliced(tmp_path: Path, instrument: Any) -> None:
    path = tmp_path / "budgets.db"
    instrument(store=f"sqlite:///{path}", user_budget={"turns": 3})
    calls = calls_for(HOSTILE)
    runs = spend_per_user(calls)
    assert_balances(calls)
    for user, run in runs.items():
        assert run.run_id == f"run {user}" and run.spent.turns == calls[user]

    # Every user is still limited on their own: "alice" at her limit does not block "alice' --".
    with pytest.raises(spendfuse.TurnLimitExceeded) as caught, spendfuse.run("over", user_id="alice"):
        FakeProvider().anthropic_client().messages.create(model="claude-sonnet-4-5", max_tokens=8, messages=MESSAGES)
    assert caught.value.key == "alice" and caught.value.spent == calls["alice"]

    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert tables == {"scopes", "balances", "leases"}
        # One scope row per user, no more (nothing was created by a spliced statement), no less.
        (scopes,) = conn.execute("SELECT COUNT(*) FROM scopes").fetchone()
        assert scopes == len(HOSTILE)
        (leases,) = conn.execute("SELECT COUNT(*) FROM leases").fetchone()
        assert leases == 0


@pytest.mark.redis
def test_redis_key_names_never_carry_an_id(redis_server: RedisServer, instrument: Any) -> None:
    instrument(store=redis_server.url, user_budget={"turns": 3})
    calls = calls_for(HOSTILE)
    spend_per_user(calls)
    assert_balances(calls)

    import redis

    client = redis.Redis(host="127.0.0.1", port=redis_server.port)
    try:
        names = [name.decode() for name in client.scan_iter(match="*", count=1000)]
        # Only the hashed layout: spendfuse:{<40 hex>}:s (leases settled: no :l / :r left behind).
        shape = re.compile(r"spendfuse:\{[0-9a-f]{40}\}:[slr]")
        assert names and all(shape.fullmatch(name) for name in names), names
        assert len({name for name in names if name.endswith(":s")}) == len(HOSTILE)
        assert client.dbsize() == len(names)  # FLUSHALL et al. were data, not commands
    finally:
        client.close()

    # A sweep for expired leases (a SCAN with a glob) touches no one's balance, whatever the ids.
    active = runtime.current()
    assert active is not None
    assert active.breaker.store.expire(time.time() + 10**6) == 0
    assert_balances(calls)


@pytest.mark.redis
def test_expiry_sweep_charges_exactly_the_expired_lease(redis_server: RedisServer) -> None:
    """Glob characters in ids: the sweep matches by hashed key name, so it charges the one expired
    lease of "*" and leaves the live lease of "[a-z]" alone."""
    from spendfuse.budgets.stores import ScopeRequest, open_store

    store = open_store(redis_server.url, timeout=2.0)
    try:
        now = time.time()
        assert store.reserve("old", [ScopeRequest("*", {USD: 100}, {USD: 40})], now + 1, now) is None
        assert store.reserve("live", [ScopeRequest("[a-z]", {USD: 100}, {USD: 7})], now + 600, now) is None
        assert store.expire(now + 2) == 1
        star, brackets = store.usage("*", now + 2), store.usage("[a-z]", now + 2)
        assert (star.spent[USD], star.in_flight[USD]) == (40, 0)
        assert (brackets.spent[USD], brackets.in_flight[USD], brackets.leases) == (0, 7, 1)
    finally:
        store.close()


def test_ledger_keeps_hostile_run_ids_as_data(tmp_path: Path, telemetry: Any, instrument: Any) -> None:
    try:
        from spendfuse.ledger import LedgerExporter
    except Exception:
        pytest.skip("spendfuse.ledger is not importable")
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    path = tmp_path / "ledger.db"
    exporter = LedgerExporter(path)
    telemetry.tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrument()
    calls = calls_for(HOSTILE[:-2])  # run ids "run <hostile>"
    spend_per_user(calls)
    telemetry.tracer_provider.force_flush()  # spendfuse's pending spans first, then the processors
    exporter.shutdown()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        columns = {row[1] for row in conn.execute("PRAGMA table_info(spans)")}
        run_column = next(name for name in ("run_id", "spendfuse_run_id") if name in columns)
        stored = {run_id for (run_id,) in conn.execute(f"SELECT DISTINCT {run_column} FROM spans")}
    assert "spans" in tables
    assert {f"run {user}" for user in calls} <= stored
