"""Processes that open a new SQLite budget database at the same moment all get a working store.

The first connections race to switch the file to WAL and to create the schema; SQLite answers a
lock upgrade it cannot wait for with an immediate "database is locked" (no busy handler). Before
the store retried that setup, about one trial in six failed one process's first reserve.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path
from typing import Any

import pytest

from spendfuse.budgets.stores import open_store
from spendfuse.budgets.stores.base import ScopeRequest

pytestmark = pytest.mark.slow
SPAWN = multiprocessing.get_context("spawn")
PROCESSES = 8
TRIALS = 8


def first_reserve(url: str, barrier: Any, results: Any) -> None:
    store = open_store(url, timeout=30.0)  # connects lazily: at the reserve, after the barrier
    barrier.wait(timeout=60)
    try:
        now = time.time()
        denial = store.reserve(f"first-{os.getpid()}", [ScopeRequest("k", {"usd": 10**9}, {"usd": 1})], now + 60, now)
        results.put("admitted" if denial is None else "denied")
    except Exception as error:
        results.put(repr(error))
    finally:
        store.close()


def test_concurrent_first_opens_all_succeed(tmp_path: Path) -> None:
    for trial in range(TRIALS):
        url = f"sqlite:///{tmp_path}/trial-{trial}.db"
        barrier, results = SPAWN.Barrier(PROCESSES), SPAWN.Queue()
        workers = [SPAWN.Process(target=first_reserve, args=(url, barrier, results)) for _ in range(PROCESSES)]
        for worker in workers:
            worker.start()
        outcomes = [results.get(timeout=120) for _ in workers]
        for worker in workers:
            worker.join(timeout=30)
        assert outcomes == ["admitted"] * PROCESSES, f"trial {trial}: {outcomes}"
        usage = open_store(url).usage("k", time.time())
        assert (usage.in_flight["usd"], usage.leases) == (PROCESSES, PROCESSES)
