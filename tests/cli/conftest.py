"""Session fixtures: the demo's ledger and a ledger with one run of every kind."""

from __future__ import annotations

import json

import pytest

from ._helpers import HERE, Demo, Kinds, clean_env, make_cli, run_python


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    ledger = tmp_path_factory.mktemp("demo") / "ledger.db"
    cli = make_cli(ledger)
    return Demo(ledger, cli("demo"), cli)


@pytest.fixture(scope="session")
def kinds(tmp_path_factory: pytest.TempPathFactory) -> Kinds:
    folder = tmp_path_factory.mktemp("kinds")
    ledger, store = folder / "ledger.db", f"sqlite:///{folder / 'budgets.db'}"
    result = run_python(str(HERE / "_make_runs.py"), str(ledger), store, env=clean_env())
    assert result.returncode == 0, result.stderr
    return Kinds(ledger, store, json.loads(result.stdout.strip().splitlines()[-1]), make_cli(ledger))
