"""A process SIGKILLed in the middle of a model call, holding a lease on the user's budget.

The child reserves through the real breaker (instrumented SDK client) and blocks in the provider; the
parent kills it. The database stays intact, the lease is charged at exactly its reserved amount
once it expires, and the next process's calls flow.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from stores._redis_server import RedisServer, require_redis_server

import spendfuse
from spendfuse.budgets.stores import open_store
from spendfuse.testing import FakeProvider, FakeServer, FakeUsage, RecordedRequest, Reply

from ._calls import SONNET, SpanTracker, attributes_of, micros

pytestmark = pytest.mark.slow

USER = "killed-user"
KEY = f"user/lifetime/{USER}"
MESSAGES = [{"role": "user", "content": "Draft the release notes for version 2.3."}]
USAGE = FakeUsage(25, 10)
COST = 25 * 3 + 10 * 15
LEASE_SECONDS = 60  # the expiry is checked by reading the store at a later time, never by sleeping

CHILD = textwrap.dedent(
    """
    import json
    import sys
    import spendfuse
    from spendfuse.testing import clients

    store, base_url, user, lease_seconds, model, messages = sys.argv[1:7]
    spendfuse.instrument(store=store, user_budget={"usd": 10.0}, lease_seconds=float(lease_seconds), warn_at=None)
    client = clients.anthropic_client(base_url=base_url)
    with spendfuse.run("doomed", user_id=user):
        client.messages.create(model=model, max_tokens=512, messages=json.loads(messages))
    print("the call returned: the parent should have killed this process", flush=True)
    """
)


@pytest.fixture
def slow_server() -> Iterator[tuple[FakeProvider, str]]:
    """A fake provider on a loopback port that holds every request (for 60 s, or until the test ends)."""
    release = threading.Event()

    def hold(_request: RecordedRequest) -> Reply:
        release.wait(60)
        return Reply.text("Too late.")

    fake = FakeProvider(usage=USAGE, responder=hold)
    with FakeServer(fake) as server:
        yield fake, server.anthropic_base_url
        release.set()


def start_child(store_url: str, base_url: str) -> subprocess.Popen[bytes]:
    root = Path(spendfuse.__file__).resolve().parents[1]
    env = {key: value for key, value in os.environ.items() if not key.startswith("SPENDFUSE_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
    env["PYTHONWARNINGS"] = "ignore"
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, store_url, base_url, USER, str(LEASE_SECONDS), SONNET, json.dumps(MESSAGES)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def test_sigkill_mid_call_charges_the_lease_at_expiry(
    backend: str,
    tmp_path: Path,
    slow_server: tuple[FakeProvider, str],
    instrument: Any,
    tracker: SpanTracker,
) -> None:
    redis_server: RedisServer | None = None
    if backend == "sqlite":
        path = tmp_path / "budgets.db"
        url = f"sqlite:///{path}"
    else:
        redis_server = RedisServer(require_redis_server(), tmp_path / "redis", appendonly=True)
        redis_server.start()
        url = redis_server.url
    try:
        fake, base_url = slow_server
        child = start_child(url, base_url)
        try:
            if not fake.wait_for(lambda: fake.request_count == 1, timeout=30):
                child.kill()
                _, stderr = child.communicate(timeout=10)
                pytest.fail(f"the child never reached the provider:\n{stderr.decode(errors='replace')[-3000:]}")
            store = open_store(url, timeout=2.0)
            held = store.usage(KEY, time.time())
            assert held.leases == 1 and held.spent["usd"] == 0
            reserved = held.in_flight["usd"]
            assert held.in_flight["turns"] == 1 and reserved > 0
            os.kill(child.pid, signal.SIGKILL)
            assert child.wait(timeout=10) == -signal.SIGKILL
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()

        if backend == "sqlite":
            with sqlite3.connect(path) as check:
                assert check.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
                tables = {row[0] for row in check.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            assert {"scopes", "balances", "leases"} <= tables

        # Before expiry the lease still blocks its amount; after it, it is charged at that amount.
        charged = store.usage(KEY, time.time() + LEASE_SECONDS + 1)
        assert (charged.spent["usd"], charged.spent["turns"], charged.leases) == (reserved, 1, 0)
        assert all(value == 0 for value in charged.in_flight.values())

        # This process, same store and user: calls flow, and the same call reserves the same worst case.
        instrument(store=url, user_budget={"usd": 10.0}, lease_seconds=LEASE_SECONDS)
        fresh = FakeProvider(usage=USAGE)
        with spendfuse.run("survivor", user_id=USER):
            fresh.anthropic_client().messages.create(model=SONNET, max_tokens=512, messages=MESSAGES)
        assert fresh.request_count == 1
        span = tracker.chat_ended()[0]
        assert micros(attributes_of(span)["spendfuse.reserved.usd"]) == reserved
        after = store.usage(KEY, time.time())
        assert (after.spent["usd"], after.spent["turns"], after.leases) == (reserved + COST, 2, 0)
        store.close()
    finally:
        if redis_server is not None:
            redis_server.stop()
