"""Fixtures of the stack checks (tests/stack)."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import stack_support


@pytest.fixture(scope="session")
def traffic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[stack_support.Traffic]:
    """Start traffic.py once per session and wait until its traffic has run."""
    port = stack_support.free_port()
    log = tmp_path_factory.mktemp("traffic") / "stderr.log"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(stack_support.REPO), os.environ.get("PYTHONPATH", "")])}
    for name in [k for k in env if k.startswith(("SPENDFUSE_", "OTEL_"))]:
        del env[name]  # the traffic script configures everything itself
    env["SPENDFUSE_LEDGER"] = "off"  # instrument() records to the ledger by default: not the user's, here
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, str(stack_support.STACK_TESTS / "traffic.py"), "--port", str(port)],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env=env,
            cwd=stack_support.REPO,
        )
    try:
        deadline = time.monotonic() + 90
        assert process.stdout is not None
        line = ""
        while time.monotonic() < deadline:
            ready, _, _ = select.select([process.stdout], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                break
            line = process.stdout.readline()
            if line.strip() == "READY" or (not line and process.poll() is not None):
                break
        if line.strip() != "READY":
            process.kill()
            process.wait()
            pytest.fail(f"traffic.py did not get ready (exit {process.returncode}):\n{log.read_text()[-4000:]}")
        yield stack_support.Traffic(port, process)
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
