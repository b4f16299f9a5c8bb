"""A real Prometheus (Debian's binary) scrapes a real spendfuse process and evaluates the shipped
rules; every dashboard, rule and datasource expression runs through its HTTP API. The alert a
breaker trip raises goes through a real Alertmanager to the shipped webhook receiver."""

from __future__ import annotations

import json
import sys
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import stack_support as sup

pytestmark = pytest.mark.stack


@dataclass
class Stack:
    prometheus: str
    webhook: str

    def api(self, path: str, **params: str) -> Any:
        url = f"{self.prometheus}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        reply = sup.http_json(url)
        assert reply["status"] == "success", reply
        return reply["data"]

    def query(self, promql: str) -> list[Any]:
        return list(self.api("query", query=promql)["result"])

    def wait_for(self, promql: str, timeout: float = 20) -> list[Any]:
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(promql)
            if result or time.monotonic() > deadline:
                return result
            time.sleep(0.5)


@pytest.fixture(scope="module")
def stack(traffic: sup.Traffic, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    prometheus = sup.require_tool("prometheus")
    alertmanager = sup.find_tool("prometheus-alertmanager") or sup.find_tool("alertmanager")
    if alertmanager is None:
        sup.missing("the Alertmanager binary (Debian package prometheus-alertmanager)")
        return
    tmp = tmp_path_factory.mktemp("prometheus")
    prom_port, am_port, hook_port = sup.free_ports(3)
    am_config = tmp / "alertmanager.yml"
    am_config.write_text(
        sup.ALERTMANAGER_CONFIG.read_text().replace("http://webhook:8080/", f"http://127.0.0.1:{hook_port}/")
    )
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(path) for path in sup.RULE_FILES],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}]},
        "scrape_configs": [{"job_name": "spendfuse-traffic", "static_configs": [{"targets": [traffic.target]}]}],
    }
    (tmp / "prometheus.yml").write_text(json.dumps(config))
    with (
        sup.running(
            [sys.executable, str(sup.WEBHOOK_RECEIVER), str(hook_port)],
            tmp / "webhook.log",
            ready_url=f"http://127.0.0.1:{hook_port}/",
        ),
        sup.running(
            [
                alertmanager,
                f"--config.file={am_config}",
                f"--storage.path={tmp / 'am'}",
                f"--web.listen-address=127.0.0.1:{am_port}",
                "--cluster.listen-address=",
            ],
            tmp / "alertmanager.log",
            ready_url=f"http://127.0.0.1:{am_port}/-/ready",
        ),
        sup.running(
            [
                prometheus,
                f"--config.file={tmp / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
                "--enable-feature=exemplar-storage",
            ],
            tmp / "prometheus.log",
            ready_url=f"http://127.0.0.1:{prom_port}/-/ready",
        ),
    ):
        stack = Stack(f"http://127.0.0.1:{prom_port}", f"http://127.0.0.1:{hook_port}")
        assert stack.wait_for('up{job="spendfuse-traffic"} == 1'), "Prometheus never scraped the traffic process"
        assert stack.wait_for("spendfuse_cost_USD_total"), "no spendfuse metrics after the first scrape"
        time.sleep(2)  # a few more scrapes and rule evaluations
        yield stack


def promql_of(query: sup.Query) -> str:
    return sup.interpolate(query.text)


QUERIES = [q for q in sup.all_queries() if q.kind == "promql"]
VARIABLES = [q for q in sup.all_queries() if q.kind == "label_values"]


@pytest.mark.parametrize("query", QUERIES, ids=lambda q: q.where)
def test_query_runs(stack: Stack, query: sup.Query) -> None:
    stack.query(promql_of(query))  # status success, no error


@pytest.mark.parametrize("query", QUERIES, ids=lambda q: q.where)
def test_query_runs_as_a_range_query(stack: Stack, query: sup.Query) -> None:
    end = time.time()
    stack.api("query_range", query=promql_of(query), start=str(end - 20), end=str(end), step="1")


@pytest.mark.parametrize(
    "query", [q for q in QUERIES if ".json" in q.where or "tracesToMetrics" in q.where], ids=lambda q: q.where
)
def test_panel_has_data(stack: Stack, query: sup.Query) -> None:
    """Every dashboard panel (the spend panels above all) shows data for real spendfuse traffic."""
    assert stack.wait_for(promql_of(query), timeout=15), f"no data: {promql_of(query)}"


def test_spend_panels_are_checked() -> None:
    spend = [q for q in QUERIES if q.spend]
    assert len(spend) >= 4


@pytest.mark.parametrize("query", VARIABLES, ids=lambda q: q.where)
def test_variable_has_values(stack: Stack, query: sup.Query) -> None:
    selector, label = sup.label_values_parts(promql_of(query))
    params = {"match[]": selector} if selector else {}
    assert stack.api(f"label/{label}/values", **params), f"{query.where}: no values"


def test_spend_adds_up(stack: Stack) -> None:
    total = float(stack.query("sum(spendfuse_cost_USD_total)")[0]["value"][1])
    overview = next(q for q in QUERIES if "'Spend in range'" in q.where)
    in_range = float(stack.query(promql_of(overview))[0]["value"][1])
    assert total > 0
    assert in_range == pytest.approx(total, rel=1e-6)  # every series is new: nothing is lost


def test_breaker_trip_alert_fires_for_the_new_series(stack: Stack) -> None:
    firing = stack.wait_for('ALERTS{alertname="SpendfuseBreakerTripped", alertstate="firing"}')
    assert firing, "SpendfuseBreakerTripped did not fire for the trip of the traffic process"
    labels = firing[0]["metric"]
    assert labels["spendfuse_scope"] == "run" and labels["spendfuse_limit"] == "turns"


def test_breaker_trip_reaches_the_webhook(stack: Stack) -> None:
    deadline = time.monotonic() + 30
    received: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        received = [r for r in sup.http_json(stack.webhook + "/") if r["path"] == "/alerts/trips"]
        if received:
            break
        time.sleep(0.5)
    assert received, "no notification reached the webhook receiver"
    alert = received[0]["payload"]["alerts"][0]
    assert alert["labels"]["alertname"] == "SpendfuseBreakerTripped"
    assert alert["status"] == "firing"


def test_token_panels_count_spendfuse_measurements_only(stack: Stack) -> None:
    """The traffic's "other instrumentation" records 1,000,000 input tokens under its own meter."""
    panel = next(q for q in sup.all_queries() if "Tokens by type" in q.where)
    promql = promql_of(panel)
    assert 'otel_scope_name="spendfuse"' in promql
    shown = {r["metric"]["gen_ai_token_type"]: float(r["value"][1]) for r in stack.query(promql)}
    ours = stack.query('sum by (gen_ai_token_type) (gen_ai_client_token_usage_sum{otel_scope_name="spendfuse"})')
    everything = stack.query("sum by (gen_ai_token_type) (gen_ai_client_token_usage_sum)")
    ours_input = next(float(r["value"][1]) for r in ours if r["metric"]["gen_ai_token_type"] == "input")
    all_input = next(float(r["value"][1]) for r in everything if r["metric"]["gen_ai_token_type"] == "input")
    assert all_input - ours_input == 1_000_000  # the foreign series is really there
    assert shown["input"] == ours_input < 1_000_000


def test_spend_by_scope_panel_shows_the_team(stack: Stack) -> None:
    panel = next(q for q in sup.all_queries() if "Spend by scope" in q.where)
    rows = stack.query(promql_of(panel))
    assert {(r["metric"]["spendfuse_scope"], r["metric"]["spendfuse_scope_key"]) for r in rows} == {("team", "search")}
    assert all(0 < float(r["value"][1]) < 5 for r in rows)
