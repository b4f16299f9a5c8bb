"""amtool: the Alertmanager config, its routes, the Slack/PagerDuty examples; a real delivery."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import stack_support as sup

pytestmark = pytest.mark.stack

TRIPS = "spendfuse-trips"
DEFAULT = "spendfuse-default"
ROUTES = {
    "SpendfuseBreakerTripped": TRIPS,
    "SpendfuseTripStorm": TRIPS,
    "SpendfuseSpendRateHigh": DEFAULT,
    "SpendfuseBudgetNearlyExhausted": DEFAULT,
    "SpendfuseScopeBudgetNearlyExhausted": DEFAULT,
    "SpendfuseGenAIErrorRatio": DEFAULT,
    "SpendfuseCollectorDown": DEFAULT,
}


def amtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sup.require_tool("amtool"), *args], capture_output=True, text=True, timeout=60)


def check_config(path: Path) -> None:
    result = amtool("check-config", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_config_is_valid() -> None:
    check_config(sup.ALERTMANAGER_CONFIG)


@pytest.mark.parametrize(("alertname", "receiver"), sorted(ROUTES.items()))
def test_route(alertname: str, receiver: str) -> None:
    result = amtool(
        "config",
        "routes",
        "test",
        f"--config.file={sup.ALERTMANAGER_CONFIG}",
        f"--verify.receivers={receiver}",
        f"alertname={alertname}",
        "job=spendfuse-demo",
        "spendfuse_scope=run",
        "spendfuse_limit=usd",
        "severity=page",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.split() == [receiver]


def test_every_alert_rule_has_a_route_test() -> None:
    alerts = {q.where.split()[-1] for path in sup.RULE_FILES for q in sup.rule_queries(path)}
    assert alerts == set(ROUTES)


def uncomment_examples(text: str) -> str:
    """Turn the `# >>> name` ... `# <<< name` commented examples into live config."""
    lines, inside = [], False
    for line in text.splitlines():
        marker = re.match(r"^\s*# (>>>|<<<) \w+\s*$", line)
        if marker:
            inside = marker.group(1) == ">>>"
            continue
        if inside:
            m = re.match(r"^(\s*)# ?(.*)$", line)
            assert m, f"example line is not commented: {line!r}"
            line = m.group(1) + m.group(2)
        lines.append(line)
    return "\n".join(lines) + "\n"


def test_slack_and_pagerduty_examples_are_valid(tmp_path: Path) -> None:
    text = sup.ALERTMANAGER_CONFIG.read_text()
    assert "# >>> slack" in text and "# >>> pagerduty" in text
    live = tmp_path / "alertmanager.yml"
    live.write_text(uncomment_examples(text))
    check_config(live)
    receivers = {r["name"]: r for r in sup.load_yaml(live)["receivers"]}
    assert {"slack_configs", "pagerduty_configs", "webhook_configs"} <= set(receivers[TRIPS])


def test_webhooks_point_at_the_compose_receiver() -> None:
    compose = sup.load_yaml(sup.COMPOSE_FILE)
    port = compose["services"]["webhook"]["environment"]["WEBHOOK_PORT"]
    for receiver in sup.load_yaml(sup.ALERTMANAGER_CONFIG)["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            assert hook["url"].startswith(f"http://webhook:{port}/"), hook["url"]


def test_a_breaker_trip_reaches_the_webhook_receiver(tmp_path: Path) -> None:
    """Real Alertmanager (shipped config) + the shipped receiver script: a trip is delivered."""
    binary = sup.find_tool("prometheus-alertmanager") or sup.find_tool("alertmanager")
    if binary is None:
        sup.missing("the Alertmanager binary (Debian package prometheus-alertmanager)")
        return
    hook_port, am_port = sup.free_ports(2)
    config = tmp_path / "alertmanager.yml"
    config.write_text(
        sup.ALERTMANAGER_CONFIG.read_text().replace("http://webhook:8080/", f"http://127.0.0.1:{hook_port}/")
    )
    with (
        sup.running(
            [sys.executable, str(sup.WEBHOOK_RECEIVER), str(hook_port)],
            tmp_path / "webhook.log",
            ready_url=f"http://127.0.0.1:{hook_port}/",
        ),
        sup.running(
            [
                binary,
                f"--config.file={config}",
                f"--storage.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{am_port}",
                "--cluster.listen-address=",
            ],
            tmp_path / "alertmanager.log",
            ready_url=f"http://127.0.0.1:{am_port}/-/ready",
        ),
    ):
        now = datetime.now(timezone.utc)
        alert = {
            "labels": {
                "alertname": "SpendfuseBreakerTripped",
                "severity": "page",
                "job": "stack-test",
                "spendfuse_scope": "run",
                "spendfuse_limit": "usd",
            },
            "annotations": {"summary": "spendfuse breaker tripped: run usd limit"},
            "startsAt": now.isoformat(),
            "endsAt": (now + timedelta(minutes=5)).isoformat(),
        }
        sup.http_json(f"http://127.0.0.1:{am_port}/api/v2/alerts", [alert])
        deadline = time.monotonic() + 30  # the trips route waits 5s (group_wait) before sending
        received: list[dict[str, object]] = []
        while time.monotonic() < deadline and not received:
            received = sup.http_json(f"http://127.0.0.1:{hook_port}/")
            time.sleep(0.25)
        assert received, "Alertmanager delivered nothing to the webhook receiver"
        assert received[0]["path"] == "/alerts/trips"
        payload = received[0]["payload"]
        assert isinstance(payload, dict)
        assert payload["receiver"] == TRIPS
        assert payload["alerts"][0]["labels"]["alertname"] == "SpendfuseBreakerTripped"
    assert "SpendfuseBreakerTripped" in (tmp_path / "webhook.log").read_text()
