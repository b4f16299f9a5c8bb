"""``spendfuse spend --by team`` and ``spendfuse budgets --scope team --key search`` (#18)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ._helpers import HERE, clean_env, make_cli, parse_json, run_python

CALL = 0.006  # 1000 input tokens at $3/MTok + 200 output at $15/MTok
TEAM_BUDGET = "search: usd=1,window=1d; *: usd=5,window=1d"


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    folder = tmp_path_factory.mktemp("scopes")
    ledger, store = folder / "ledger.db", f"sqlite:///{folder / 'budgets.db'}"
    result = run_python(str(HERE / "_scope_runs.py"), str(ledger), store, env=clean_env())
    assert result.returncode == 0, result.stderr
    return ledger, store


def test_spend_by_team_and_org(recorded: tuple[Path, str]) -> None:
    ledger, _ = recorded
    cli = make_cli(ledger)
    rows = {row["key"]: row for row in parse_json(cli("spend", "--by", "team", "--json"))}
    assert set(rows) == {"search", "ads", "-"}
    assert (rows["search"]["calls"], rows["ads"]["calls"], rows["-"]["calls"]) == (3, 2, 1)
    assert rows["search"]["cost_usd"] == pytest.approx(3 * CALL, abs=1e-12)
    assert rows["ads"]["cost_usd"] == pytest.approx(2 * CALL, abs=1e-12)
    orgs = {row["key"]: row["calls"] for row in parse_json(cli("spend", "--by", "org", "--json"))}
    assert orgs == {"acme": 5, "-": 1}
    table = cli("spend", "--by", "team")
    assert table.returncode == 0 and "Spend by team" in table.stdout and "search" in table.stdout
    bad = cli("spend", "--by", "Team;drop")
    assert bad.returncode != 0 and "a scope name" in bad.stderr


def test_budgets_scope_window(recorded: tuple[Path, str]) -> None:
    ledger, store = recorded
    cli = make_cli(ledger)
    data = parse_json(
        cli(
            "budgets",
            "--scope",
            "team",
            "--key",
            "search",
            "--store",
            store,
            "--json",
            SPENDFUSE_BUDGETS_TEAM=TEAM_BUDGET,
        )
    )
    assert (data["scope"], data["scope_key"], data["window"]) == ("team", "search", "1d")
    assert data["key"].startswith("team/1d/") and data["key"].endswith("/search")
    usd = data["limits"]["usd"]
    assert usd["limit"] == 1 and usd["spent"] == pytest.approx(3 * CALL, abs=1e-12) and usd["in_flight"] == 0
    assert usd["remaining"] == pytest.approx(1 - 3 * CALL, abs=1e-12)
    assert data["limits"]["turns"]["spent"] == 3 and data["window_end"] > data["window_start"]
    ads = parse_json(
        cli(
            "budgets", "--scope", "team", "--key", "ads", "--store", store, "--json", SPENDFUSE_BUDGETS_TEAM=TEAM_BUDGET
        )
    )
    assert ads["limits"]["usd"]["limit"] == 5 and ads["limits"]["turns"]["spent"] == 2
    table = cli("budgets", "--scope", "team", "--key", "search", "--store", store, SPENDFUSE_BUDGETS_TEAM=TEAM_BUDGET)
    assert table.returncode == 0 and "Team 'search'" in table.stdout and "Remaining" in table.stdout
    missing = cli("budgets", "--scope", "team", "--store", store)
    assert missing.returncode == 1 and "needs --key" in missing.stderr
    unconfigured = cli("budgets", "--scope", "org", "--key", "acme", "--store", store)
    assert unconfigured.returncode == 1 and "SPENDFUSE_BUDGETS_ORG" in unconfigured.stderr
