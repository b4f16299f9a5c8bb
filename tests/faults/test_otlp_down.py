"""The OTLP endpoint is down (connection refused) or black-holing (accepts, never answers).

With a real SDK ``TracerProvider`` + ``BatchSpanProcessor(OTLPSpanExporter)`` and a ``MeterProvider``
with a ``PeriodicExportingMetricReader(OTLPMetricExporter)`` pointed there, calls still succeed with
exact settlement, their latency is that of an exporter-less setup (exports happen on the SDK's
threads), and memory stays bounded (the batch queue is bounded and drops what does not fit).
"""

from __future__ import annotations

import gc
import os
import socket
import statistics
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

import spendfuse
from spendfuse.testing import FakeProvider, FakeUsage

from ._calls import SONNET

MESSAGES = [{"role": "user", "content": "hi"}]
COST = 100 * 3 + 20 * 15  # micro-dollars: 100 input + 20 output tokens at $3/$15 per MTok
EXPORT_TIMEOUT = 0.2


class BlackHole:
    """A loopback listener that accepts every connection and never sends a byte."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = int(self.sock.getsockname()[1])
        self.accepted: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.accepted:
            conn.close()


def unused_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Pipeline:
    tracer_provider: TracerProvider
    meter_provider: MeterProvider

    def shutdown(self) -> None:
        # A dead endpoint makes the final flush wait for its timeout; never let that hold the suite.
        def stop() -> None:
            self.tracer_provider.shutdown()
            self.meter_provider.shutdown(timeout_millis=200)

        thread = threading.Thread(target=stop, daemon=True)
        thread.start()
        thread.join(timeout=2)


def otlp_pipeline(protocol: str, port: int) -> Pipeline:
    if protocol == "http":
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        base = f"http://127.0.0.1:{port}"
        spans: Any = OTLPSpanExporter(endpoint=f"{base}/v1/traces", timeout=EXPORT_TIMEOUT)
        metrics: Any = OTLPMetricExporter(endpoint=f"{base}/v1/metrics", timeout=EXPORT_TIMEOUT)
    else:
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcMetrics
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpans

        spans = GrpcSpans(endpoint=f"127.0.0.1:{port}", insecure=True, timeout=EXPORT_TIMEOUT)
        metrics = GrpcMetrics(endpoint=f"127.0.0.1:{port}", insecure=True, timeout=EXPORT_TIMEOUT)
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(
        BatchSpanProcessor(spans, max_queue_size=256, max_export_batch_size=64, schedule_delay_millis=20)
    )
    reader = PeriodicExportingMetricReader(metrics, export_interval_millis=50, export_timeout_millis=200)
    return Pipeline(tracer_provider, MeterProvider(metric_readers=[reader]))


@pytest.fixture
def black_hole() -> Iterator[BlackHole]:
    hole = BlackHole()
    yield hole
    hole.close()


@pytest.fixture
def pipelines() -> Iterator[list[Pipeline]]:
    made: list[Pipeline] = []
    yield made
    spendfuse.uninstrument()
    for pipeline in made:
        pipeline.shutdown()


def call_durations(fake: FakeProvider, client: Any, count: int) -> list[float]:
    durations = []
    with spendfuse.run(budget=spendfuse.Budget(usd=100)) as run:
        for _ in range(count):
            started = time.perf_counter()
            client.messages.create(model=SONNET, max_tokens=64, messages=MESSAGES)
            durations.append(time.perf_counter() - started)
    assert run.spent.usd_micros == count * COST and run.spent.turns == count
    assert run.balance.flight_turns == 0
    fake.reset()  # the fake keeps every request it saw; memory is measured on our side only
    return durations


def median_call(fake: FakeProvider, client: Any) -> float:
    call_durations(fake, client, 20)  # warm up: imports, pools, price cache
    return statistics.median(call_durations(fake, client, 50))


@pytest.mark.parametrize("protocol", ["http", "grpc"])
@pytest.mark.parametrize("endpoint", ["refused", "black-hole"])
def test_dead_collector_neither_fails_nor_slows_calls(
    protocol: str, endpoint: str, black_hole: BlackHole, pipelines: list[Pipeline]
) -> None:
    fake = FakeProvider(usage=FakeUsage(100, 20))
    client = fake.anthropic_client()

    spendfuse.instrument(tracer_provider=TracerProvider(), meter_provider=MeterProvider(), warn_at=None)
    baseline = median_call(fake, client)

    port = black_hole.port if endpoint == "black-hole" else unused_port()
    pipeline = otlp_pipeline(protocol, port)
    pipelines.append(pipeline)
    spendfuse.instrument(tracer_provider=pipeline.tracer_provider, meter_provider=pipeline.meter_provider,
                         warn_at=None)  # fmt: skip
    dead = median_call(fake, client)  # also asserts every call succeeded and settled exactly

    assert dead < 2 * baseline + 0.002, (dead, baseline)
    if endpoint == "black-hole":
        deadline = time.monotonic() + 5
        while not black_hole.accepted and time.monotonic() < deadline:
            time.sleep(0.01)
        assert black_hole.accepted, "the exporters never tried the endpoint: the test proves nothing"


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="reads RSS from /proc")
@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_memory_stays_bounded_while_the_collector_black_holes(
    protocol: str, black_hole: BlackHole, pipelines: list[Pipeline]
) -> None:
    pipeline = otlp_pipeline(protocol, black_hole.port)
    pipelines.append(pipeline)
    spendfuse.instrument(tracer_provider=pipeline.tracer_provider, meter_provider=pipeline.meter_provider,
                         warn_at=None)  # fmt: skip
    fake = FakeProvider(usage=FakeUsage(100, 20))
    client = fake.anthropic_client()
    call_durations(fake, client, 400)  # the 256-span queue is full after these
    gc.collect()
    before = rss_bytes()
    for _ in range(12):
        call_durations(fake, client, 200)
    gc.collect()
    growth = rss_bytes() - before
    # Measured on this setup: ~0.6 MB with the bounded queue over 1600 calls, ~4.2 MB when the queue
    # is made unbounded (every unexportable span kept), i.e. ~6 MB over these 2400 calls.
    assert growth < 3 * 1024 * 1024, f"RSS grew by {growth / 1e6:.1f} MB over 2400 calls"


EXIT_SCRIPT = textwrap.dedent(
    """
    import time
    import spendfuse.auto
    import spendfuse
    from spendfuse.testing import FakeProvider
    fake = FakeProvider()
    with spendfuse.run("exit", budget=spendfuse.Budget(usd=1)):
        client = fake.anthropic_client()
        client.messages.create(model="claude-sonnet-4-5", max_tokens=32, messages=[{"role": "user", "content": "hi"}])
    print(time.time(), flush=True)
    """
)
EXIT_LIMIT_SECONDS = 10.0


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
@pytest.mark.parametrize("endpoint", ["refused", "black-hole"])
def test_a_script_exits_within_10_s_of_its_last_line_when_the_collector_is_down(
    protocol: str, endpoint: str, black_hole: BlackHole
) -> None:
    port = black_hole.port if endpoint == "black-hole" else unused_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SPENDFUSE_"))}
    env.update(
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{port}",
        OTEL_EXPORTER_OTLP_PROTOCOL=protocol,
        SPENDFUSE_LEDGER="off",
    )
    done = subprocess.run([sys.executable, "-c", EXIT_SCRIPT], env=env, capture_output=True, text=True, timeout=120)
    exited = time.time()
    assert done.returncode == 0, done.stderr
    last_line = float(done.stdout.strip().splitlines()[-1])
    assert exited - last_line < EXIT_LIMIT_SECONDS, (exited - last_line, done.stderr[-2000:])
    # The exporters really tried the dead endpoint at exit: otherwise the test proves nothing.
    if endpoint == "black-hole":
        assert black_hole.accepted
    else:
        assert "refused" in done.stderr.lower() or "unavailable" in done.stderr.lower(), done.stderr[-2000:]
