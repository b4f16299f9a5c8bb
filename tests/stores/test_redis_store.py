"""redis:// specifics: key layout, TTLs, URL forms, lease routing."""

from __future__ import annotations

import re
import time

import pytest
from redis.crc import key_slot

from spendfuse.budgets.stores import USD, ScopeRequest, open_store
from spendfuse.budgets.stores.redis import RedisStore, parse_redis_url, scope_tag
from spendfuse.errors import ConfigError

pytestmark = pytest.mark.redis


@pytest.fixture
def client(redis_url: str):  # type: ignore[no-untyped-def]
    import redis

    connection = redis.Redis.from_url(redis_url)
    yield connection
    connection.close()


def test_keys_are_hashed_hash_tagged_and_expire(redis_url: str, client) -> None:  # type: ignore[no-untyped-def]
    store = open_store(redis_url)
    now = time.time()
    nasty = "user:{x}\n*?[]' OR 1=1 --"
    window = ScopeRequest(nasty, {USD: 100}, {USD: 10}, expires_at=now + 100)
    assert store.reserve("lease-1", [window], now + 30, now) is None
    keys = sorted(key.decode() for key in client.keys("*"))
    tag = scope_tag(nasty)
    assert keys == [f"spendfuse:{{{tag}}}:{kind}" for kind in "lrs"]
    assert all(re.fullmatch(r"spendfuse:\{[0-9a-f]{40}\}:[slr]", key) for key in keys)
    # One Cluster slot for the whole scope.
    assert len({key_slot(key.encode()) for key in keys}) == 1
    for key in keys:
        ttl = client.pttl(key)
        assert (100 + 60) * 1000 - 5000 < ttl <= (100 + 60) * 1000
    # A lease outliving the window keeps the keys alive until it expires.
    assert store.reserve("lease-2", [window], now + 500, now) is None
    assert all(client.pttl(key) > 500 * 1000 for key in keys)
    # Scopes without a window never expire on their own.
    assert store.reserve("lease-3", [ScopeRequest("forever", {USD: 1}, {USD: 1})], now + 30, now) is None
    assert client.pttl(f"spendfuse:{{{scope_tag('forever')}}}:s") == -1
    store.close()


def test_prefix_isolates_two_stores_on_one_database(redis_url: str) -> None:
    first = open_store(redis_url + "?prefix=app1")
    second = open_store(redis_url + "?prefix=app2:")
    now = time.time()
    assert first.reserve("a", [ScopeRequest("u", {USD: 10}, {USD: 10})], now + 60, now) is None
    assert second.reserve("b", [ScopeRequest("u", {USD: 10}, {USD: 10})], now + 60, now) is None
    assert second.expire(now + 61) == 1
    assert first.usage("u", now).in_flight[USD] == 10
    first.close()
    second.close()


def test_a_repeated_reservation_is_admitted_once(redis_url: str) -> None:
    store = open_store(redis_url)
    now = time.time()
    request = [ScopeRequest("u", {USD: 10}, {USD: 4})]
    assert store.reserve("same", request, now + 60, now) is None
    assert store.reserve("same", request, now + 60, now) is None
    assert store.usage("u", now).in_flight[USD] == 4
    store.close()


def test_settle_belongs_to_the_store_that_reserved(redis_url: str) -> None:
    reserver = open_store(redis_url)
    stranger = open_store(redis_url)
    now = time.time()
    assert reserver.reserve("l", [ScopeRequest("u", {USD: 10}, {USD: 4})], now + 60, now) is None
    # Unknown to this object: refused, and the lease is charged at its reserved amount on expiry.
    assert stranger.settle("l", {USD: 1}, now) is False
    assert reserver.settle("l", {USD: 1}, now) is True
    assert stranger.usage("u", now).spent[USD] == 1
    reserver.close()
    stranger.close()


def test_url_forms() -> None:
    kwargs, timeout, prefix = parse_redis_url("redis://user:p%40ss@example.com:6380/3?timeout=0.5", 0.25)
    assert (kwargs["host"], kwargs["port"], kwargs["db"]) == ("example.com", 6380, 3)
    assert (kwargs["username"], kwargs["password"]) == ("user", "p@ss")
    assert kwargs["socket_timeout"] == kwargs["socket_connect_timeout"] == timeout == 0.5
    assert prefix == "spendfuse:"
    kwargs, timeout, _ = parse_redis_url("rediss://h?socket_timeout=2", 0.25)
    assert kwargs["connection_class"].__name__ == "SSLConnection"
    assert (kwargs["socket_timeout"], kwargs["socket_connect_timeout"], timeout) == (2.0, 0.25, 0.25)
    assert isinstance(open_store("redis://127.0.0.1:1/0"), RedisStore)  # lazy: no connection yet
    for bad in ("redis://h:notaport/0", "redis://h:70000/0", "redis://h/db1", "redis://h/0?bogus=1",
                "redis://h/0?timeout=x", "redis://h/0?timeout=0", "redis://h/0?prefix={x}",
                "redis+sentinel://h/mymaster"):  # fmt: skip
        with pytest.raises(ConfigError, match="store"):
            open_store(bad)


def test_password_is_not_echoed_in_errors() -> None:
    from spendfuse.budgets.stores import StoreUnavailableError

    from ._redis_server import free_port

    store = open_store(f"redis://u:hunter2@127.0.0.1:{free_port()}/0", timeout=0.2)
    with pytest.raises(StoreUnavailableError) as caught:
        store.usage("u", time.time())
    assert "hunter2" not in str(caught.value)
    store.close()
