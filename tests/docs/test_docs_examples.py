"""The examples in docs/ run as printed: each is extracted and executed in a fresh subprocess."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _block(page: str, first_line: str) -> str:
    text = (REPO / "docs" / page).read_text()
    for block in re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL):
        if block.startswith(first_line):
            return str(block)
    raise AssertionError(f"no python block starting {first_line!r} in docs/{page}")


def _env(tmp_path: Path) -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPENDFUSE_", "OTEL_"))}
    env["PYTHONPATH"] = str(REPO)
    env["HOME"] = str(tmp_path)  # whatever the example does, it cannot touch the real ledger
    return env


def test_the_testing_page_pytest_example_passes(tmp_path: Path) -> None:
    (tmp_path / "test_agent_budget.py").write_text(_block("testing.md", "# test_agent_budget.py"))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly", "test_agent_budget.py"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=_env(tmp_path),
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout


def test_the_runs_page_example_runs(tmp_path: Path) -> None:
    (tmp_path / "runs_example.py").write_text(_block("runs.md", "# runs_example.py"))
    result = subprocess.run(
        [sys.executable, "runs_example.py"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=_env(tmp_path),
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines() == [
        "ticket-1 alice 1",
        "child rolled up: 2",
        "decorated: 1",
        "async: 1",
        "stopped: turns",
    ], result.stdout
