"""Shared helpers of the stack checks: where things are, finding tools, pulling queries out of configs.

Not a test module. conftest.py puts this folder on sys.path, so test modules `import stack_support`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
STACK_TESTS = Path(__file__).resolve().parent
DASHBOARDS = sorted((REPO / "grafana" / "dashboards").glob("*.json"))
RULE_FILES = sorted((REPO / "prometheus" / "rules").glob("*.rules.yml"))
RULE_TESTS = sorted((REPO / "prometheus" / "rules" / "tests").glob("*.test.yml"))
DATASOURCES_FILE = REPO / "grafana" / "provisioning" / "datasources" / "datasources.yaml"
COMPOSE_FILE = REPO / "docker-compose.yml"
COMPOSE_OVERRIDES = [REPO / "collector-config" / "tail-sampling.compose.yml"]
COLLECTOR_CONFIG = REPO / "collector-config" / "config.yaml"
COLLECTOR_OVERLAYS = [REPO / "collector-config" / "tail-sampling.yaml"]
PROMETHEUS_CONFIG = REPO / "prometheus" / "prometheus.yml"
ALERTMANAGER_CONFIG = REPO / "alertmanager" / "alertmanager.yml"
WEBHOOK_RECEIVER = REPO / "alertmanager" / "webhook_receiver.py"
TEMPO_CONFIG = REPO / "tempo" / "tempo.yaml"

STRICT_ENV = "SPENDFUSE_STACK_STRICT"

# Where a tool may live besides PATH: next to the running interpreter (venv console scripts), and
# docker-compose 1.29 (which needs PyYAML < 6) in the virtualenv tests/stack/install-tools.sh makes,
# or wherever SPENDFUSE_DOCKER_COMPOSE points.
TOOL_ENV_OVERRIDES = {"docker-compose": "SPENDFUSE_DOCKER_COMPOSE"}
TOOL_DIRS = [REPO / ".stack-tools" / "compose" / "bin"]


def strict() -> bool:
    """In strict mode (CI) a missing tool fails the check instead of skipping it."""
    return os.environ.get(STRICT_ENV, "") not in ("", "0", "false", "no")


def missing(what: str) -> None:
    """Skip (locally) or fail (strict mode) because `what` is not available."""
    if strict():
        pytest.fail(f"{what} is required in {STRICT_ENV} mode")
    pytest.skip(f"{what} is not available (set {STRICT_ENV}=1 to make this a failure)")


def find_tool(name: str) -> str | None:
    override = TOOL_ENV_OVERRIDES.get(name)
    if override and os.environ.get(override):
        return os.environ[override]
    found = shutil.which(name)
    if found:
        return found
    for directory in [Path(sys.executable).parent, *TOOL_DIRS]:
        if (directory / name).exists():
            return str(directory / name)
    return None


def require_tool(name: str) -> str:
    path = find_tool(name)
    if path is None:
        missing(f"the `{name}` command")
        raise AssertionError("unreachable")
    return path


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """``count`` distinct free ports: every probe stays bound until all are picked, because the
    kernel may hand a just-closed port out again (it did, to Prometheus and the webhook at once)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def load_yaml(path: Path) -> Any:
    with path.open() as f:
        return yaml.safe_load(f)


def load_json(path: Path) -> Any:
    with path.open() as f:
        return json.load(f)


# --- queries in dashboards, rules and datasources -------------------------------------------------

Kind = Literal["promql", "label_values", "traceql", "trace_id"]


@dataclass(frozen=True)
class Query:
    """One query found in a shipped file, with where it came from."""

    kind: Kind
    text: str
    where: str
    # A spend panel: must return data against real spendfuse metrics.
    spend: bool = False

    def __str__(self) -> str:
        return f"{self.where}: {self.text}"


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def dashboard_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return list(_panels(dashboard.get("panels", [])))


def _datasource_type(ref: Any) -> str | None:
    return ref.get("type") if isinstance(ref, dict) else None


def dashboard_queries(path: Path) -> list[Query]:
    dashboard = load_json(path)
    name = path.name
    found: list[Query] = []
    for var in dashboard.get("templating", {}).get("list", []):
        if var.get("type") != "query":
            continue
        query = var.get("query")
        text = query.get("query", "") if isinstance(query, dict) else str(query or var.get("definition", ""))
        found.append(Query("label_values", text, f"{name} variable ${var['name']}"))
    for panel in dashboard_panels(dashboard):
        for target in panel.get("targets", []):
            ds_type = _datasource_type(target.get("datasource")) or _datasource_type(panel.get("datasource"))
            where = f"{name} panel {panel.get('title')!r} {target.get('refId', '')}"
            if ds_type == "prometheus" and target.get("expr"):
                spend = "spendfuse_cost_USD_total" in target["expr"]
                found.append(Query("promql", target["expr"], where, spend=spend))
            elif ds_type == "tempo" and target.get("query"):
                kind: Kind = "trace_id" if panel.get("type") == "traces" else "traceql"
                found.append(Query(kind, target["query"], where))
    return found


def rule_queries(path: Path) -> list[Query]:
    found: list[Query] = []
    for group in load_yaml(path)["groups"]:
        for rule in group["rules"]:
            name = rule.get("alert") or rule.get("record")
            found.append(Query("promql", rule["expr"], f"{path.name} {name}"))
    return found


def datasource_queries(path: Path = DATASOURCES_FILE) -> list[Query]:
    """PromQL of the Tempo datasource's traces-to-metrics links (`$$` is Grafana's escaped `$`)."""
    found: list[Query] = []
    for ds in load_yaml(path)["datasources"]:
        t2m = ds.get("jsonData", {}).get("tracesToMetrics", {})
        for query in t2m.get("queries", []):
            text = query["query"].replace("$$", "$")
            found.append(Query("promql", text, f"{path.name} {ds['name']} tracesToMetrics {query['name']!r}"))
    return found


def all_queries() -> list[Query]:
    found: list[Query] = []
    for path in DASHBOARDS:
        found += dashboard_queries(path)
    for path in RULE_FILES:
        found += rule_queries(path)
    found += datasource_queries()
    return found


# --- Grafana variables ------------------------------------------------------------------------------

GRAFANA_BUILTINS = {
    "__range",
    "__range_s",
    "__range_ms",
    "__rate_interval",
    "__rate_interval_ms",
    "__interval",
    "__interval_ms",
    "__from",
    "__to",
    "__dashboard",
    "__org",
    "__user",
    "__timeFilter",
    "__name",
    "__value",
    "__data",
    "__field",
    "__series",
    "__cell",
    "__url_time_range",
    "__all_variables",
    "__tags",
    "__timezone",
    "__auto",
}
_VAR_RE = re.compile(r"\$\{(\w+)(?:[:.][^}]*)?\}|\$(\w+)|\[\[(\w+)(?::\w+)?\]\]")


def used_variables(text: str) -> set[str]:
    return {next(g for g in m.groups() if g) for m in _VAR_RE.finditer(text)}


# Values the checks put in for Grafana's variables: a query must be valid PromQL/TraceQL once
# Grafana has interpolated it, and must find data for the spend panels.
CHECK_VALUES = {
    "__range": "5m",
    "__rate_interval": "1m",
    "__interval": "15s",
    "__tags": 'gen_ai_provider_name=~".+"',
    "job": ".*",
    "model": ".*",
    "user": ".*",
    "run_id": "stack-run-1",
    "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
}


def interpolate(text: str, values: dict[str, str] | None = None) -> str:
    values = {**CHECK_VALUES, **(values or {})}

    def repl(m: re.Match[str]) -> str:
        name = next(g for g in m.groups() if g)
        if name not in values:
            raise KeyError(f"no check value for variable ${name} in {text!r}")
        return values[name]

    return _VAR_RE.sub(repl, text)


# --- PromQL -------------------------------------------------------------------------------------------

_LABEL_VALUES_RE = re.compile(r"^\s*label_values\(\s*(?:(?P<selector>.+),\s*)?(?P<label>\w+)\s*\)\s*$", re.S)


def label_values_parts(text: str) -> tuple[str | None, str]:
    """Split Grafana's `label_values(selector, label)` (selector optional)."""
    m = _LABEL_VALUES_RE.match(text)
    if not m:
        raise ValueError(f"not a label_values() query: {text!r}")
    return m.group("selector"), m.group("label")


_PROMQL_WORDS = {
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "offset",
    "bool",
    "atan2",
    "inf",
    "nan",
    "Inf",
    "NaN",
}
_STRING_RE = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')


def metric_names(promql: str) -> set[str]:
    """Metric names of the vector selectors in a PromQL expression.

    A small scanner, enough for the expressions this repository ships: the expressions are parsed by
    promtool and run by a real Prometheus elsewhere, this only finds which metrics they read.
    """
    s = _STRING_RE.sub('""', promql)
    s = re.sub(r"\{[^{}]*\}", "{}", s)  # label matchers
    s = re.sub(r"\[[^\]]*\]", " ", s)  # range selectors and subqueries
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", " ", s)
    s = re.sub(r"\boffset\s+-?\w+", " ", s)
    names: set[str] = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", s):
        word = m.group(0)
        before = s[m.start() - 1] if m.start() else " "
        if before.isdigit() or before == ".":
            continue  # exponent of a number literal (1e3)
        if s[m.end() :].lstrip().startswith("("):
            continue  # function or aggregation
        if word in _PROMQL_WORDS:
            continue
        names.add(word)
    return names


def query_metric_names(query: Query) -> set[str]:
    text = interpolate(query.text)
    if query.kind == "label_values":
        selector, _ = label_values_parts(text)
        return metric_names(selector) if selector else set()
    if query.kind == "promql":
        return metric_names(text)
    return set()


# Metrics a query may read that no spendfuse process emits: Prometheus' own.
PROMETHEUS_BUILTIN_METRICS = {"up", "ALERTS", "ALERTS_FOR_STATE"}


# --- processes ----------------------------------------------------------------------------------------


def wait_http(url: str, timeout: float, process: subprocess.Popen[bytes] | None = None) -> None:
    """Wait until `url` answers 200 (or fail, with the process's exit if it died)."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (OSError, urllib.error.URLError) as exc:
            last = exc
        time.sleep(0.1)
    raise TimeoutError(f"{url} not ready after {timeout}s: {last}")


@contextmanager
def running(
    args: list[str], log: Path, ready_url: str | None = None, timeout: float = 30
) -> Iterator[subprocess.Popen[bytes]]:
    """Run a server process for the duration of the block; its output goes to `log`."""
    with log.open("wb") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    try:
        if ready_url:
            try:
                wait_http(ready_url, timeout, process)
            except (RuntimeError, TimeoutError) as exc:
                raise AssertionError(f"{exc}\n--- {log.name} ---\n{log.read_text()[-3000:]}") from exc
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def http_json(url: str, data: Any = None, timeout: float = 10) -> Any:
    body = json.dumps(data).encode() if data is not None else None
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        raw = response.read()
    return json.loads(raw) if raw else None


def load_module_file(path: Path) -> Any:
    """Import one standalone module of the library by path (without importing the spendfuse package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"_stack_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class Traffic:
    """A running tests/stack/traffic.py: real spendfuse metrics on 127.0.0.1:port/metrics."""

    port: int
    process: subprocess.Popen[str]

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def scrape(self) -> str:
        with urllib.request.urlopen(f"http://{self.target}/metrics", timeout=10) as response:
            return str(response.read().decode())
