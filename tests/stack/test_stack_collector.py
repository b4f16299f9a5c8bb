"""Structural lint of the OpenTelemetry Collector config and its tail-sampling overlay.

No collector binary runs here, so this checks what the collector would reject at start-up or what
would silently drop data: undefined or unused components, pipeline order, and component types
that the pinned image does not contain.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import stack_support as sup

pytestmark = pytest.mark.stack

PINNED_IMAGE = "otel/opentelemetry-collector-contrib:0.136.0"
# Component types of otelcol-contrib 0.136.0 this repository may use (a subset of the release's
# manifest, distributions/otelcol-contrib/manifest.yaml in opentelemetry-collector-releases):
#   receivers   otlpreceiver
#   processors  memorylimiterprocessor, batchprocessor, tailsamplingprocessor, attributesprocessor,
#               resourceprocessor, filterprocessor, transformprocessor
#   exporters   otlpexporter, otlphttpexporter, debugexporter, prometheusexporter,
#               prometheusremotewriteexporter
#   connectors  spanmetricsconnector, servicegraphconnector, countconnector, forwardconnector
#   extensions  healthcheckextension, pprofextension, zpagesextension
# Not there any more: the `logging` exporter (removed in 0.111, use `debug`).
ALLOWED_TYPES: dict[str, set[str]] = {
    "receivers": {"otlp"},
    "processors": {"memory_limiter", "batch", "tail_sampling", "attributes", "resource", "filter", "transform"},
    "exporters": {"otlp", "otlphttp", "debug", "prometheus", "prometheusremotewrite"},
    "connectors": {"spanmetrics", "servicegraph", "count", "forward"},
    "extensions": {"health_check", "pprof", "zpages"},
}
SIGNALS = ("traces", "metrics", "logs")


def merge(base: Any, overlay: Any) -> Any:
    """The collector's merge of several --config files: maps merge key by key, lists are replaced."""
    if isinstance(base, dict) and isinstance(overlay, dict):
        merged = copy.deepcopy(base)
        for key, value in overlay.items():
            merged[key] = merge(base[key], value) if key in base else copy.deepcopy(value)
        return merged
    return copy.deepcopy(overlay)


def lint(config: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    defined = {kind: set((config.get(kind) or {}).keys()) for kind in ALLOWED_TYPES}
    for kind, names in defined.items():
        for name in names:
            ctype = name.split("/", 1)[0]
            if ctype not in ALLOWED_TYPES[kind]:
                problems.append(f"{kind}.{name}: type {ctype!r} is not in the allow-list for {PINNED_IMAGE}")
    service = config.get("service") or {}
    pipelines: dict[str, Any] = service.get("pipelines") or {}
    used: dict[str, set[str]] = {kind: set() for kind in ALLOWED_TYPES}
    connectors_as: dict[str, set[str]] = {"exporter": set(), "receiver": set()}
    for pipe_name, pipe in pipelines.items():
        if pipe_name.split("/", 1)[0] not in SIGNALS:
            problems.append(f"pipeline {pipe_name}: unknown signal")
        for role in ("receivers", "processors", "exporters"):
            for name in pipe.get(role) or []:
                if role != "processors" and name in defined["connectors"]:
                    used["connectors"].add(name)
                    connectors_as[role[:-1]].add(name)
                elif name in defined[role]:
                    used[role].add(name)
                else:
                    problems.append(f"pipeline {pipe_name}: {role[:-1]} {name!r} is not defined")
        if not pipe.get("receivers") or not pipe.get("exporters"):
            problems.append(f"pipeline {pipe_name}: needs receivers and exporters")
        processors = list(pipe.get("processors") or [])
        if not processors or processors[0].split("/")[0] != "memory_limiter":
            problems.append(f"pipeline {pipe_name}: memory_limiter must be the first processor")
        if not processors or processors[-1].split("/")[0] != "batch":
            problems.append(f"pipeline {pipe_name}: batch must be the last processor")
        if len(processors) != len(set(processors)):
            problems.append(f"pipeline {pipe_name}: a processor is listed twice")
    used["extensions"] = set(service.get("extensions") or [])
    for name in used["extensions"] - defined["extensions"]:
        problems.append(f"service.extensions: {name!r} is not defined")
    for kind in ALLOWED_TYPES:
        for name in sorted(defined[kind] - used[kind]):
            problems.append(f"{kind}.{name} is defined but not used")
    for name in connectors_as["exporter"] ^ connectors_as["receiver"]:
        problems.append(f"connector {name!r} must be an exporter of one pipeline and a receiver of another")
    return problems


def base_config() -> dict[str, Any]:
    config = sup.load_yaml(sup.COLLECTOR_CONFIG)
    assert isinstance(config, dict)
    return config


def test_compose_pins_the_image_the_allow_list_is_for() -> None:
    assert sup.load_yaml(sup.COMPOSE_FILE)["services"]["collector"]["image"] == PINNED_IMAGE


def test_base_config_lints_clean() -> None:
    assert lint(base_config()) == []


@pytest.mark.parametrize("overlay", sup.COLLECTOR_OVERLAYS, ids=lambda p: p.name)
def test_config_with_overlay_lints_clean(overlay: Path) -> None:
    assert lint(merge(base_config(), sup.load_yaml(overlay))) == []


def test_lint_catches_mistakes() -> None:
    broken = base_config()
    broken["exporters"]["logging"] = {}
    broken["service"]["pipelines"]["traces"]["processors"] = ["batch", "memory_limiter"]
    broken["service"]["pipelines"]["metrics"]["exporters"].append("otlp/nowhere")
    problems = "\n".join(lint(broken))
    assert "type 'logging' is not in the allow-list" in problems
    assert "exporters.logging is defined but not used" in problems
    assert "memory_limiter must be the first processor" in problems
    assert "'otlp/nowhere' is not defined" in problems


def test_both_signals_reach_their_backends() -> None:
    pipelines = base_config()["service"]["pipelines"]
    assert pipelines["traces"]["receivers"] == ["otlp"] and pipelines["metrics"]["receivers"] == ["otlp"]
    assert [e.split("/")[0] for e in pipelines["traces"]["exporters"]] == ["otlp"]
    assert pipelines["metrics"]["exporters"] == ["prometheus"]
    protocols = base_config()["receivers"]["otlp"]["protocols"]
    assert protocols["grpc"]["endpoint"] == "0.0.0.0:4317" and protocols["http"]["endpoint"] == "0.0.0.0:4318"


def test_tail_sampling_keeps_errors_and_trips() -> None:
    overlay = sup.load_yaml(sup.REPO / "collector-config" / "tail-sampling.yaml")
    policies = {p["type"]: p for p in overlay["processors"]["tail_sampling"]["policies"]}
    assert policies["status_code"]["status_code"]["status_codes"] == ["ERROR"]
    assert policies["boolean_attribute"]["boolean_attribute"] == {"key": "spendfuse.breaker.tripped", "value": True}
    assert 0 < policies["probabilistic"]["probabilistic"]["sampling_percentage"] < 100
    merged = merge(base_config(), overlay)
    assert merged["service"]["pipelines"]["traces"]["processors"] == ["memory_limiter", "tail_sampling", "batch"]
    assert merged["service"]["pipelines"]["metrics"] == base_config()["service"]["pipelines"]["metrics"]


def test_compose_override_loads_the_overlay() -> None:
    compose = sup.load_yaml(sup.COMPOSE_FILE)["services"]["collector"]
    override = sup.load_yaml(sup.REPO / "collector-config" / "tail-sampling.compose.yml")["services"]["collector"]
    mount_source, mount_target = compose["volumes"][0].split(":")[:2]
    assert mount_source == "./collector-config"
    for arg in [*compose["command"], *override["command"]]:
        path = arg.removeprefix("--config=")
        assert path.startswith(mount_target + "/"), arg
        assert (sup.REPO / "collector-config" / path[len(mount_target) + 1 :]).exists(), arg
    assert override["command"][-1].endswith("/tail-sampling.yaml")
