"""sqlite:/// survives SIGKILL mid-transaction, restarts and URL variants."""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import sqlite3
import stat
import time
from pathlib import Path

import pytest

from spendfuse.budgets.stores import USD, ScopeRequest, StoreUnavailableError, open_store
from spendfuse.budgets.stores.sqlite import MIN_BUSY_TIMEOUT, SQLiteStore
from spendfuse.budgets.stores.sqlite_files import parse_sqlite_url
from spendfuse.errors import ConfigError

from . import _workers

# fork starts a child in milliseconds, which lets the test kill many of them; the child builds its own
# store, so nothing SQLite-related crosses the fork.
CONTEXT = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
KILLS = 25


def _check(db: Path, runs: int) -> tuple[int, int]:
    with sqlite3.connect(db) as raw:
        assert raw.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        live = {lease_id for (lease_id,) in raw.execute("SELECT lease_id FROM leases")}
    store = open_store(f"sqlite:///{db}")
    try:
        now = time.time()
        total_count = total_tokens = total_live = 0
        for run in range(runs):
            usage = store.usage(f"run-{run}", now)
            count = usage.spent["turns"]
            live_here = sorted(lease for lease in live if lease.startswith(f"run-{run}-"))
            # Every settled lease was charged once (tokens = sum of their numbers), and the one the kill
            # interrupted, if any, is exactly in flight: it is the next one after the settled ones.
            assert usage.spent == {USD: count, "turns": count, "tokens": count * (count - 1) // 2}, run
            assert live_here in ([], [f"run-{run}-{count}"]), (run, count, live_here)
            assert usage.in_flight == {USD: 1000 * len(live_here), "turns": len(live_here), "tokens": 0}
            total_count += count
            total_tokens += count * (count - 1) // 2
            total_live += len(live_here)
        shared = store.usage("all-runs", now)
        assert shared.spent == {USD: total_count, "turns": total_count, "tokens": total_tokens}
        assert shared.in_flight == {USD: 1000 * total_live, "turns": total_live, "tokens": 0}
        assert shared.leases == total_live
        return total_count, total_live
    finally:
        store.close()


@pytest.mark.slow
def test_sigkill_in_a_reserve_settle_loop_never_corrupts(tmp_path: Path) -> None:
    db = tmp_path / "kill" / "budget.db"
    db.parent.mkdir()
    url = f"sqlite:///{db}"
    rng = random.Random(1234)
    for run in range(KILLS):
        ready = CONTEXT.Queue()
        child = CONTEXT.Process(target=_workers.churn, args=(url, run, ready))
        child.start()
        assert ready.get(timeout=60) == "started"
        time.sleep(rng.uniform(0.02, 0.15))
        assert child.pid is not None
        os.kill(child.pid, signal.SIGKILL)
        child.join(timeout=30)
        assert child.exitcode == -signal.SIGKILL
        settled, interrupted = _check(db, run + 1)
    # The kills landed in a busy loop, not before it started.
    assert settled > 20 * KILLS, (settled, interrupted)

    # The killed runs' leases expire and are charged at their reserved amount like any other.
    store = open_store(url)
    try:
        before = store.usage("all-runs", time.time())
        assert store.expire(time.time() + 7200) == before.leases
        after = store.usage("all-runs", time.time() + 7200)
        assert after.spent[USD] == before.spent[USD] + before.in_flight[USD]
        assert after.in_flight[USD] == 0
    finally:
        store.close()


def test_state_survives_reopening(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/nested/dirs/budget.db"
    (tmp_path / "nested" / "dirs").mkdir(parents=True)  # folders are the user's to create (DESIGN §4)
    now = time.time()
    first = open_store(url)
    assert first.reserve("a", [ScopeRequest("u", {USD: 100}, {USD: 40})], now + 60, now) is None
    assert first.reserve("b", [ScopeRequest("u", {USD: 100}, {USD: 30})], now + 60, now) is None
    assert first.settle("a", {USD: 25}, now)
    first.close()
    second = open_store(url)
    try:
        usage = second.usage("u", now)
        assert (usage.spent[USD], usage.in_flight[USD], usage.leases) == (25, 30, 1)
        # Another store object (another process after a restart) can settle a lease it did not reserve.
        assert second.settle("b", {USD: 30}, now)
        assert second.settle("a", {USD: 25}, now) is False
        assert second.usage("u", now).spent[USD] == 55
    finally:
        second.close()
    with sqlite3.connect(tmp_path / "nested" / "dirs" / "budget.db") as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_url_forms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert parse_sqlite_url("sqlite:///relative.db") == (tmp_path / "relative.db", {})
    assert parse_sqlite_url(f"sqlite:///{tmp_path}/abs.db")[0] == tmp_path / "abs.db"
    assert parse_sqlite_url(f"sqlite:///{tmp_path}/with%20space.db")[0] == tmp_path / "with space.db"
    assert parse_sqlite_url("sqlite:///x.db?busy_timeout=2&synchronous=full")[1] == {
        "busy_timeout": "2",
        "synchronous": "full",
    }
    for bad in ("sqlite://", "sqlite:///", "sqlite:///:memory:", "sqlite://host/x.db", "sqlite:///x.db?mode=ro",
                "sqlite:///x.db?synchronous=off", "sqlite:///x.db?busy_timeout=-1"):  # fmt: skip
        with pytest.raises(ConfigError, match="store"):
            open_store(bad)


def test_lock_waits_are_bounded_but_not_by_the_network_timeout(tmp_path: Path) -> None:
    store = SQLiteStore(f"sqlite:///{tmp_path}/b.db", timeout=0.25)
    assert store.busy_timeout == MIN_BUSY_TIMEOUT
    impatient = SQLiteStore(f"sqlite:///{tmp_path}/b.db?busy_timeout=0.2", timeout=0.25)
    now = time.time()
    assert impatient.reserve("x", [ScopeRequest("u", {USD: 10}, {USD: 1})], now + 60, now) is None
    # Another process holding the write lock (here a raw connection) makes the wait run out.
    blocker = sqlite3.connect(tmp_path / "b.db", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        started = time.monotonic()
        with pytest.raises(StoreUnavailableError):
            impatient.reserve("y", [ScopeRequest("u", {USD: 10}, {USD: 1})], now + 60, now)
        assert time.monotonic() - started < 2.0
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    # Nothing was left half done, and the store works again.
    assert impatient.reserve("y", [ScopeRequest("u", {USD: 10}, {USD: 1})], now + 60, now) is None
    assert impatient.usage("u", now).in_flight[USD] == 2
    impatient.close()
    store.close()


def test_a_repeated_reservation_is_admitted_once(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path}/b.db")
    now = time.time()
    request = [ScopeRequest("u", {USD: 10}, {USD: 4})]
    assert store.reserve("same", request, now + 60, now) is None
    assert store.reserve("same", request, now + 60, now) is None
    assert store.usage("u", now).in_flight[USD] == 4
    store.close()


def test_idle_windows_are_garbage_collected(tmp_path: Path) -> None:
    db = tmp_path / "gc.db"
    store = open_store(f"sqlite:///{db}")
    now = time.time()
    for day in range(5):
        request = [ScopeRequest(f"user:day-{day}", {USD: 10}, {USD: 1}, expires_at=now + 10)]
        assert store.reserve(f"l{day}", request, now + 5, now) is None
        store.settle(f"l{day}", {USD: 1}, now)
    live = [ScopeRequest("user:live", {USD: 10}, {USD: 1}, expires_at=now + 10_000)]
    assert store.reserve("live", live, now + 5, now) is None
    # A later reservation on another scope sweeps the ended windows (at most once a minute).
    later = now + 120
    assert store.reserve("later", [ScopeRequest("other", {USD: 10}, {USD: 1})], later + 60, later) is None
    store.close()
    with sqlite3.connect(db) as raw:
        keys = {key for (key,) in raw.execute("SELECT key FROM scopes")}
        assert keys == {"user:live", "other"}
        assert raw.execute("SELECT COUNT(*) FROM balances WHERE key LIKE 'user:day-%'").fetchone() == (0,)


def test_files_we_create_are_private(tmp_path: Path) -> None:
    previous = os.umask(0o022)  # the common default, which would leave a new file world-readable
    try:
        store = open_store(f"sqlite:///{tmp_path}/private.db")
        now = time.time()
        assert store.reserve("a", [ScopeRequest("u", {USD: 100}, {USD: 40})], now + 60, now) is None
        files = sorted(p.name for p in tmp_path.iterdir())
        assert files == ["private.db", "private.db-shm", "private.db-wal"]
        for path in tmp_path.iterdir():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        store.close()
    finally:
        os.umask(previous)


def test_a_missing_folder_is_a_config_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such"
    with pytest.raises(ConfigError) as caught:
        open_store(f"sqlite:///{missing}/budget.db")
    assert str(missing) in str(caught.value)
    assert not (tmp_path / "no").exists()
