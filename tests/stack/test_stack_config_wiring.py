"""The configs agree with each other: ports, hostnames, paths and job names across the stack."""

from __future__ import annotations

from typing import Any

import pytest
import stack_support as sup

pytestmark = pytest.mark.stack


def services() -> dict[str, Any]:
    return dict(sup.load_yaml(sup.COMPOSE_FILE)["services"])


def collector() -> dict[str, Any]:
    return dict(sup.load_yaml(sup.COLLECTOR_CONFIG))


def tempo() -> dict[str, Any]:
    return dict(sup.load_yaml(sup.TEMPO_CONFIG))


def prometheus() -> dict[str, Any]:
    return dict(sup.load_yaml(sup.PROMETHEUS_CONFIG))


def datasources() -> dict[str, dict[str, Any]]:
    return {ds["uid"]: ds for ds in sup.load_yaml(sup.DATASOURCES_FILE)["datasources"]}


def port_of(endpoint: str) -> int:
    return int(endpoint.rsplit(":", 1)[1].rstrip("/"))


def mount_target(service: str, source: str) -> str:
    for volume in services()[service].get("volumes", []):
        parts = volume.split(":")
        if parts[0] == source:
            return str(parts[1])
    raise AssertionError(f"{service} does not mount {source}")


def test_collector_receives_on_the_published_ports() -> None:
    protocols = collector()["receivers"]["otlp"]["protocols"]
    published = {p.split(":")[-1] for p in services()["collector"]["ports"]}
    assert {str(port_of(protocols["grpc"]["endpoint"])), str(port_of(protocols["http"]["endpoint"]))} <= published
    endpoint = services()["demo"]["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"]
    assert endpoint == f"http://collector:{port_of(protocols['grpc']['endpoint'])}"


def test_collector_sends_traces_to_tempo() -> None:
    endpoint = collector()["exporters"]["otlp/tempo"]["endpoint"]
    host, port = endpoint.split(":")
    assert host == "tempo" and "tempo" in services()
    assert port_of(tempo()["distributor"]["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]) == int(port)


def test_prometheus_scrapes_both_collector_endpoints_as_otel_collector() -> None:
    jobs = {job["job_name"]: job for job in prometheus()["scrape_configs"]}
    job = jobs["otel-collector"]  # the job SpendfuseCollectorDown watches
    assert job.get("honor_labels") is True  # keep each process's job/instance from the exporter
    targets = {t for sc in job["static_configs"] for t in sc["targets"]}
    exporter_port = port_of(collector()["exporters"]["prometheus"]["endpoint"])
    telemetry = collector()["service"]["telemetry"]["metrics"]["readers"][0]["pull"]["exporter"]["prometheus"]
    assert telemetry["host"] == "0.0.0.0"
    assert targets == {f"collector:{exporter_port}", f"collector:{telemetry['port']}"}
    rules = (sup.REPO / "prometheus" / "rules" / "spendfuse.rules.yml").read_text()
    assert 'up{job="otel-collector"} == 0' in rules


def test_prometheus_sends_alerts_to_alertmanager() -> None:
    targets = [
        t for am in prometheus()["alerting"]["alertmanagers"] for sc in am["static_configs"] for t in sc["targets"]
    ]
    assert targets == ["alertmanager:9093"] and "alertmanager" in services()


def test_prometheus_container_loads_the_shipped_config_and_rules() -> None:
    command = services()["prometheus"]["command"]
    target = mount_target("prometheus", "./prometheus")
    assert f"--config.file={target}/prometheus.yml" in command
    assert "--enable-feature=exemplar-storage" in command  # the datasource links exemplars to Tempo
    assert prometheus()["rule_files"] == ["rules/*.rules.yml"]  # relative to the config file


def test_alertmanager_container_loads_the_shipped_config() -> None:
    command = services()["alertmanager"]["command"]
    target = mount_target("alertmanager", "./alertmanager/alertmanager.yml")
    assert f"--config.file={target}" in command


def test_grafana_datasources_point_at_the_services() -> None:
    ds = datasources()
    assert set(ds) == {"prometheus", "tempo", "alertmanager"}
    assert ds["prometheus"]["url"] == "http://prometheus:9090"
    assert ds["tempo"]["url"] == f"http://tempo:{tempo()['server']['http_listen_port']}"
    assert ds["alertmanager"]["url"] == "http://alertmanager:9093"
    assert ds["prometheus"]["jsonData"]["exemplarTraceIdDestinations"][0]["datasourceUid"] == "tempo"
    assert ds["prometheus"]["jsonData"]["alertmanagerUid"] == "alertmanager"
    assert ds["tempo"]["jsonData"]["tracesToMetrics"]["datasourceUid"] == "prometheus"
    scrape = prometheus()["global"]["scrape_interval"]
    assert ds["prometheus"]["jsonData"]["timeInterval"] == scrape  # $__rate_interval is derived from it


def test_grafana_loads_the_shipped_dashboards() -> None:
    provider = sup.load_yaml(sup.REPO / "grafana" / "provisioning" / "dashboards" / "dashboards.yaml")["providers"][0]
    target = mount_target("grafana", "./grafana/dashboards")
    assert provider["options"]["path"] == target
    assert mount_target("grafana", "./grafana/provisioning") == "/etc/grafana/provisioning"
    home = services()["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home.startswith(target + "/") and (sup.REPO / "grafana" / "dashboards" / home[len(target) + 1 :]).exists()


def test_tempo_is_tuned_for_a_live_run_view() -> None:
    config = tempo()
    assert config["storage"]["trace"]["backend"] == "local"
    tmpfs = services()["tempo"]["tmpfs"]
    for path in (config["storage"]["trace"]["local"]["path"], config["storage"]["trace"]["wal"]["path"]):
        assert any(path.startswith(mount + "/") for mount in tmpfs), path
    ingester = config["ingester"]
    assert ingester["trace_idle_period"] in ("5s", "10s")
    assert ingester["max_block_duration"] in ("1m", "2m", "5m")
    assert config["stream_over_http_enabled"] is True
    assert port_of(config["distributor"]["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]) == 4317
    assert config["usage_report"]["reporting_enabled"] is False
