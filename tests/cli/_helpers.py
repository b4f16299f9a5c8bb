"""Helpers: run the ``spendfuse`` command and helper programs in subprocesses, on temporary ledgers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent


def clean_env(ledger: Path | None = None, **extra: str) -> dict[str, str]:
    """The test's environment without spendfuse/OpenTelemetry settings that could leak in."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("SPENDFUSE_", "OTEL_")) and key not in ("COLUMNS", "LINES")
    }
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    if ledger is not None:
        env["SPENDFUSE_LEDGER"] = str(ledger)
    env.update(extra)
    return env


def run_python(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


Cli = Callable[..., subprocess.CompletedProcess[str]]


def make_cli(ledger: Path | None) -> Cli:
    def cli(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return run_python("-m", "spendfuse", *args, env=clean_env(ledger, **extra))

    return cli


def parse_json(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@dataclass
class Demo:
    ledger: Path
    result: subprocess.CompletedProcess[str]
    cli: Cli


@dataclass
class Kinds:
    ledger: Path
    store: str
    run_ids: dict[str, str]
    cli: Cli
