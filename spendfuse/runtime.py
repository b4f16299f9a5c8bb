"""The active instrumentation: settings, tracer, instruments, breaker.

``instrument()`` builds one ``Runtime`` and swaps it in as a whole; patched methods and runs read
it through ``current()``. Nothing mutates a Runtime after it is built, so a reader never sees a
half-applied configuration.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opentelemetry import metrics, trace
from opentelemetry.trace import Tracer

from spendfuse._log import log
from spendfuse.budgets import critical
from spendfuse.telemetry.emitter import Task, emitter, run_inline

if TYPE_CHECKING:
    from spendfuse.budgets.breaker import Breaker
    from spendfuse.budgets.pricing import PriceBook
    from spendfuse.config.settings import Settings
    from spendfuse.telemetry.instruments import Instruments

TRACER_NAME = "spendfuse"


@dataclass(frozen=True, slots=True)
class Runtime:
    settings: Settings
    tracer: Tracer
    instruments: Instruments
    breaker: Breaker
    prices: PriceBook
    emit: Callable[[Task], None]  # the emitter's submit, or run_inline with background_telemetry off
    tracer_provider: Any = None  # as given to instrument(); None means the global one
    meter_provider: Any = None


_active: Runtime | None = None


def current() -> Runtime | None:
    return _active


def activate(runtime: Runtime | None) -> Runtime | None:
    """Install ``runtime`` (or none); returns the previous one."""
    global _active
    previous, _active = _active, runtime
    return previous


def emit(task: Task) -> None:
    """Queue a telemetry task behind the calls' spans (run now when nothing is instrumented)."""
    active = _active
    (active.emit if active is not None else run_inline)(task)


def flush(timeout_millis: int = 5000) -> None:
    """Emit spendfuse's pending spans and measurements, then flush the OpenTelemetry providers."""
    critical.drain()  # settlements deferred out of a critical section (a stream ended inside a GC)
    emitter.flush(timeout_millis / 1000)
    active = _active
    tracer_provider = active.tracer_provider if active is not None else None
    meter_provider = active.meter_provider if active is not None else None
    for provider in (tracer_provider or trace.get_tracer_provider(), meter_provider or metrics.get_meter_provider()):
        force_flush = getattr(provider, "force_flush", None)
        if force_flush is None:
            continue
        try:
            force_flush(timeout_millis)
        except Exception:
            log.debug("spendfuse: flushing %r failed", provider, exc_info=True)


def tracer() -> Tracer:
    runtime = _active
    return runtime.tracer if runtime is not None else trace.get_tracer(TRACER_NAME)
