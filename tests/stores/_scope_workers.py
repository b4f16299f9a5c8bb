"""Child-process code for the several-scope races (importable by spawned children)."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

from spendfuse.budgets.stores import USD, BudgetStore, ScopeRequest, StoreUnavailableError, open_store

# Overlapping sets of scopes, like calls of different teams in one org on shared models.
SUBSETS: tuple[tuple[str, ...], ...] = (
    ("org", "team-a"),
    ("org", "team-b", "model"),
    ("team-a", "model"),
    ("org", "team-a", "team-b", "model"),
)
LEASE_SECONDS = 60.0


def subset(process_index: int, thread_index: int, attempt: int) -> tuple[str, ...]:
    return SUBSETS[(process_index * 7 + thread_index * 3 + attempt) % len(SUBSETS)]


def attempt_all(
    store: BudgetStore,
    process_index: int,
    thread_index: int,
    attempts: int,
    limits: Mapping[str, int],
    amount: int,
    admitted: list[tuple[str, tuple[str, ...]]],
    errors: list[str],
    lock: threading.Lock,
) -> None:
    for attempt in range(attempts):
        keys = subset(process_index, thread_index, attempt)
        lease_id = f"p{process_index}-t{thread_index}-{attempt}"
        now = time.time()
        requests = [ScopeRequest(key, {USD: limits[key]}, {USD: amount}) for key in keys]
        try:
            denial = store.reserve(lease_id, requests, now + LEASE_SECONDS, now)
        except StoreUnavailableError as exc:
            errors.append(repr(exc))
            continue
        if denial is None:
            with lock:
                admitted.append((lease_id, keys))


def race_scopes(
    url: str,
    process_index: int,
    threads: int,
    attempts: int,
    limits: Mapping[str, int],
    amount: int,
    barrier: Any,
    results: Any,
) -> None:
    """Threads released together reserve on overlapping scopes; settle what they got at ``amount - 1``."""
    store = open_store(url, timeout=30.0)  # a fair wait on a loaded 2-core machine: admission is tested
    admitted: list[tuple[str, tuple[str, ...]]] = []
    errors: list[str] = []
    lock = threading.Lock()

    def run(thread_index: int) -> None:
        try:
            barrier.wait(timeout=60)
        except Exception as exc:
            errors.append(f"barrier: {exc!r}")
            return
        attempt_all(store, process_index, thread_index, attempts, limits, amount, admitted, errors, lock)

    pool = [threading.Thread(target=run, args=(index,)) for index in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    settled = sum(store.settle(lease_id, {USD: amount - 1}, time.time()) for lease_id, _ in admitted)
    store.close()
    results.put((process_index, admitted, settled, errors))
