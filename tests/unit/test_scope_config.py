"""The ``budgets`` setting (#18): code, TOML and environment forms, and their errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from spendfuse.budgets.budget import Budget
from spendfuse.config.settings import load_settings
from spendfuse.errors import ConfigError


def test_toml_tables_per_scope(tmp_path: Path) -> None:
    path = tmp_path / "spendfuse.toml"
    path.write_text(
        """
metric_scopes = ["team"]
[budgets.team]
search = { usd = 50, window = "1d" }
"*" = { usd = 10, window = "1d" }
[budgets.org]
usd = 1000
window = "month"
[budgets.user]
default = "free"
tiers = { free = { usd = 0.1, window = "1d" } }
keys = { alice = { usd = 5, window = "1d" } }
"""
    )
    settings = load_settings(environ={"SPENDFUSE_CONFIG": str(path)})
    assert settings.budgets["team"]("search") == Budget(usd=50, window="1d")
    assert settings.budgets["team"]("other") == Budget(usd=10, window="1d")
    assert settings.budgets["org"]("anyone") == Budget(usd=1000, window="month")
    assert settings.user_budget is not None and "user" not in settings.budgets
    assert settings.user_budget("alice") == Budget(usd=5, window="1d")
    assert settings.user_budget("bob") == Budget(usd=0.1, window="1d")
    assert settings.metric_scopes == frozenset({"team"})


def test_environment_forms() -> None:
    settings = load_settings(
        environ={
            "SPENDFUSE_BUDGETS_TEAM": "search: usd=50,window=1d; *: usd=10,window=1d",
            "SPENDFUSE_BUDGETS_MODEL": "usd=200,window=1d",
            "SPENDFUSE_METRIC_SCOPES": "team, org",
        }
    )
    assert settings.budgets["team"]("search") == Budget(usd=50, window="1d")
    assert settings.budgets["team"]("x") == Budget(usd=10, window="1d")
    assert settings.budgets["model"]("gpt-4o") == Budget(usd=200, window="1d")
    assert settings.metric_scopes == frozenset({"team", "org"})
    # Code overrides the environment, scope table by scope table.
    code = load_settings({"budgets": {"org": Budget(turns=3)}}, environ={"SPENDFUSE_BUDGETS_TEAM": "usd=1"})
    assert set(code.budgets) == {"org"}


def test_user_budget_is_budgets_user() -> None:
    settings = load_settings({"budgets": {"user": Budget(usd=1, window="1d")}}, environ={})
    assert settings.user_budget is not None and settings.user_budget("x") == Budget(usd=1, window="1d")
    # Code's budgets["user"] replaces a user budget from the environment.
    settings = load_settings(
        {"budgets": {"user": Budget(usd=2, window="1d")}}, environ={"SPENDFUSE_USER_BUDGET": "usd=1"}
    )
    assert settings.user_budget is not None and settings.user_budget("x") == Budget(usd=2, window="1d")


@pytest.mark.parametrize(
    ("overrides", "environ", "match"),
    [
        ({"budgets": {"team": 5}}, {}, r"^budgets\.team: 5; accepted: a budget, a callable"),
        ({"budgets": {"team": {"search": 5}}}, {}, r"^budgets\.team\.search: 5; accepted: a budget"),
        ({"budgets": {"team": {"search": {"usd": -1}}}}, {}, r"^budgets\.team\.search"),
        ({"budgets": {"team": {"tiers": {}, "bogus": 1}}}, {}, r"unknown key\(s\) \['bogus'\]"),
        ({"budgets": {"team": {"users": {}, "keys": {}}}}, {}, r"both 'users' and 'keys'"),
        ({"budgets": {"team": {"keys": {"a": "gold"}}}}, {}, r"budgets\.team\.keys\.a: unknown tier 'gold'"),
        ({"budgets": {"run": Budget(usd=1)}}, {}, r"'run' is not a keyed scope"),
        ({"budgets": {"Team": Budget(usd=1)}}, {}, r"'Team' is not a scope name"),
        ({"budgets": [1]}, {}, r"^budgets: \[1\]; accepted: a table of scope name"),
        ({"budgets": {"user": Budget(usd=1)}, "user_budget": Budget(usd=2)}, {}, r"both given"),
        ({"metric_scopes": 3}, {}, r"^metric_scopes: 3; accepted: a list of scope names"),
        ({}, {"SPENDFUSE_BUDGETS_TEAM": "search: usd=abc"}, r"^SPENDFUSE_BUDGETS_TEAM\.search: usd='abc'"),
        ({}, {"SPENDFUSE_BUDGETS_TEAM": "search: usd=1; : usd=2"}, r"is not 'key: budget'; accepted: 'key: usd"),
        ({}, {"SPENDFUSE_BUDGETS_TEAM": "a: usd=1; a: usd=2"}, r"key 'a' is given twice"),
        ({}, {"SPENDFUSE_BUDGETS_TEAM-X": "usd=1"}, r"^SPENDFUSE_BUDGETS_TEAM-X: 'team-x' is not a scope name"),
        ({}, {"SPENDFUSE_BUDGETS_USER": "usd=1", "SPENDFUSE_USER_BUDGET": "usd=1"}, r"both set"),
        ({}, {"SPENDFUSE_BUDGETS": "team: usd=1"}, r"^SPENDFUSE_BUDGETS: set one variable per scope"),
    ],
)
def test_malformed_specs_name_the_key_and_the_form(
    overrides: dict[str, object], environ: dict[str, str], match: str
) -> None:
    with pytest.raises(ConfigError, match=match):
        load_settings(overrides, environ=environ)


def test_toml_user_budget_and_budgets_user_conflict(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('user_budget = "usd=1"\n[budgets.user]\nusd = 2\n')
    with pytest.raises(ConfigError, match=r"user_budget and \[budgets.user\] are both given"):
        load_settings(environ={"SPENDFUSE_CONFIG": str(path)})
