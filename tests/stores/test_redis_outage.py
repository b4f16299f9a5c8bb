"""redis:// when the server goes away, hangs, restarts: fail fast, recover by itself, keep state."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from spendfuse.budgets.stores import USD, ScopeRequest, StoreUnavailableError, open_store
from spendfuse.budgets.stores.redis import RedisStore

from ._redis_server import RedisServer, require_redis_server

pytestmark = pytest.mark.redis

TIMEOUT = 0.25


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    # AOF on: acknowledged writes are in the file before the reply is sent, so they survive a SIGKILL.
    server = RedisServer(require_redis_server(), tmp_path / "redis", appendonly=True)
    server.start()
    yield server
    server.stop()


def request(amount: int) -> list[ScopeRequest]:
    return [ScopeRequest("user:outage", {USD: 1_000}, {USD: amount}, time.time() + 3600)]


def reserve(store: RedisStore, lease_id: str, amount: int) -> bool:
    now = time.time()
    return store.reserve(lease_id, request(amount), now + 60, now) is None


def timed_failure(call: object) -> float:
    started = time.monotonic()
    with pytest.raises(StoreUnavailableError):
        call()  # type: ignore[operator]
    return time.monotonic() - started


def test_server_down_fails_fast_and_recovers_with_its_state(server: RedisServer) -> None:
    store = open_store(server.url, timeout=TIMEOUT)
    assert isinstance(store, RedisStore)
    try:
        assert reserve(store, "settled", 100)
        assert store.settle("settled", {USD: 60}, time.time())
        assert reserve(store, "in-flight", 200)

        server.stop()  # SIGKILL: no shutdown handshake, like a crashed host
        for attempt in range(3):
            elapsed = timed_failure(lambda attempt=attempt: reserve(store, f"down-{attempt}", 1))
            assert elapsed < 1.0
        assert timed_failure(lambda: store.usage("user:outage", time.time())) < 1.0
        assert timed_failure(lambda: store.settle("in-flight", {USD: 1}, time.time())) < 1.0

        server.start()  # same port, same AOF
        usage = store.usage("user:outage", time.time())
        assert (usage.spent[USD], usage.in_flight[USD], usage.leases) == (60, 200, 1)
        # The settle that failed kept its routing, so it can be retried once the server is back.
        assert store.settle("in-flight", {USD: 150}, time.time())
        assert reserve(store, "after", 790)
        assert not reserve(store, "over", 1)
        usage = store.usage("user:outage", time.time())
        assert (usage.spent[USD], usage.in_flight[USD], usage.leases) == (210, 790, 1)
    finally:
        store.close()


def test_scripts_are_reloaded_after_a_restart_without_persistence(tmp_path: Path) -> None:
    server = RedisServer(require_redis_server(), tmp_path / "redis", appendonly=False)
    server.start()
    store = open_store(server.url, timeout=TIMEOUT)
    try:
        assert reserve(store, "a", 100)
        server.stop()
        server.start()
        # The script cache and the data are gone: EVALSHA gets NOSCRIPT and loads the script again;
        # without AOF the budget starts over (documented), and the store keeps working.
        assert reserve(store, "b", 100)
        usage = store.usage("user:outage", time.time())
        assert (usage.in_flight[USD], usage.leases) == (100, 1)
        assert store.settle("a", {USD: 1}, time.time()) is False
    finally:
        store.close()
        server.stop()


def test_hung_server_times_out_and_a_late_reserve_can_be_released(server: RedisServer) -> None:
    store = open_store(server.url, timeout=TIMEOUT)
    assert isinstance(store, RedisStore)
    try:
        assert reserve(store, "warm", 1)  # a pooled connection exists
        server.pause()  # SIGSTOP: the socket accepts bytes but nothing answers
        try:
            elapsed = timed_failure(lambda: reserve(store, "ambiguous", 300))
            assert TIMEOUT * 0.8 <= elapsed < 1.0
        finally:
            server.resume()
        # The server ran the reserve after waking up; the caller saw a failure and refunds it.
        deadline = time.monotonic() + 5
        while store.usage("user:outage", time.time()).leases < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert store.release("ambiguous", time.time()) is True
        usage = store.usage("user:outage", time.time())
        assert (usage.spent[USD], usage.in_flight[USD], usage.leases) == (0, 1, 1)
    finally:
        store.close()


def test_unreachable_server_fails_within_the_timeout() -> None:
    # Nothing listens there: connection refused at once.
    from ._redis_server import free_port

    store = open_store(f"redis://127.0.0.1:{free_port()}/0", timeout=TIMEOUT)
    try:
        assert timed_failure(lambda: store.usage("x", time.time())) < 1.0
    finally:
        store.close()
