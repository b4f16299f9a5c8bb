"""The active instrumentation: settings, tracer, instruments, breaker.

``instrument()`` builds one ``Runtime`` and swaps it in as a whole; patched methods and runs read
it through ``current()``. Nothing mutates a Runtime after it is built, so a reader never sees a
half-applied configuration.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from opentelemetry import trace
from opentelemetry.trace import Tracer

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


_active: Runtime | None = None


def current() -> Runtime | None:
    return _active


def activate(runtime: Runtime | None) -> Runtime | None:
    """Install ``runtime`` (or none); returns the previous one."""
    global _active
    previous, _active = _active, runtime
    return previous


def tracer() -> Tracer:
    runtime = _active
    return runtime.tracer if runtime is not None else trace.get_tracer(TRACER_NAME)
