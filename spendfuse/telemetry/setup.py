"""Telemetry providers for ``import spendfuse.auto``: from the standard ``OTEL_*`` variables.

Only when the application has not installed SDK providers itself: a user's own setup always wins.
Exporters are created only when an OTLP endpoint is configured; at exit both providers are
flushed, so the spans and the breaker-trip counter of a short script reach the collector.
"""

from __future__ import annotations

import atexit
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry import metrics, trace

from spendfuse import runtime

log = logging.getLogger("spendfuse")

ENDPOINT_VARS = ("OTEL_EXPORTER_OTLP_ENDPOINT",)
TRACES_ENDPOINT_VARS = (*ENDPOINT_VARS, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
METRICS_ENDPOINT_VARS = (*ENDPOINT_VARS, "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")


@dataclass(slots=True)
class Providers:
    tracer_provider: Any = None
    meter_provider: Any = None
    created_tracer: bool = False
    created_meter: bool = False


def _has_sdk_tracer() -> bool:
    return hasattr(trace.get_tracer_provider(), "add_span_processor")


def _has_sdk_meter() -> bool:
    return type(metrics.get_meter_provider()).__module__.startswith("opentelemetry.sdk")


def _protocol(environ: Mapping[str, str], signal: str) -> str:
    value = environ.get(f"OTEL_EXPORTER_OTLP_{signal}_PROTOCOL") or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
    if value:
        return value.strip().lower()
    endpoint = environ.get(f"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "")
    return "grpc" if endpoint.rstrip("/").endswith(":4317") else "http/protobuf"


def _span_exporter(environ: Mapping[str, str]) -> Any:
    if _protocol(environ, "TRACES") == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter

    return HttpSpanExporter()


def _metric_exporter(environ: Mapping[str, str]) -> Any:
    if _protocol(environ, "METRICS") == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

        return OTLPMetricExporter()
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpMetricExporter

    return HttpMetricExporter()


def configure_from_env(environ: Mapping[str, str] | None = None) -> Providers:
    """Install SDK providers with OTLP exporters when an endpoint is set and none exist yet."""
    environ = os.environ if environ is None else environ
    providers = Providers()
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return providers
    from opentelemetry.sdk.resources import Resource

    resource = Resource.create({"service.name": environ.get("OTEL_SERVICE_NAME", "spendfuse-agent")})
    if not _has_sdk_tracer() and any(environ.get(v) for v in TRACES_ENDPOINT_VARS):
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        tracer_provider = TracerProvider(resource=resource)
        tracer_provider.add_span_processor(BatchSpanProcessor(_span_exporter(environ)))
        trace.set_tracer_provider(tracer_provider)
        providers.tracer_provider, providers.created_tracer = tracer_provider, True
    if not _has_sdk_meter() and any(environ.get(v) for v in METRICS_ENDPOINT_VARS):
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

        reader = PeriodicExportingMetricReader(_metric_exporter(environ))
        meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
        metrics.set_meter_provider(meter_provider)
        providers.meter_provider, providers.created_meter = meter_provider, True
    return providers


def flush_at_exit() -> None:
    """Flush spendfuse's pending telemetry and the SDK providers at exit (ours or the application's)."""
    atexit.register(runtime.flush)
