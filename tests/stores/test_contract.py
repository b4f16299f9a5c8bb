"""The budget-store contract: every test runs against memory://, sqlite:/// and redis:// alike."""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Mapping

from spendfuse.budgets.stores import TOKENS, TURNS, USD, BudgetStore, Denial, ScopeRequest, ScopeUsage

LIMIT = 100
HOUR = 3600.0


def scope(
    key: str,
    amounts: Mapping[str, int],
    limits: Mapping[str, int] | None = None,
    expires_at: float | None = None,
) -> ScopeRequest:
    return ScopeRequest(key, {USD: LIMIT} if limits is None else limits, amounts, expires_at)


def lease() -> str:
    return uuid.uuid4().hex


def reserve(store: BudgetStore, now: float, *scopes: ScopeRequest, lease_id: str | None = None,
            ttl: float = 60.0) -> tuple[str, Denial | None]:  # fmt: skip
    lease_id = lease_id or lease()
    return lease_id, store.reserve(lease_id, list(scopes), now + ttl, now)


def balance(store: BudgetStore, key: str, now: float, metric: str = USD) -> tuple[int, int, int]:
    usage = store.usage(key, now)
    return usage.spent[metric], usage.in_flight[metric], usage.leases


def test_admits_below_limit(store: BudgetStore) -> None:
    now = time.time()
    _, denial = reserve(store, now, scope("u", {USD: 40}))
    assert denial is None
    assert balance(store, "u", now) == (0, 40, 1)


def test_boundary_is_inclusive(store: BudgetStore) -> None:
    now = time.time()
    spent_lease, _ = reserve(store, now, scope("u", {USD: 30}))
    assert store.settle(spent_lease, {USD: 30}, now)
    assert reserve(store, now, scope("u", {USD: 20}))[1] is None
    # spent + in_flight + amount == limit exactly: admitted.
    assert reserve(store, now, scope("u", {USD: 50}))[1] is None
    assert balance(store, "u", now) == (30, 70, 2)
    _, denial = reserve(store, now, scope("u", {USD: 1}))
    assert denial == Denial("u", USD, LIMIT, 30, 70, 1)
    assert balance(store, "u", now) == (30, 70, 2)


def test_denial_names_first_metric_that_does_not_fit(store: BudgetStore) -> None:
    now = time.time()
    limits = {USD: 1000, TURNS: 2, TOKENS: 50}
    assert reserve(store, now, scope("u", {USD: 10, TURNS: 1, TOKENS: 40}, limits))[1] is None
    _, denial = reserve(store, now, scope("u", {USD: 10, TURNS: 1, TOKENS: 20}, limits))
    assert denial == Denial("u", TOKENS, 50, 0, 40, 20)
    _, denial = reserve(store, now, scope("u", {USD: 10, TURNS: 2, TOKENS: 20}, limits))
    assert denial == Denial("u", TURNS, 2, 0, 1, 2)


def test_unlimited_metrics_are_recorded_not_checked(store: BudgetStore) -> None:
    now = time.time()
    lease_id, denial = reserve(store, now, scope("u", {USD: 10, TOKENS: 10**12}, {USD: 100}))
    assert denial is None
    assert store.usage("u", now).in_flight[TOKENS] == 10**12
    assert store.settle(lease_id, {USD: 7, TOKENS: 123_456_789_012}, now)
    assert store.usage("u", now).spent[TOKENS] == 123_456_789_012


def test_all_or_nothing_across_scopes(store: BudgetStore) -> None:
    now = time.time()
    reserve(store, now, scope("full", {USD: 95}))
    for order in (("room", "full"), ("full", "room")):
        _, denial = reserve(store, now, *(scope(key, {USD: 10}) for key in order))
        assert denial == Denial("full", USD, LIMIT, 0, 95, 10)
        assert balance(store, "room", now) == (0, 0, 0)
        assert balance(store, "full", now) == (0, 95, 1)
    lease_id, denial = reserve(store, now, scope("room", {USD: 5}), scope("full", {USD: 5}))
    assert denial is None
    assert balance(store, "room", now) == (0, 5, 1)
    assert balance(store, "full", now) == (0, 100, 2)
    assert store.settle(lease_id, {USD: 3}, now)
    assert balance(store, "room", now) == (3, 0, 0)
    assert balance(store, "full", now) == (3, 95, 1)


def test_settle_replaces_reservation_by_actual(store: BudgetStore) -> None:
    now = time.time()
    lease_id, _ = reserve(store, now, scope("u", {USD: 80, TURNS: 1}, {USD: LIMIT, TURNS: 10}))
    assert store.settle(lease_id, {USD: 30, TURNS: 1, TOKENS: 900}, now)
    usage = store.usage("u", now)
    assert usage.spent == {USD: 30, TURNS: 1, TOKENS: 900}
    assert usage.in_flight == {USD: 0, TURNS: 0, TOKENS: 0}
    assert usage.leases == 0
    # The 50 the settle gave back is usable again: 30 + 70 == limit.
    assert reserve(store, now, scope("u", {USD: 70}))[1] is None


def test_settle_twice_is_refused_and_charges_once(store: BudgetStore) -> None:
    now = time.time()
    lease_id, _ = reserve(store, now, scope("u", {USD: 50}))
    assert store.settle(lease_id, {USD: 20}, now) is True
    assert store.settle(lease_id, {USD: 20}, now) is False
    assert store.release(lease_id, now) is False
    assert balance(store, "u", now) == (20, 0, 0)
    assert store.settle("never-reserved", {USD: 5}, now) is False
    assert balance(store, "u", now) == (20, 0, 0)


def test_release_refunds(store: BudgetStore) -> None:
    now = time.time()
    lease_id, _ = reserve(store, now, scope("u", {USD: 80, TURNS: 1}, {USD: LIMIT, TURNS: 1}))
    assert reserve(store, now, scope("u", {USD: 10, TURNS: 1}, {USD: LIMIT, TURNS: 1}))[1] is not None
    assert store.release(lease_id, now) is True
    assert store.usage("u", now) == ScopeUsage()
    assert store.release(lease_id, now) is False
    assert reserve(store, now, scope("u", {USD: 100, TURNS: 1}, {USD: LIMIT, TURNS: 1}))[1] is None


def test_expired_lease_is_charged_on_next_touch(store: BudgetStore) -> None:
    now = time.time()
    lease_id, _ = reserve(store, now, scope("u", {USD: 60}), ttl=10)
    assert balance(store, "u", now + 9.9) == (0, 60, 1)
    # Expiry is inclusive (expires_at <= now), read through usage.
    assert balance(store, "u", now + 10) == (60, 0, 0)
    assert store.settle(lease_id, {USD: 1}, now + 11) is False
    assert balance(store, "u", now + 11) == (60, 0, 0)


def test_expired_lease_is_charged_when_a_reservation_touches_the_scope(store: BudgetStore) -> None:
    now = time.time()
    reserve(store, now, scope("u", {USD: 60}), ttl=10)
    # Before the expiry the lease blocks as in flight; after it, it is spent and 40 still fit.
    assert reserve(store, now + 5, scope("u", {USD: 41}))[1] == Denial("u", USD, LIMIT, 0, 60, 41)
    assert reserve(store, now + 20, scope("u", {USD: 41}))[1] == Denial("u", USD, LIMIT, 60, 0, 41)
    assert reserve(store, now + 20, scope("u", {USD: 40}))[1] is None
    assert balance(store, "u", now + 20) == (60, 40, 1)


def test_expire_charges_every_expired_lease(store: BudgetStore) -> None:
    now = time.time()
    reserve(store, now, scope("a", {USD: 10}), ttl=10)
    reserve(store, now, scope("a", {USD: 20}), ttl=100)
    reserve(store, now, scope("b", {USD: 30}), ttl=10)
    reserve(store, now, scope("c", {USD: 1}), scope("d", {USD: 2}), ttl=10)
    assert store.expire(now + 5) == 0
    assert store.expire(now + 10) == 3
    assert store.expire(now + 10) == 0
    assert balance(store, "a", now + 10) == (10, 20, 1)
    assert balance(store, "b", now + 10) == (30, 0, 0)
    assert balance(store, "c", now + 10) == (1, 0, 0)
    assert balance(store, "d", now + 10) == (2, 0, 0)
    assert store.expire(now + 1000) == 1
    assert balance(store, "a", now + 1000) == (30, 0, 0)


def test_a_lease_over_several_scopes_expires_on_all_of_them(store: BudgetStore) -> None:
    now = time.time()
    lease_id, _ = reserve(store, now, scope("x", {USD: 7}), scope("y", {USD: 9}), ttl=10)
    assert balance(store, "x", now + 10) == (7, 0, 0)
    assert balance(store, "y", now + 10) == (9, 0, 0)
    assert store.settle(lease_id, {USD: 1}, now + 10) is False
    assert balance(store, "x", now + 10) == (7, 0, 0)


def test_usage_numbers_are_exact(store: BudgetStore) -> None:
    now = time.time()
    assert store.usage("nobody", now) == ScopeUsage()
    limits = {USD: 10**15, TURNS: 100, TOKENS: 10**9}
    first, _ = reserve(store, now, scope("u", {USD: 1_234_567, TURNS: 1, TOKENS: 4096}, limits))
    reserve(store, now, scope("u", {USD: 999_999_999_999, TURNS: 1, TOKENS: 8192}, limits))
    reserve(store, now, scope("u", {USD: 0, TURNS: 1, TOKENS: 0}, limits))
    store.settle(first, {USD: 1_000_001, TURNS: 1, TOKENS: 3001}, now)
    usage = store.usage("u", now)
    assert usage.spent == {USD: 1_000_001, TURNS: 1, TOKENS: 3001}
    assert usage.in_flight == {USD: 999_999_999_999, TURNS: 2, TOKENS: 8192}
    assert usage.leases == 2


def test_reset_forgets_spend_and_live_leases(store: BudgetStore) -> None:
    now = time.time()
    settled, _ = reserve(store, now, scope("u", {USD: 50}))
    store.settle(settled, {USD: 50}, now)
    live, _ = reserve(store, now, scope("u", {USD: 40}))
    reserve(store, now, scope("other", {USD: 5}))
    store.reset("u")
    assert store.usage("u", now) == ScopeUsage()
    assert reserve(store, now, scope("u", {USD: 100}))[1] is None
    store.settle(live, {USD: 40}, now)  # the dropped lease charges nothing on the reset scope
    assert balance(store, "u", now) == (0, 100, 1)
    assert balance(store, "other", now) == (0, 5, 1)
    store.reset("never-seen")


WEIRD_KEYS = [
    "user:{x}\n*?[]' OR 1=1 --",
    "user:{x}\n*?[]' OR 1=1 -- ",
    "user:{x}",
    "user:",
    "",
    "'; DROP TABLE scopes; --",
    "ユーザー🙂{}",
    "a" * 1000,
    "a" * 999,
    "spendfuse:{0000000000000000000000000000000000000000}:s",
    "\\*\\",
    "nul\x00byte",
]


def test_weird_keys_are_isolated(store: BudgetStore) -> None:
    now = time.time()
    for index, key in enumerate(WEIRD_KEYS):
        lease_id, denial = reserve(store, now, scope(key, {USD: index + 1}, {USD: 10_000}))
        assert denial is None
        store.settle(lease_id, {USD: index + 1}, now)
        reserve(store, now, scope(key, {USD: 100 * (index + 1)}, {USD: 10_000}), ttl=5)
    for index, key in enumerate(WEIRD_KEYS):
        assert balance(store, key, now) == (index + 1, 100 * (index + 1), 1), key
    assert store.expire(now + 5) == len(WEIRD_KEYS)
    store.reset(WEIRD_KEYS[0])
    for index, key in enumerate(WEIRD_KEYS[1:], start=1):
        assert balance(store, key, now + 5) == (101 * (index + 1), 0, 0), key
    assert balance(store, WEIRD_KEYS[0], now + 5) == (0, 0, 0)


def test_window_scope_is_forgotten_after_it_expires(store: BudgetStore) -> None:
    now = time.time()
    window_end = now + 100
    lease_id, _ = reserve(store, now, scope("user:2024-01-01", {USD: 70}, expires_at=window_end))
    store.settle(lease_id, {USD: 70}, now)
    assert reserve(store, now + 50, scope("user:2024-01-01", {USD: 40}, expires_at=window_end))[1] is not None
    # Past the window's end the key starts over.
    assert reserve(store, now + 200, scope("user:2024-01-01", {USD: 100}, expires_at=now + 300))[1] is None
    assert balance(store, "user:2024-01-01", now + 200) == (0, 100, 1)


def _race(store: BudgetStore, threads: int, work: object) -> None:
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            barrier.wait(timeout=30)
            work(index)  # type: ignore[operator]
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    pool = [threading.Thread(target=run, args=(index,)) for index in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(timeout=60)
    assert not errors, errors[:3]


def test_concurrent_turns_admit_exactly_the_limit(store: BudgetStore) -> None:
    now = time.time()
    limits = {TURNS: 200}
    admitted = [0] * 32

    def work(index: int) -> None:
        while True:
            lease_id, denial = reserve(store, now, ScopeRequest("t", limits, {TURNS: 1}))
            if denial is not None:
                return
            admitted[index] += 1
            assert store.settle(lease_id, {TURNS: 1}, now)

    _race(store, 32, work)
    assert sum(admitted) == 200
    usage = store.usage("t", now)
    assert (usage.spent[TURNS], usage.in_flight[TURNS], usage.leases) == (200, 0, 0)


def test_concurrent_reservers_never_overshoot(store: BudgetStore) -> None:
    now = time.time()
    limit = 20_000
    settled = [0] * 32

    def work(index: int) -> None:
        rng = random.Random(index)
        while True:
            lease_id, denial = reserve(store, now, scope("usd", {USD: 300}, {USD: limit}))
            if denial is not None:
                return
            actual = rng.randint(1, 300)
            assert store.settle(lease_id, {USD: actual}, now)
            settled[index] += actual

    _race(store, 32, work)
    spent, in_flight, leases = balance(store, "usd", now)
    assert spent == sum(settled) <= limit
    assert (in_flight, leases) == (0, 0)
