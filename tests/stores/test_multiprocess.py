"""Several processes share one budget through sqlite:/// and redis://."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time

import pytest

from spendfuse.budgets.stores import USD, ScopeRequest, open_store

from . import _workers

pytestmark = pytest.mark.slow

SPAWN = multiprocessing.get_context("spawn")


@pytest.mark.parametrize(
    ("processes", "threads", "attempts", "amount", "limit"),
    [
        (4, 32, 3, 1_000, 200_500),  # 384 attempts for 200 slots; the limit is not a multiple
        (2, 16, 4, 7_777, 777_700),  # exactly 100 slots at the boundary
    ],
)
def test_processes_never_admit_past_the_limit(
    shared_store_url: str, processes: int, threads: int, attempts: int, amount: int, limit: int
) -> None:
    barrier = SPAWN.Barrier(processes * threads)
    results = SPAWN.Queue()
    workers = [
        SPAWN.Process(
            target=_workers.race,
            args=(shared_store_url, index, threads, attempts, "shared", limit, amount, barrier, results),
        )
        for index in range(processes)
    ]
    for worker in workers:
        worker.start()
    reports = [results.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)
        assert worker.exitcode == 0

    errors = [error for report in reports for error in report[3]]
    assert not errors, errors[:3]
    admitted = [lease for report in reports for lease in report[1]]
    assert len(admitted) == len(set(admitted))
    # Never past the limit, and no false blocks: every slot that fits was handed out.
    assert len(admitted) * amount <= limit
    assert len(admitted) == limit // amount
    assert sum(report[2] for report in reports) == len(admitted)

    store = open_store(shared_store_url)
    usage = store.usage("shared", time.time())
    store.close()
    assert usage.spent[USD] == len(admitted) * (amount - 1)
    assert (usage.in_flight[USD], usage.leases) == (0, 0)


def test_a_killed_holder_is_charged_after_its_lease_expires(shared_store_url: str) -> None:
    ready = SPAWN.Queue()
    holder = SPAWN.Process(target=_workers.hold_lease, args=(shared_store_url, "victim", 10, 5, 60.0, ready))
    holder.start()
    try:
        state, lease_expires_at = ready.get(timeout=60)
        assert state == "held"
        assert holder.pid is not None
        os.kill(holder.pid, signal.SIGKILL)
    finally:
        holder.join(timeout=30)
    assert holder.exitcode == -signal.SIGKILL

    store = open_store(shared_store_url)
    try:
        request = [ScopeRequest("victim", {USD: 10}, {USD: 6})]
        now = time.time()
        assert now < lease_expires_at, "the lease expired before the check; make it longer"
        denial = store.reserve("before", request, now + 60, now)
        assert denial is not None and denial.in_flight == 5

        now = lease_expires_at + 0.05  # read past the expiry instead of sleeping until it
        usage = store.usage("victim", now)
        assert (usage.spent[USD], usage.in_flight[USD], usage.leases) == (5, 0, 0)
        fits = [ScopeRequest("victim", {USD: 10}, {USD: 5})]
        assert store.reserve("after", fits, now + 60, now) is None
        assert store.reserve("over", request, now + 60, now) is not None
    finally:
        store.close()
