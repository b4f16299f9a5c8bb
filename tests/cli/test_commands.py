"""`spendfuse spend` and `spendfuse budgets` on a ledger and budget store real runs wrote."""

from __future__ import annotations

import pytest

from ._helpers import Kinds, parse_json

USER_BUDGET = "usd=0.01,window=1d"  # the budget _make_runs.py gave carol


@pytest.mark.parametrize("by", ["user", "model", "day"])
def test_spend_json(kinds: Kinds, by: str) -> None:
    rows = parse_json(kinds.cli("spend", "--by", by, "--json"))
    assert rows
    total = sum(row["cost_known_usd"] for row in rows)
    assert total > 0
    unpriced = [row for row in rows if row["unknown_cost_calls"]]
    # The unpriced model's calls are in exactly one group, whose cost is unknown (null), not 0.
    assert len(unpriced) == 1 and unpriced[0]["cost_usd"] is None and unpriced[0]["unknown_cost_calls"] == 2
    assert "in-house-model-7" in unpriced[0]["unknown_cost_reason"]
    assert all(row["cost_usd"] == row["cost_known_usd"] for row in rows if not row["unknown_cost_calls"])
    assert sum(row["calls"] for row in rows) > 10
    keys = {row["key"] for row in rows}
    if by == "user":
        assert {"alice", "carol", "dave", "-"} <= keys
        assert unpriced[0]["key"] == "dave"
    elif by == "model":
        assert keys == {"claude-sonnet-4-6", "in-house-model-7"}
    else:
        assert len(keys) == 1 and next(iter(keys)).count("-") == 2


def test_spend_table(kinds: Kinds) -> None:
    result = kinds.cli("spend", "--by", "user", "--since", "1d")
    assert result.returncode == 0, result.stderr
    assert "Spend by user" in result.stdout and "carol" in result.stdout and "total" in result.stdout


def test_budgets_show_and_reset_a_user_window(kinds: Kinds) -> None:
    show = ("budgets", "--user", "carol", "--store", kinds.store, "--json")
    before = parse_json(kinds.cli(*show, SPENDFUSE_USER_BUDGET=USER_BUDGET))
    usd = before["limits"]["usd"]
    assert before["window"] == "1d" and before["key"].startswith("user/1d/")
    assert usd["limit"] == 0.01
    assert 0 < usd["spent"] <= 0.01
    assert usd["in_flight"] == 0
    assert usd["remaining"] == pytest.approx(0.01 - usd["spent"])

    table = kinds.cli("budgets", "--user", "carol", "--store", kinds.store, SPENDFUSE_USER_BUDGET=USER_BUDGET)
    assert table.returncode == 0, table.stderr
    assert "Remaining" in table.stdout and "$0.01" in table.stdout

    refused = kinds.cli(
        "budgets", "--reset", "--user", "carol", "--store", kinds.store, SPENDFUSE_USER_BUDGET=USER_BUDGET
    )
    assert refused.returncode == 1 and "--yes" in refused.stderr

    reset = kinds.cli(
        "budgets", "--reset", "--user", "carol", "--yes", "--store", kinds.store, SPENDFUSE_USER_BUDGET=USER_BUDGET
    )
    assert reset.returncode == 0, reset.stderr
    assert "reset budget window user/1d/" in reset.stderr  # the admin action is logged
    after = parse_json(kinds.cli(*show, SPENDFUSE_USER_BUDGET=USER_BUDGET))
    assert after["limits"]["usd"]["spent"] == 0
    assert after["limits"]["usd"]["remaining"] == 0.01


def test_budgets_without_a_user_budget_needs_a_window(kinds: Kinds) -> None:
    result = kinds.cli("budgets", "--user", "carol", "--store", kinds.store)
    assert result.returncode == 1 and "--window" in result.stderr
    data = parse_json(kinds.cli("budgets", "--user", "nobody", "--store", kinds.store, "--window", "1h", "--json"))
    assert data["limits"]["usd"] == {"limit": None, "spent": 0, "in_flight": 0, "remaining": None}


def test_budgets_refuses_the_memory_store(kinds: Kinds) -> None:
    result = kinds.cli("budgets", "--user", "carol", SPENDFUSE_USER_BUDGET=USER_BUDGET)
    assert result.returncode == 1 and "memory://" in result.stderr


def test_budgets_for_a_run(kinds: Kinds) -> None:
    data = parse_json(kinds.cli("budgets", "--run", kinds.run_ids["usd"], "--json"))
    assert data["budget_usd"] == 0.012
    assert data["trip"]["limit"] == "usd"
    assert data["spent_usd"] > 0
    text = kinds.cli("budgets", "--run", kinds.run_ids["usd"])
    assert text.returncode == 0 and "USD budget" in text.stdout and "$0.012" in text.stdout
