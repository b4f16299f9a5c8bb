"""Mixed load leaves no lease open after a clean exit (#14): processes x threads x asyncio tasks
completing, abandoning (dropped half-read, freed by the cycle collector) and cancelling streams
against one user window in SQLite and Redis.

Before settlement from finalizers was deferred out of critical sections, a collection inside the
SQLite transaction left leases open (and one inside the run lock could deadlock a process).
"""

from __future__ import annotations

import multiprocessing
import time

import pytest

from spendfuse.budgets.budget import window_bounds
from spendfuse.budgets.stores import open_store

from . import _mixed

pytestmark = pytest.mark.slow
SPAWN = multiprocessing.get_context("spawn")
PROCESSES, THREADS, TASKS, ROUNDS = 2, 3, 4, 8


def test_no_lease_is_left_open_after_a_clean_exit(shared_store_url: str) -> None:
    results = SPAWN.Queue()
    workers = [
        SPAWN.Process(target=_mixed.mixed_process, args=(shared_store_url, THREADS, TASKS, ROUNDS, results))
        for _ in range(PROCESSES)
    ]
    for worker in workers:
        worker.start()
    try:
        sent = sum(results.get(timeout=90) for _ in workers)
    finally:
        for worker in workers:
            worker.join(timeout=30)
            if worker.exitcode is None:
                worker.kill()
    assert [worker.exitcode for worker in workers] == [0] * PROCESSES
    assert sent >= PROCESSES * THREADS * TASKS * ROUNDS * 3 // 4  # the cancelled ones may not be sent
    now = time.time()
    start, _ = window_bounds("1d", now)
    store = open_store(shared_store_url, timeout=5.0)
    try:
        usage = store.usage(f"user/1d/{start}/{_mixed.USER}", now)
    finally:
        store.close()
    assert usage.leases == 0
    assert usage.in_flight == {"usd": 0, "turns": 0, "tokens": 0}
    assert usage.spent["turns"] >= sent
