"""`spendfuse runs --follow`: the backlog, then calls, trips and run ends as another process records them."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

from ._helpers import REPO, clean_env, run_python

AGENT = textwrap.dedent("""
    import sys
    import spendfuse
    from spendfuse.testing import FakeProvider, Reply

    spendfuse.instrument(ledger=sys.argv[1], prices={"claude-sonnet-4-6": {"input": 3.0, "output": 15.0}})
    prefix = sys.argv[2]
    fake = FakeProvider()
    fake.enqueue(Reply.text("one"), Reply.text("two"), Reply.text("three"))
    client = fake.anthropic_client()
    ask = dict(model="claude-sonnet-4-6", max_tokens=64, messages=[{"role": "user", "content": "x"}])
    with spendfuse.run(prefix + "-ok", user_id="fay"):
        client.messages.create(**ask)
    try:
        with spendfuse.run(prefix + "-stopped", user_id="gus", budget=spendfuse.Budget(turns=1)):
            client.messages.create(**ask)
            client.messages.create(**ask)
    except spendfuse.BudgetExceeded:
        pass
    spendfuse.flush()
""")


def _record(program: Path, ledger: Path, prefix: str) -> None:
    result = run_python(str(program), str(ledger), prefix, env=clean_env(None))
    assert result.returncode == 0, result.stderr


def test_follow_prints_backlog_then_live_calls_trips_and_run_ends(tmp_path: Path) -> None:
    program = tmp_path / "agent.py"
    program.write_text(AGENT)
    ledger = tmp_path / "ledger.db"
    _record(program, ledger, "before")
    tail = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "spendfuse",
            "runs",
            "--follow",
            "--interval",
            "0.2",
            "--max-seconds",
            "20",
            "--ledger",
            str(ledger),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(None),
        cwd=REPO,
    )
    try:
        assert tail.stdout is not None
        backlog = [tail.stdout.readline() for _ in range(5)]  # blocks until the tail printed them
        assert [line.split()[1:3] for line in backlog] == [
            ["call", "before-ok"],
            ["end", "before-ok"],
            ["call", "before-stopped"],
            ["TRIP", "before-stopped"],
            ["end", "before-stopped"],
        ], backlog
        started = time.monotonic()
        _record(program, ledger, "live")
        live = [tail.stdout.readline() for _ in range(5)]
        assert time.monotonic() - started < 15
    finally:
        tail.kill()
        tail.wait()
    assert [line.split()[1:3] for line in live] == [
        ["call", "live-ok"],
        ["end", "live-ok"],
        ["call", "live-stopped"],
        ["TRIP", "live-stopped"],
        ["end", "live-stopped"],
    ], live
    trip = live[3]
    assert "gus" in trip and "run turns: spent 1, in flight 0, this call up to 1, limit 1" in trip, trip
    assert "completed" in live[1] and "tripped" in live[4]
    assert "$0.000" in live[0] and "tokens" in live[0]


def test_follow_stops_after_max_seconds_and_filters_by_user(tmp_path: Path) -> None:
    program = tmp_path / "agent.py"
    program.write_text(AGENT)
    ledger = tmp_path / "ledger.db"
    _record(program, ledger, "only")
    result = run_python(
        "-m",
        "spendfuse",
        "runs",
        "--follow",
        "--user",
        "gus",
        "--interval",
        "0.1",
        "--max-seconds",
        "0.5",
        "--ledger",
        str(ledger),
        env=clean_env(None),
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split()[1] for line in lines] == ["call", "TRIP", "end"] and all("gus" in line for line in lines)


def test_follow_waits_for_a_ledger_that_does_not_exist_yet(tmp_path: Path) -> None:
    program = tmp_path / "agent.py"
    program.write_text(AGENT)
    ledger = tmp_path / "ledger.db"
    tail = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "spendfuse",
            "runs",
            "--follow",
            "--interval",
            "0.2",
            "--max-seconds",
            "30",
            "--ledger",
            str(ledger),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(None),
        cwd=REPO,
    )
    try:
        assert tail.stderr is not None and tail.stdout is not None
        assert "waiting for the ledger" in tail.stderr.readline()
        _record(program, ledger, "late")
        lines = [tail.stdout.readline() for _ in range(5)]
    finally:
        tail.kill()
        tail.wait()
    assert [line.split()[1:3] for line in lines] == [
        ["call", "late-ok"],
        ["end", "late-ok"],
        ["call", "late-stopped"],
        ["TRIP", "late-stopped"],
        ["end", "late-stopped"],
    ], lines
