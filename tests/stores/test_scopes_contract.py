"""Several scopes per reservation under concurrency, on memory://, sqlite:/// and redis:// (#18).

Callers reserve on overlapping sets of scopes (org, two teams, a model). Whatever the interleaving:
no scope is ever past its limit, a refusal on one scope leaves nothing on the others (every lease
left at the end was admitted, and each admitted one is settled once), and no false blocks: at the
end every set of scopes is full on at least one of its scopes.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections import Counter
from collections.abc import Sequence

import pytest

from spendfuse.budgets.stores import USD, BudgetStore, open_store

from . import _scope_workers

AMOUNT = 1_000
# Limits not multiples of the amount; the org binds first, then the teams and the model.
LIMITS = {"org": 40_500, "team-a": 30_000, "team-b": 22_700, "model": 45_000}
SPAWN = multiprocessing.get_context("spawn")


def check_final(store: BudgetStore, admitted: Sequence[tuple[str, tuple[str, ...]]], settled: bool) -> None:
    counts: Counter[str] = Counter(key for _, keys in admitted for key in keys)
    now = time.time()
    for key, limit in LIMITS.items():
        usage = store.usage(key, now)
        assert counts[key] * AMOUNT <= limit, (key, counts[key])
        if settled:
            assert (usage.spent[USD], usage.in_flight[USD], usage.leases) == (counts[key] * (AMOUNT - 1), 0, 0), key
        else:
            # Only admitted reservations are in flight: a refusal reserved nothing anywhere.
            assert (usage.spent[USD], usage.in_flight[USD], usage.leases) == (0, counts[key] * AMOUNT, counts[key])
    full = {key for key, limit in LIMITS.items() if limit - counts[key] * AMOUNT < AMOUNT}
    for keys in _scope_workers.SUBSETS:
        assert full & set(keys), f"{keys} still had room in every scope: a false block"


def test_threads_on_overlapping_scopes(store: BudgetStore) -> None:
    admitted: list[tuple[str, tuple[str, ...]]] = []
    errors: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(16)

    def run(index: int) -> None:
        barrier.wait(timeout=30)
        _scope_workers.attempt_all(store, 0, index, 12, LIMITS, AMOUNT, admitted, errors, lock)

    pool = [threading.Thread(target=run, args=(index,)) for index in range(16)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(timeout=120)
    assert not errors, errors[:3]
    check_final(store, admitted, settled=False)
    for lease_id, _ in admitted:
        assert store.settle(lease_id, {USD: AMOUNT - 1}, time.time())
    check_final(store, admitted, settled=True)


def test_denial_names_the_scope_and_leaves_the_others_untouched(store: BudgetStore) -> None:
    from spendfuse.budgets.stores import ScopeRequest

    now = time.time()
    assert store.reserve("a", [ScopeRequest("team-b", {USD: 10}, {USD: 10})], now + 60, now) is None
    requests = [ScopeRequest(key, {USD: 100 if key != "team-b" else 10}, {USD: 5}) for key in LIMITS]
    denial = store.reserve("b", requests, now + 60, now)
    assert denial is not None and (denial.key, denial.metric, denial.in_flight, denial.requested) == (
        "team-b",
        USD,
        10,
        5,
    )
    for key in ("org", "team-a", "model"):
        assert store.usage(key, now).leases == 0 and store.usage(key, now).in_flight[USD] == 0
    assert not store.settle("b", {USD: 1}, now)  # the refused lease does not exist anywhere


@pytest.mark.slow
def test_four_processes_on_overlapping_scopes(shared_store_url: str) -> None:
    processes, threads, attempts = 4, 8, 6
    barrier = SPAWN.Barrier(processes * threads)
    results = SPAWN.Queue()
    workers = [
        SPAWN.Process(
            target=_scope_workers.race_scopes,
            args=(shared_store_url, index, threads, attempts, LIMITS, AMOUNT, barrier, results),
        )
        for index in range(processes)
    ]
    for worker in workers:
        worker.start()
    reports = [results.get(timeout=180) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)
        assert worker.exitcode == 0
    errors = [error for report in reports for error in report[3]]
    assert not errors, errors[:3]
    admitted = [entry for report in reports for entry in report[1]]
    assert len({lease for lease, _ in admitted}) == len(admitted)
    assert sum(report[2] for report in reports) == len(admitted)
    store = open_store(shared_store_url)
    try:
        check_final(store, admitted, settled=True)
    finally:
        store.close()
