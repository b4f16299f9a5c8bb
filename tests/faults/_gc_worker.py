"""Child process of test_gc_settlement: a garbage collection inside each critical section.

``python -m tests.faults._gc_worker KIND STORE_URL`` prints one JSON line. KIND names where the
collection happens: ``memory`` (the memory store's lock), ``sqlite`` (inside a SQLite transaction),
``redis`` (the Redis store's lease-route lock) or ``run_lock`` (the run lock). The collection frees
a half-read stream whose finalizer settles it, on this thread, inside that section.
"""

from __future__ import annotations

import gc
import json
import sys
import time
from typing import Any

MODEL = "claude-sonnet-4-5"
MESSAGES = [{"role": "user", "content": "Tell me a long story."}]


class CollectingLock:
    """Wraps a lock: the first acquisition after arming runs a full collection while holding it."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.armed = True
        self.collected = -1

    def _collect(self) -> None:
        if self.armed:
            self.armed = False
            self.collected = gc.collect()

    def __enter__(self) -> Any:
        entered = self.inner.__enter__()
        self._collect()
        return entered

    def __exit__(self, *exc: Any) -> Any:
        return self.inner.__exit__(*exc)

    def acquire(self, *args: Any, **kwargs: Any) -> bool:
        acquired: bool = self.inner.acquire(*args, **kwargs)
        if acquired:
            self._collect()
        return acquired

    def release(self) -> None:
        self.inner.release()


def drop_half_read(client: Any) -> None:
    """Read two events of a stream, then drop it where only the cycle collector can free it."""
    stream = client.messages.create(model=MODEL, max_tokens=256, messages=MESSAGES, stream=True)
    events = iter(stream)
    next(events)
    next(events)
    cycle: list[Any] = [stream, events]
    cycle.append(cycle)


def arm(kind: str, store: Any) -> CollectingLock:
    if kind == "memory":
        store._lock = probe = CollectingLock(store._lock)
        return probe
    if kind == "redis":
        store._routes_lock = probe = CollectingLock(store._routes_lock)
        return probe
    if kind == "sqlite":
        probe = CollectingLock(None)
        balance = type(store)._balance

        def balance_then_collect(conn: Any, key: Any) -> Any:
            found = balance(conn, key)
            probe._collect()  # inside BEGIN IMMEDIATE ... COMMIT, the store's lock held
            return found

        type(store)._balance = staticmethod(balance_then_collect)
        return probe
    if kind == "run_lock":
        original = sys.modules["spendfuse.runs.balance"].RUN_LOCK
        probe = CollectingLock(original)
        for name, module in list(sys.modules.items()):
            if name.startswith("spendfuse") and getattr(module, "RUN_LOCK", None) is original:
                module.RUN_LOCK = probe  # type: ignore[attr-defined]
        return probe
    raise SystemExit(f"unknown kind {kind!r}")


def main(kind: str, url: str) -> None:
    gc.disable()  # collections happen only where this test puts them
    import spendfuse
    from spendfuse import runtime
    from spendfuse.testing import FakeProvider, FakeUsage

    user_budget = None if kind == "run_lock" else spendfuse.Budget(usd=10, window="1d")
    spendfuse.instrument(store=url, user_budget=user_budget, warn_at=None)
    active = runtime.current()
    assert active is not None
    store = active.breaker.store
    fake = FakeProvider(usage=FakeUsage(input_tokens=1000, output_tokens=200))
    client = fake.anthropic_client()
    with spendfuse.run("gc-run", user_id="gc-user", budget=spendfuse.Budget(usd=5)) as run:
        drop_half_read(client)
        probe = arm(kind, store)
        client.messages.create(model=MODEL, max_tokens=256, messages=MESSAGES)
        # And one more dropped stream that nothing collects before exit: settled at exit.
        drop_half_read(client)
        balance = run.balance
        report = {
            "collected": probe.collected,
            "requests": fake.request_count,
            "turns": balance.turns,
            "flight_turns": balance.flight_turns - 1,  # minus the stream still alive until exit
        }
    if user_budget is not None:
        from spendfuse.budgets.budget import window_bounds

        start, _ = window_bounds("1d", time.time())
        report["user_key"] = f"user/1d/{start}/gc-user"
        usage = store.usage(report["user_key"], time.time())
        report["user_leases"] = usage.leases - 1  # the stream still alive until exit
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
