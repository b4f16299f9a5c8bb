"""The active instrumentation: settings, tracer, instruments, breaker.

``instrument()`` builds one ``Runtime`` and swaps it in as a whole; patched methods and runs read
it through ``current()``. Nothing mutates a Runtime after it is built, so a reader never sees a
half-applied configuration.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opentelemetry import metrics, trace
from opentelemetry.trace import Tracer

from spendfuse._log import log
from spendfuse.budgets import critical

if TYPE_CHECKING:
    from spendfuse.budgets.breaker import Breaker
    from spendfuse.budgets.pricing import PriceBook
    from spendfuse.config.settings import Settings
    from spendfuse.telemetry.calls import CallTelemetry
    from spendfuse.telemetry.instruments import Instruments

TRACER_NAME = "spendfuse"
FLUSH_MILLIS = 5000  # spendfuse.flush() default: the whole flush, both providers together


@dataclass(frozen=True, slots=True)
class Runtime:
    settings: Settings
    tracer: Tracer
    instruments: Instruments
    breaker: Breaker
    prices: PriceBook
    calls: CallTelemetry
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


def providers() -> tuple[Any, Any]:
    """The tracer and meter providers spendfuse emits to (the global ones unless given)."""
    active = _active
    tracer_provider = active.tracer_provider if active is not None else None
    meter_provider = active.meter_provider if active is not None else None
    return tracer_provider or trace.get_tracer_provider(), meter_provider or metrics.get_meter_provider()


def flush(timeout_millis: int = FLUSH_MILLIS) -> bool:
    """Force-flush the tracer and meter providers; returns within ``timeout_millis`` whatever they do.

    Spans and measurements are handed to the providers as calls end, so this only pushes out what
    their processors and readers still hold (a batch processor's queue, a periodic reader's
    points). The flushes run on a helper thread: an exporter stuck on the network cannot hold the
    caller past the deadline. True when both finished in time.
    """
    critical.drain()  # settlements deferred out of a critical section (a stream ended inside a GC)
    done = threading.Event()

    def run() -> None:
        deadline = time.monotonic() + timeout_millis / 1000
        for provider in providers():
            force_flush = getattr(provider, "force_flush", None)
            if force_flush is None:
                continue
            remaining = max(1, int((deadline - time.monotonic()) * 1000))
            try:
                force_flush(remaining)
            except Exception:
                log.debug("spendfuse: flushing %r failed", provider, exc_info=True)
        done.set()

    try:
        thread = threading.Thread(target=run, name="spendfuse-flush", daemon=True)
        thread.start()
    except RuntimeError:  # at interpreter shutdown or out of threads: flush here, unbounded
        run()
        return True
    return done.wait(timeout_millis / 1000)


def tracer() -> Tracer:
    runtime = _active
    return runtime.tracer if runtime is not None else trace.get_tracer(TRACER_NAME)
