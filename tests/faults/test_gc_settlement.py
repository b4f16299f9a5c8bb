"""Settlement from the garbage collector never deadlocks, waits or leaks (#14, DESIGN §4).

A half-read stream is freed by a collection forced inside each critical section in turn, on the
thread that holds it; its finalizer settles the stream. Before the fix this deadlocked (memory
store, Redis store, run lock) or waited out SQLite's lock and left the lease open. Each case runs
in a child process, so a hang is a timeout, not a stuck test session; after the child exits
cleanly, the shared stores hold no open lease (a stream still alive at exit is settled at exit).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from spendfuse.budgets.stores import open_store

ROOT = Path(__file__).resolve().parents[2]
CHILD_TIMEOUT = 60.0


def _run_child(kind: str, url: str) -> dict[str, object]:
    try:
        done = subprocess.run(
            [sys.executable, "-m", "tests.faults._gc_worker", kind, url],
            cwd=ROOT, capture_output=True, text=True, timeout=CHILD_TIMEOUT,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        pytest.fail(f"{kind}: settling from a garbage collection inside the critical section hung")
    assert done.returncode == 0, done.stderr[-3000:]
    report: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return report


@pytest.mark.parametrize(
    "kind",
    ["memory", "sqlite", pytest.param("redis", marks=pytest.mark.redis), "run_lock"],
)
def test_settlement_from_a_collection_inside_a_critical_section(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if kind == "sqlite":
        url = f"sqlite:///{tmp_path}/budgets.db"
    elif kind == "redis":
        from stores._redis_server import RedisServer, require_redis_server

        server = RedisServer(require_redis_server(), tmp_path / "redis")
        server.start()
        request.addfinalizer(server.stop)
        url = server.url
    else:
        url = "memory://"
    started = time.monotonic()
    report = _run_child(kind, url)
    assert report["collected"] > 0  # type: ignore[operator]  # the stream was freed inside the section
    assert report["requests"] == 3
    assert report["turns"] == 2  # the dropped stream and the call it interrupted, both settled
    assert report["flight_turns"] == 0
    if kind != "run_lock":
        assert report["user_leases"] == 0
    if kind in ("sqlite", "redis"):
        # The child exited cleanly with a stream still alive: it was settled at exit.
        store = open_store(url, timeout=5.0)
        try:
            usage = store.usage(str(report["user_key"]), time.time())
            assert usage.leases == 0
            assert usage.in_flight == {"usd": 0, "turns": 0, "tokens": 0}
            assert usage.spent["turns"] == 3
        finally:
            store.close()
    assert time.monotonic() - started < CHILD_TIMEOUT
