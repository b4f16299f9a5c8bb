"""The demo's telemetry: its own ledger always, and the collector too when ``OTEL_*`` says so."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from rich.console import Console

from spendfuse.demo.progress import ProgressPrinter
from spendfuse.ledger.install import ledger_processor as attached_ledger
from spendfuse.ledger.paths import LEDGER_ENV, is_disabled, retention_days
from spendfuse.telemetry.setup import configure_from_env

SERVICE_NAME = "spendfuse-demo"
FLUSH_MILLIS = 10_000
LOOP_RETENTION_DAYS = 1.0


@dataclass
class DemoTelemetry:
    tracer_provider: TracerProvider
    meter_provider: Any
    ledger_path: Path
    temporary: bool
    progress: ProgressPrinter
    ledger_processor: BatchSpanProcessor
    keep: bool = True  # a temporary ledger is removed at exit unless kept (`spendfuse demo --keep-ledger`)

    def flush_ledger(self) -> None:
        """Just the ledger: the summary reads it, and must not wait on a slow or absent collector."""
        self.ledger_processor.force_flush(FLUSH_MILLIS)

    def flush(self) -> None:
        """Every round: the ledger is read right after, and the collector must see each round."""
        self.tracer_provider.force_flush(FLUSH_MILLIS)
        if self.meter_provider is not None:
            self.meter_provider.force_flush(FLUSH_MILLIS)

    def shutdown(self) -> None:
        self.flush()
        self.tracer_provider.shutdown()
        if self.meter_provider is not None:
            self.meter_provider.shutdown()


def demo_ledger_path(explicit: str | None) -> tuple[Path, bool]:
    """``--ledger``, else ``SPENDFUSE_LEDGER``, else a fresh temporary file (True: temporary)."""
    if explicit:
        return Path(explicit).expanduser(), False
    configured = os.environ.get(LEDGER_ENV, "").strip()
    if configured and not is_disabled(configured):
        return Path(configured).expanduser(), False
    # The demo must not mix its made-up runs into the user's real ledger.
    return Path(tempfile.mkdtemp(prefix="spendfuse-demo-")) / "ledger.db", True


def setup(console: Console, explicit_ledger: str | None, *, loop: bool) -> DemoTelemetry:
    os.environ.setdefault("OTEL_SERVICE_NAME", SERVICE_NAME)
    providers = configure_from_env()  # OTLP exporters when an endpoint is configured
    tracer_provider = providers.tracer_provider
    if tracer_provider is None:
        tracer_provider = TracerProvider(resource=Resource.create({"service.name": SERVICE_NAME}))
    path, temporary = demo_ledger_path(explicit_ledger)
    # A demo looping for days only needs its latest rounds: keep its own ledger small.
    retention = LOOP_RETENTION_DAYS if loop and temporary else retention_days()
    # Registered as this provider's ledger, so instrument(ledger=path) finds it and adds no second one.
    ledger_processor = attached_ledger(tracer_provider, path, retention=retention, delay_millis=500)
    progress = ProgressPrinter(console)
    tracer_provider.add_span_processor(progress)
    return DemoTelemetry(tracer_provider, providers.meter_provider, path, temporary, progress, ledger_processor)
