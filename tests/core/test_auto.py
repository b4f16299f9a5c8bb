"""`import spendfuse.auto` in a short script: OTLP export configured from env, flushed at exit."""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from importlib.metadata import entry_points

import pytest

SCRIPT = textwrap.dedent(
    """
    import spendfuse.auto
    import spendfuse
    from spendfuse.testing import FakeProvider
    fake = FakeProvider()
    ask = [{"role": "user", "content": "hi"}]
    with spendfuse.run("short-script", user_id="alice", budget=spendfuse.Budget(turns=1)):
        client = fake.anthropic_client()
        client.messages.create(model="claude-sonnet-4-6", max_tokens=32, messages=ask)
        try:
            client.messages.create(model="claude-sonnet-4-6", max_tokens=32, messages=ask)
        except spendfuse.TurnLimitExceeded:
            pass
    """
)


@pytest.fixture
def collector() -> Iterator[tuple[str, dict[str, list[bytes]]]]:
    received: dict[str, list[bytes]] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            received.setdefault(self.path, []).append(body)
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *_args: object) -> None:
            return None

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", received
    server.shutdown()


def test_auto_exports_spans_and_metrics_of_a_short_script_at_exit(
    collector: tuple[str, dict[str, list[bytes]]], tmp_path: object
) -> None:
    endpoint, received = collector
    env = {
        **os.environ,
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_METRIC_EXPORT_INTERVAL": "600000",  # only the exit flush can deliver the metrics
        "SPENDFUSE_LEDGER": "off",
    }
    result = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    traces = b"".join(received.get("/v1/traces", []))
    metrics = b"".join(received.get("/v1/metrics", []))
    assert b"invoke_agent" in traces and b"chat claude-sonnet-4-6" in traces
    assert b"spendfuse.breaker.tripped" in traces
    assert b"short-script" in traces
    assert b"spendfuse.breaker.trips" in metrics and b"spendfuse.cost" in metrics


def test_auto_rejects_a_malformed_setting_at_start_up() -> None:
    env = {**os.environ, "SPENDFUSE_RUN_BUDGET": "usd=lots", "SPENDFUSE_LEDGER": "off"}
    result = subprocess.run(
        [sys.executable, "-c", "import spendfuse.auto"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "SPENDFUSE_RUN_BUDGET" in result.stderr and "ConfigError" in result.stderr


def test_opentelemetry_instrument_finds_the_entry_point(instrument: object, telemetry: object) -> None:
    (entry,) = [e for e in entry_points(group="opentelemetry_instrumentor") if e.name == "spendfuse"]
    instrumentor_class = entry.load()
    from spendfuse.instrumentation.instrumentor import SpendfuseInstrumentor

    assert instrumentor_class is SpendfuseInstrumentor
    instrumentor = instrumentor_class()
    instrumentor.instrument()
    assert instrumentor.is_instrumented_by_opentelemetry
    instrumentor.uninstrument()
    assert not instrumentor.is_instrumented_by_opentelemetry
