"""Critical sections and deferred settlement (spendfuse.budgets.critical, Breaker.settle(deferred=True))."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from typing import Any

import pytest

import spendfuse
from spendfuse import runtime
from spendfuse.budgets import critical
from spendfuse.budgets.breaker import CallRequest
from spendfuse.budgets.usage import TokenUsage

MODEL = "claude-sonnet-4-5"


def test_guarded_lock_marks_its_holder_inside_and_only_it() -> None:
    lock = critical.GuardedLock()
    seen: list[bool] = []
    assert not critical.inside()
    with lock:
        assert critical.inside()
        other = threading.Thread(target=lambda: seen.append(critical.inside()))
        other.start()
        other.join()
        assert not lock.acquire(timeout=0.01)  # a failed acquisition leaves the mark as it was
        assert critical.inside()
    assert seen == [False]
    assert not critical.inside()
    with pytest.raises(RuntimeError), lock:
        raise RuntimeError("boom")
    assert not critical.inside() and not lock.locked()


def test_work_deferred_inside_a_section_runs_when_the_thread_leaves_it() -> None:
    done: list[int] = []
    with critical.section:
        critical.defer(done.append, 1)
        assert critical.drain() == 0  # never inside a section
        assert done == []
    assert critical.drain() == 1
    assert done == [1] and critical.pending() == 0


def _admit(instrument: Any) -> tuple[Any, Any, Any]:
    instrument(user_budget=spendfuse.Budget(usd=10, window="1d"))
    active = runtime.current()
    assert active is not None
    request = CallRequest("anthropic", "messages", MODEL, {"model": MODEL, "max_tokens": 100, "messages": []}, 100)
    return active.breaker, request, active.breaker.store


def test_a_deferred_settlement_waits_for_a_flush(instrument: Any) -> None:
    breaker, request, _store = _admit(instrument)
    with spendfuse.run("deferred", user_id="erin", budget=spendfuse.Budget(usd=1)) as run:
        admission = breaker.admit(request, run, None)
        breaker.settle(admission, TokenUsage(10, 5), 105, deferred=True)
        assert run.balance.flight_turns == 1 and run.balance.turns == 0
        spendfuse.flush()
        assert run.balance.flight_turns == 0 and run.balance.turns == 1
        assert run.spent.usd_micros == 105
        breaker.settle(admission, TokenUsage(10, 5), 105)  # settled exactly once
        assert run.spent.usd_micros == 105


def test_the_next_admission_drains_deferred_settlements(instrument: Any) -> None:
    breaker, request, store = _admit(instrument)
    with spendfuse.run("next", user_id="frank", budget=spendfuse.Budget(usd=1)) as run:
        first = breaker.admit(request, run, None)
        breaker.settle(first, TokenUsage(10, 5), 105, deferred=True)
        second = breaker.admit(request, run, None)
        assert run.balance.turns == 1 and run.balance.flight_turns == 1
        breaker.settle(second, TokenUsage(10, 5), 105)
        assert run.balance.turns == 2 and run.balance.flight_turns == 0
        assert store.usage(first.user_key, time.time()).leases == 0


def test_work_deferred_after_the_exit_drain_still_runs() -> None:
    # A handler registered before spendfuse is imported runs after spendfuse's exit drain (atexit
    # is last-in first-out), as weakref.finalize's exit hook may: its deferred work must still run.
    script = (
        "import atexit\n"
        "def late():\n"
        "    from spendfuse.budgets import critical\n"
        "    critical.defer(print, 'late work ran')\n"
        "atexit.register(late)\n"
        "from spendfuse.budgets import critical\n"
        "critical.defer(print, 'early work ran')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["early work ran", "late work ran"]
