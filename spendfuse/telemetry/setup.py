"""Telemetry providers for ``import spendfuse.auto``: from the standard ``OTEL_*`` variables.

Only when the application has not installed SDK providers itself: a user's own setup always wins.
Exporters are created only when an OTLP endpoint is configured; at exit both providers are
flushed, so the spans and the breaker-trip counter of a short script reach the collector.

Exit is bounded. An endpoint that refuses connections makes the exporters retry with backoff, and
one that accepts and never answers holds each export for its whole timeout; the SDK's own exit
hooks wait for both, one provider after the other (25-37 s measured). So the providers created
here do not shut themselves down at exit (``shutdown_on_exit=False``), their exporters get a
short timeout unless ``OTEL_EXPORTER_OTLP_*TIMEOUT`` says otherwise, and one exit hook flushes and
shuts them down together on a helper thread, waiting ``EXIT_SECONDS`` at most: what an unreachable
collector did not take by then is lost, as it would be anyway.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry import metrics, trace

from spendfuse import runtime

log = logging.getLogger("spendfuse")

EXPORT_TIMEOUT_SECONDS = 3.0  # per export attempt, unless the OTEL_* timeout variables say otherwise
EXIT_SECONDS = 4.0  # the longest the exit hook waits for the providers to flush and shut down
TIMEOUT_VARS = ("OTEL_EXPORTER_OTLP_TIMEOUT",)

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


def _timeout(environ: Mapping[str, str], signal: str) -> float | None:
    """Our short export timeout, or None to let the exporter read the user's OTEL_* setting."""
    if any(environ.get(name) for name in (*TIMEOUT_VARS, f"OTEL_EXPORTER_OTLP_{signal}_TIMEOUT")):
        return None
    return EXPORT_TIMEOUT_SECONDS


def _span_exporter(environ: Mapping[str, str]) -> Any:
    timeout = _timeout(environ, "TRACES")
    if _protocol(environ, "TRACES") == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(timeout=timeout)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter

    return HttpSpanExporter(timeout=timeout)


def _metric_exporter(environ: Mapping[str, str]) -> Any:
    timeout = _timeout(environ, "METRICS")
    if _protocol(environ, "METRICS") == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

        return OTLPMetricExporter(timeout=timeout)
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpMetricExporter

    return HttpMetricExporter(timeout=timeout)


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

        tracer_provider = TracerProvider(resource=resource, shutdown_on_exit=False)  # ours: see shutdown_at_exit
        tracer_provider.add_span_processor(
            BatchSpanProcessor(_span_exporter(environ), export_timeout_millis=EXPORT_TIMEOUT_SECONDS * 1000)
        )
        trace.set_tracer_provider(tracer_provider)
        providers.tracer_provider, providers.created_tracer = tracer_provider, True
    if not _has_sdk_meter() and any(environ.get(v) for v in METRICS_ENDPOINT_VARS):
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

        reader = PeriodicExportingMetricReader(
            _metric_exporter(environ), export_timeout_millis=EXPORT_TIMEOUT_SECONDS * 1000
        )
        meter_provider = MeterProvider(resource=resource, metric_readers=[reader], shutdown_on_exit=False)
        metrics.set_meter_provider(meter_provider)
        providers.meter_provider, providers.created_meter = meter_provider, True
    return providers


def _shut_down_ours(providers: Providers, deadline: float) -> None:
    try:
        if providers.created_tracer:
            providers.tracer_provider.shutdown()
        if providers.created_meter:
            providers.meter_provider.shutdown(timeout_millis=max(1.0, (deadline - time.monotonic()) * 1000))
    except Exception:
        log.debug("spendfuse: shutting down the telemetry providers failed", exc_info=True)


def _stop(providers: Providers, deadline: float) -> None:
    # Flush everything first (ours and the application's providers), then shut down ours.
    runtime.flush(max(1, int((deadline - time.monotonic()) * 1000)))
    _shut_down_ours(providers, deadline)


def shutdown_at_exit(providers: Providers, seconds: float = EXIT_SECONDS) -> None:
    """Flush the providers and shut down the ones we created; give up after ``seconds``."""
    deadline = time.monotonic() + seconds
    thread = threading.Thread(target=_stop, args=(providers, deadline), name="spendfuse-exit", daemon=True)
    try:
        thread.start()
    except RuntimeError:
        # Some Pythons (3.12.1) refuse new threads in exit hooks. Shut ours down here: each
        # exports what it holds once, bounded by the exporters' timeouts; the application's own
        # providers shut themselves down.
        _shut_down_ours(providers, deadline)
        return
    thread.join(seconds)
    if thread.is_alive():
        log.warning("spendfuse: telemetry export did not finish within %s s at exit; leaving without it", seconds)


def flush_at_exit(providers: Providers | None = None) -> None:
    """At exit, flush spans and metrics (ours or the application's providers), bounded in time."""
    atexit.register(shutdown_at_exit, providers or Providers())
