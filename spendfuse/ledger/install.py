"""Record to the local ledger when no telemetry backend is configured (used by ``spendfuse.auto``)."""

from __future__ import annotations

import os
from collections.abc import Mapping

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from spendfuse.config.settings import load_settings
from spendfuse.errors import ConfigError
from spendfuse.ledger.exporter import LedgerExporter
from spendfuse.ledger.paths import LEDGER_ENV, resolve_ledger_path, retention_days

OTLP_TRACES_ENDPOINT_VARS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


def _ledger_setting(environ: Mapping[str, str]) -> str | None:
    try:
        return load_settings(environ=environ).ledger
    except ConfigError:
        # instrument() reports the malformed setting with its full message right after this.
        return environ.get(LEDGER_ENV)


def install_default_ledger(environ: Mapping[str, str] | None = None) -> TracerProvider | None:
    """Install an SDK ``TracerProvider`` that writes the ledger, and return it.

    Returns None (and changes nothing) when the ledger is off, an OTLP endpoint is configured,
    the OpenTelemetry SDK is disabled, or the application already installed an SDK provider: an
    application's own telemetry setup always wins.
    """
    environ = os.environ if environ is None else environ
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    if any(environ.get(name) for name in OTLP_TRACES_ENDPOINT_VARS):
        return None
    if hasattr(trace.get_tracer_provider(), "add_span_processor"):
        return None
    path = resolve_ledger_path(_ledger_setting(environ), environ)
    if path is None:
        return None
    exporter = LedgerExporter(path, retention_days=retention_days(environ))
    resource = Resource.create({"service.name": environ.get("OTEL_SERVICE_NAME", "spendfuse-agent")})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return provider
