"""promtool: the Prometheus config, the alert rules and their unit tests."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import stack_support as sup

pytestmark = pytest.mark.stack


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sup.require_tool("promtool"), *args], capture_output=True, text=True, timeout=60, cwd=cwd)


def test_prometheus_config_is_valid() -> None:
    result = promtool("check", "config", str(sup.PROMETHEUS_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    # rule_files resolve relative to the config: the shipped rules must be what it loads.
    for rules in sup.RULE_FILES:
        assert str(rules) in result.stdout + result.stderr or rules.name in result.stdout


def test_rules_are_valid() -> None:
    assert sup.RULE_FILES, "no prometheus/rules/*.rules.yml"
    result = promtool("check", "rules", *map(str, sup.RULE_FILES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_rule_unit_tests_pass() -> None:
    assert sup.RULE_TESTS, "no prometheus/rules/tests/*.test.yml"
    result = promtool("test", "rules", *map(str, sup.RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


EXPECTED_ALERTS = {
    "SpendfuseBreakerTripped",
    "SpendfuseTripStorm",
    "SpendfuseSpendRateHigh",
    "SpendfuseBudgetNearlyExhausted",
    "SpendfuseScopeBudgetNearlyExhausted",
    "SpendfuseGenAIErrorRatio",
    "SpendfuseCollectorDown",
}


def test_every_alert_is_unit_tested() -> None:
    alerts = {q.where.split()[-1] for path in sup.RULE_FILES for q in sup.rule_queries(path)}
    assert alerts == EXPECTED_ALERTS
    tested = {
        case.get("alertname")
        for path in sup.RULE_TESTS
        for test in sup.load_yaml(path)["tests"]
        for case in test.get("alert_rule_test", [])
    }
    assert alerts <= tested, f"alerts without a promtool test: {sorted(alerts - tested)}"
    for path in sup.RULE_FILES:
        for group in sup.load_yaml(path)["groups"]:
            for rule in group["rules"]:
                assert rule["labels"].get("severity") in ("page", "warning"), rule["alert"]
                assert {"summary", "description"} <= set(rule["annotations"]), rule["alert"]


def test_new_series_tests_fail_against_plain_increase(tmp_path: Path) -> None:
    """The breaker tests must catch the bug they exist for: swap the rule for plain increase()."""
    rules = (sup.REPO / "prometheus" / "rules" / "spendfuse.rules.yml").read_text()
    new_series_term = (
        "(last_over_time(spendfuse_breaker_trips_total[5m]) unless "
        "spendfuse_breaker_trips_total offset 5m)\n            or\n"
    )
    assert new_series_term in rules
    (tmp_path / "spendfuse.rules.yml").write_text(rules.replace(new_series_term, ""))
    (tmp_path / "tests").mkdir()
    shutil.copy(sup.REPO / "prometheus" / "rules" / "tests" / "breaker.test.yml", tmp_path / "tests")
    result = promtool("test", "rules", str(tmp_path / "tests" / "breaker.test.yml"))
    assert result.returncode != 0
    assert "brand-new series from a short-lived process" in result.stdout + result.stderr
