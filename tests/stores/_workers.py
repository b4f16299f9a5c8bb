"""Code run in child processes by the multi-process store tests (importable by spawned children)."""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from spendfuse.budgets.stores import USD, ScopeRequest, StoreUnavailableError, open_store

RACE_TIMEOUT = 30.0  # seconds a worker may wait for the store (see race)

LEASE_SECONDS = 60.0


def race(
    url: str,
    process_index: int,
    threads: int,
    attempts: int,
    key: str,
    limit: int,
    amount: int,
    barrier: Any,
    results: Any,
) -> None:
    """Threads released together reserve ``amount`` against ``limit``; report the admitted lease ids."""
    # Up to 128 threads in several processes released at once poll one SQLite write lock, and the
    # polling is not fair: on a loaded 2-core machine one of them can wait past 5 s. These tests
    # are about admission, so the lock wait is generous; store latency is benchmarked elsewhere.
    store = open_store(url, timeout=RACE_TIMEOUT)
    admitted: list[str] = []
    errors: list[str] = []
    lock = threading.Lock()

    def run(thread_index: int) -> None:
        try:
            barrier.wait(timeout=60)
        except Exception as exc:
            errors.append(f"barrier: {exc!r}")
            return
        for attempt in range(attempts):
            lease_id = f"p{process_index}-t{thread_index}-{attempt}"
            now = time.time()
            try:
                denial = store.reserve(
                    lease_id, [ScopeRequest(key, {USD: limit}, {USD: amount})], now + LEASE_SECONDS, now
                )
            except StoreUnavailableError as exc:
                errors.append(repr(exc))
                continue
            if denial is None:
                with lock:
                    admitted.append(lease_id)

    pool = [threading.Thread(target=run, args=(index,)) for index in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    # Settle in the process that reserved: that is where the lease routing lives (redis).
    settled = 0
    for lease_id in admitted:
        if store.settle(lease_id, {USD: amount - 1}, time.time()):
            settled += 1
    store.close()
    results.put((process_index, admitted, settled, errors))


def hold_lease(url: str, key: str, limit: int, amount: int, lease_seconds: float, ready: Any) -> None:
    """Reserve, tell the parent, then wait to be SIGKILLed while holding the lease."""
    store = open_store(url, timeout=RACE_TIMEOUT)
    now = time.time()
    denial = store.reserve(f"doomed-{os.getpid()}", [ScopeRequest(key, {USD: limit}, {USD: amount})],
                           now + lease_seconds, now)  # fmt: skip
    ready.put(("held" if denial is None else "denied", now + lease_seconds))
    time.sleep(120)


def churn(url: str, run: int, ready: Any) -> None:
    """Reserve then settle, forever, until SIGKILLed: lease n of run r settles turns=1, tokens=n.

    One scope per run plus one shared by all runs, so the parent can check after each kill that every
    settled lease was charged exactly once and every unsettled one is still exactly in flight.
    """
    store = open_store(url, timeout=RACE_TIMEOUT)
    limits = {USD: 10**15}
    scopes = lambda: [  # noqa: E731 - rebuilt per call so no state is shared between reserves
        ScopeRequest(f"run-{run}", limits, {USD: 1000, "turns": 1, "tokens": 0}),
        ScopeRequest("all-runs", limits, {USD: 1000, "turns": 1, "tokens": 0}),
    ]
    ready.put("started")
    n = 0
    while True:
        now = time.time()
        lease_id = f"run-{run}-{n}"
        if store.reserve(lease_id, scopes(), now + 3600, now) is not None:
            raise SystemExit("unexpected denial")
        store.settle(lease_id, {USD: 1, "turns": 1, "tokens": n}, now)
        n += 1
