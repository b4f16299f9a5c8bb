"""Name contract: every metric (and label) the dashboards and alert rules read is emitted by a real
spendfuse process. The names come from scraping tests/stack/traffic.py, not from a list."""

from __future__ import annotations

import re
from typing import Any

import pytest
import stack_support as sup
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.stack

ALWAYS_THERE = {"job", "instance"}  # added by Prometheus (or the collector) to every series


@pytest.fixture(scope="module")
def emitted(traffic: sup.Traffic) -> dict[str, set[str]]:
    """Sample name -> label names, from the real process's /metrics."""
    samples: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(traffic.scrape()):
        for sample in family.samples:
            samples.setdefault(sample.name, set()).update(sample.labels)
    return samples


def samples_of(traffic: sup.Traffic, name: str) -> list[Any]:
    return [s for family in text_string_to_metric_families(traffic.scrape()) for s in family.samples if s.name == name]


def test_every_metric_read_is_emitted(emitted: dict[str, set[str]]) -> None:
    problems = []
    for query in sup.all_queries():
        for name in sorted(sup.query_metric_names(query) - sup.PROMETHEUS_BUILTIN_METRICS):
            if name not in emitted:
                problems.append(f"{name} (read by {query.where})")
    spendfuse_emitted = sorted(n for n in emitted if n.startswith(("spendfuse_", "gen_ai_")))
    assert not problems, "not emitted by spendfuse: " + "; ".join(problems) + f"\nemitted: {spendfuse_emitted}"


def label_names(promql: str) -> set[str]:
    promql = re.sub(r'"(?:\\.|[^"\\])*"', '""', promql)
    found = set(re.findall(r"[{,]\s*([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)", promql))
    for group in re.findall(r"\b(?:by|without|on|ignoring)\s*\(([^()]*)\)", promql):
        found |= {label.strip() for label in group.split(",") if label.strip()}
    return found


def test_every_label_read_is_emitted(emitted: dict[str, set[str]]) -> None:
    problems = []
    for query in sup.all_queries():
        if query.kind not in ("promql", "label_values"):
            continue
        metrics = sup.query_metric_names(query)
        if not metrics or metrics & sup.PROMETHEUS_BUILTIN_METRICS:
            continue
        text = sup.interpolate(query.text)
        used = label_names(text)
        if query.kind == "label_values":
            used.add(sup.label_values_parts(text)[1])
        available = set().union(*(emitted.get(m, set()) for m in metrics)) | ALWAYS_THERE
        for label in sorted(used - available):
            problems.append(f"{label} (read by {query.where})")
    assert not problems, "labels not on the emitted series: " + "; ".join(problems)


def test_names_py_prometheus_names_are_emitted(emitted: dict[str, set[str]]) -> None:
    names = sup.load_module_file(sup.REPO / "spendfuse" / "telemetry" / "names.py")
    for constant, value in vars(names).items():
        if constant.startswith("PROM_"):
            assert value in emitted or f"{value}_bucket" in emitted, f"names.{constant} = {value!r} is not emitted"


EXPECTED_LABELS = {
    # spendfuse_scope_team: the traffic marks the team scope low-cardinality (metric_scopes).
    "spendfuse_cost_USD_total": {"gen_ai_provider_name", "gen_ai_request_model", "user_id", "spendfuse_scope_team"},
    "spendfuse_breaker_trips_total": {
        "spendfuse_scope",
        "spendfuse_limit",
        "gen_ai_provider_name",
        "gen_ai_request_model",
    },
    "spendfuse_runs_total": {"spendfuse_outcome"},
    "spendfuse_store_errors_total": {"spendfuse_reason"},
    "spendfuse_budget_warnings_total": {"spendfuse_scope", "spendfuse_limit"},
    "spendfuse_budget_spent_USD": {"spendfuse_scope", "user_id", "spendfuse_scope_key"},
    "spendfuse_budget_limit_USD": {"spendfuse_scope", "user_id", "spendfuse_scope_key"},
    "gen_ai_client_token_usage_bucket": {
        "gen_ai_token_type",
        "gen_ai_provider_name",
        "gen_ai_request_model",
        "gen_ai_operation_name",
        "le",
    },
    "gen_ai_client_operation_duration_seconds_bucket": {
        "gen_ai_provider_name",
        "gen_ai_request_model",
        "gen_ai_operation_name",
        "le",
    },
    "gen_ai_client_operation_time_to_first_chunk_seconds_bucket": {
        "gen_ai_provider_name",
        "gen_ai_request_model",
        "le",
    },
}


@pytest.mark.parametrize("name", sorted(EXPECTED_LABELS))
def test_metric_carries_its_labels(emitted: dict[str, set[str]], name: str) -> None:
    assert name in emitted, f"{name} is not emitted"
    assert EXPECTED_LABELS[name] <= emitted[name], f"{name} lacks {sorted(EXPECTED_LABELS[name] - emitted[name])}"


def test_label_values_of_the_traffic(traffic: sup.Traffic) -> None:
    token_types = {s.labels["gen_ai_token_type"] for s in samples_of(traffic, "gen_ai_client_token_usage_count")}
    assert token_types == {"input", "output"}
    outcomes = {s.labels["spendfuse_outcome"] for s in samples_of(traffic, "spendfuse_runs_total")}
    assert {"completed", "tripped", "error"} <= outcomes
    errors = [
        s for s in samples_of(traffic, "gen_ai_client_operation_duration_seconds_count") if s.labels.get("error_type")
    ]
    assert errors, "the failing call has no error_type on gen_ai.client.operation.duration"
    trips = samples_of(traffic, "spendfuse_breaker_trips_total")
    assert any(s.labels["spendfuse_scope"] == "run" and s.labels["spendfuse_limit"] == "turns" for s in trips)
