"""Lint of the Grafana dashboards and provisioning: uids, datasources, variables, and every query
parsed by a real parser (PromQL by promtool, TraceQL by Grafana's own TraceQL grammar)."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import stack_support as sup

pytestmark = pytest.mark.stack

FIXED_UIDS = {"spend-overview.json": "spendfuse-overview", "run-view.json": "spendfuse-run"}
TRACEQL_DIR = sup.STACK_TESTS / "traceql"


def dashboards() -> dict[str, dict[str, Any]]:
    return {path.name: sup.load_json(path) for path in sup.DASHBOARDS}


def provisioned() -> dict[str, str]:
    return {ds["uid"]: ds["type"] for ds in sup.load_yaml(sup.DATASOURCES_FILE)["datasources"]}


def walk(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    yield path, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from walk(value, f"{path}[{i}]")


def test_dashboards_have_fixed_unique_uids() -> None:
    found = {name: d["uid"] for name, d in dashboards().items()}
    assert found == FIXED_UIDS
    for name, d in dashboards().items():
        assert d["title"] and isinstance(d["schemaVersion"], int) and "spendfuse" in d["tags"], name
        assert "id" not in d or d["id"] is None, f"{name}: a provisioned dashboard must not carry a database id"


def test_panels_have_unique_ids_and_do_not_overlap() -> None:
    for name, d in dashboards().items():
        panels = sup.dashboard_panels(d)
        ids = [p["id"] for p in panels]
        assert len(ids) == len(set(ids)), f"{name}: duplicate panel ids"
        cells: dict[tuple[int, int], str] = {}
        for p in panels:
            g = p["gridPos"]
            assert g["x"] >= 0 and g["w"] > 0 and g["x"] + g["w"] <= 24, f"{name}: {p['title']!r} is off the grid"
            for x in range(g["x"], g["x"] + g["w"]):
                for y in range(g["y"], g["y"] + g["h"]):
                    assert (x, y) not in cells, f"{name}: {p['title']!r} overlaps {cells[(x, y)]!r}"
                    cells[(x, y)] = p["title"]


def test_every_datasource_is_provisioned() -> None:
    uids = provisioned()
    for name, d in dashboards().items():
        for where, node in walk(d):
            if where.endswith(".datasource") and node is not None:
                assert isinstance(node, dict), f"{name}{where}: refer to datasources by uid, not by name"
                if node.get("type") == "grafana":
                    continue  # the built-in annotations source
                assert node.get("uid") in uids, f"{name}{where}: datasource uid {node.get('uid')!r} is not provisioned"
                assert node.get("type") == uids[node["uid"]], f"{name}{where}: type does not match the datasource"


def test_every_variable_used_is_defined() -> None:
    for name, d in dashboards().items():
        defined = {v["name"] for v in d["templating"]["list"]}
        for where, node in walk(d):
            if isinstance(node, str) and ".current" not in where and ".options" not in where:
                unknown = sup.used_variables(node) - defined - sup.GRAFANA_BUILTINS - {"__all"}
                assert not unknown, f"{name}{where}: undefined variable(s) {sorted(unknown)} in {node!r}"


def test_promql_parses(tmp_path: Path) -> None:
    """Every PromQL expression (panels, variables, traces-to-metrics links) as promtool sees it."""
    groups = []
    queries = [q for q in sup.all_queries() if q.kind in ("promql", "label_values")]
    assert len(queries) > 20
    for i, query in enumerate(queries):
        text = sup.interpolate(query.text)
        if query.kind == "label_values":
            selector, _ = sup.label_values_parts(text)
            if selector is None:
                continue
            text = selector
        groups.append({"name": f"q{i} {query.where}", "rules": [{"record": f"check:q{i}", "expr": text}]})
    rules = tmp_path / "queries.rules.yml"
    rules.write_text(json.dumps({"groups": groups}))  # JSON is YAML
    result = subprocess.run(
        [sup.require_tool("promtool"), "check", "rules", str(rules)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def parse_traceql(queries: list[str]) -> list[int | None]:
    node = sup.find_tool("node")
    if node is None or not (TRACEQL_DIR / "node_modules" / "@grafana" / "lezer-traceql").exists():
        sup.missing(
            f"node with {TRACEQL_DIR.relative_to(sup.REPO)}/node_modules (npm ci --prefix "
            f"{TRACEQL_DIR.relative_to(sup.REPO)})"
        )
    result = subprocess.run(
        [str(node), "parse.mjs"], input=json.dumps(queries), capture_output=True, text=True, timeout=60, cwd=TRACEQL_DIR
    )
    assert result.returncode == 0, result.stderr
    return list(json.loads(result.stdout))


def test_traceql_parses() -> None:
    queries = [q for q in sup.all_queries() if q.kind == "traceql"]
    assert len(queries) >= 4
    texts = [sup.interpolate(q.text) for q in queries]
    errors = parse_traceql([*texts, "{ span.spendfuse.run.id = }"])
    assert errors[-1] is not None, "the TraceQL parser accepted a broken query"
    for query, text, error in zip(queries, texts, errors[:-1], strict=True):
        assert error is None, f"{query.where}: TraceQL syntax error at {error}: {text[error or 0 :]!r}"


def test_trace_panels_take_a_trace_id_variable() -> None:
    for query in sup.all_queries():
        if query.kind == "trace_id":
            assert query.text == "$trace_id", query
            assert re.fullmatch(r"[0-9a-f]{32}", sup.interpolate(query.text))


def names_module() -> Any:
    return sup.load_module_file(sup.REPO / "spendfuse" / "telemetry" / "names.py")


def test_traceql_uses_spendfuse_attribute_names() -> None:
    names = names_module()
    known = {v for k, v in vars(names).items() if k.isupper() and isinstance(v, str)}
    for query in sup.all_queries():
        if query.kind != "traceql":
            continue
        for attribute in re.findall(r"\b(?:span|resource)\.([A-Za-z_][\w.]*)", query.text):
            assert attribute in known, f"{query.where}: {attribute!r} is not in spendfuse/telemetry/names.py"
        for span_name in re.findall(r'\bname\s*=~?\s*"([a-z_]+)', query.text):
            assert span_name == names.OPERATION_INVOKE_AGENT, query.where


def test_traces_to_metrics_tags_are_spendfuse_attributes() -> None:
    names = names_module()
    known = {v for k, v in vars(names).items() if k.isupper() and isinstance(v, str)}
    tempo = next(ds for ds in sup.load_yaml(sup.DATASOURCES_FILE)["datasources"] if ds["uid"] == "tempo")
    for tag in tempo["jsonData"]["tracesToMetrics"]["tags"]:
        assert tag["key"] in known
        assert tag["value"] == re.sub(r"[^A-Za-z0-9]", "_", tag["key"])  # its Prometheus label


def test_run_view_matches_the_library_link() -> None:
    links = sup.load_module_file(sup.REPO / "spendfuse" / "telemetry" / "links.py")
    run_view = dashboards()["run-view.json"]
    assert run_view["uid"] == links.RUN_VIEW_UID
    variables = {v["name"]: v for v in run_view["templating"]["list"]}
    assert variables[links.RUN_ID_VARIABLE]["type"] == "textbox"
    assert variables[links.TRACE_ID_VARIABLE]["type"] == "textbox"
    url = links.run_view_url("r 1", "http://grafana:3000", trace_id="ab")
    assert url == (
        f"http://grafana:3000/d/{run_view['uid']}/{links.RUN_VIEW_SLUG}"
        f"?var-{links.RUN_ID_VARIABLE}=r%201&var-{links.TRACE_ID_VARIABLE}=ab"
    )
    run_queries = [
        q for q in sup.dashboard_queries(sup.REPO / "grafana" / "dashboards" / "run-view.json") if q.kind == "traceql"
    ]
    assert run_queries and all('span.spendfuse.run.id = "$run_id"' in q.text for q in run_queries)


def test_overview_links_runs_to_the_run_view() -> None:
    overview = dashboards()["spend-overview.json"]
    panels = {p["title"]: p for p in sup.dashboard_panels(overview)}
    recent = panels["Recent runs"]
    assert recent["datasource"]["uid"] == "tempo"
    link_urls = [
        link["url"]
        for o in recent["fieldConfig"]["overrides"]
        for prop in o["properties"]
        if prop["id"] == "links"
        for link in prop["value"]
    ]
    assert link_urls == ["/d/spendfuse-run/spendfuse-run?var-run_id=${__value.raw}&${__url_time_range}"]
    assert any(p["type"] == "alertlist" for p in panels.values())
    expected = {
        "Spend in range",
        "Spend rate (USD per hour)",
        "Spend by model (in range)",
        "Spend by user (in range, top 20)",
        "Tokens by type (in range)",
        "Model calls in range",
        "Call latency p95",
        "Error ratio in range",
        "Breaker trips by limit",
        "Recent runs",
        "Firing spendfuse alerts",
    }
    assert expected <= set(panels)
