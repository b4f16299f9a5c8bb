"""The metric instruments, created once per ``instrument()`` from one meter.

Metric attributes are kept apart from span attributes on purpose: metrics get only low-cardinality
keys (provider, model, operation, token type, error type, scope, limit, optionally user), never a
run id.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from spendfuse.telemetry import names

GaugeSource = Callable[[], Iterable[tuple[float, float, dict[str, str]]]]


class Instruments:
    def __init__(self, meter: Meter) -> None:
        self.token_usage = meter.create_histogram(
            names.METRIC_TOKEN_USAGE,
            unit="{token}",
            description="Number of input and output tokens used per model call",
            explicit_bucket_boundaries_advisory=names.TOKEN_USAGE_BUCKETS,
        )
        self.duration = meter.create_histogram(
            names.METRIC_OPERATION_DURATION,
            unit="s",
            description="Duration of GenAI client operations",
            explicit_bucket_boundaries_advisory=names.DURATION_BUCKETS,
        )
        self.time_to_first_chunk = meter.create_histogram(
            names.METRIC_TIME_TO_FIRST_CHUNK,
            unit="s",
            description="Time from request start to the first chunk of a streamed response",
            explicit_bucket_boundaries_advisory=names.TIME_TO_FIRST_CHUNK_BUCKETS,
        )
        self.cost = meter.create_counter(
            names.METRIC_COST, unit="USD", description="Settled cost of model calls in US dollars"
        )
        self.breaker_trips = meter.create_counter(
            names.METRIC_BREAKER_TRIPS, unit="{trip}", description="Calls refused by a budget breaker"
        )
        self.budget_warnings = meter.create_counter(
            names.METRIC_BUDGET_WARNINGS, unit="{warning}", description="Budgets that crossed warn_at"
        )
        self.runs = meter.create_counter(names.METRIC_RUNS, unit="{run}", description="Finished runs by outcome")
        self.store_errors = meter.create_counter(
            names.METRIC_STORE_ERRORS,
            unit="{error}",
            description="Budget store failures and fail-open admissions",
        )
        # User-window balances are few (one per active user): gauges are affordable there.
        self._gauge_lock = threading.Lock()
        self._gauge_source: GaugeSource | None = None
        meter.create_observable_gauge(
            names.METRIC_BUDGET_SPENT,
            callbacks=[self._observe_spent],
            unit="USD",
            description="Spent (settled + in flight) of budget windows active in this process",
        )
        meter.create_observable_gauge(
            names.METRIC_BUDGET_LIMIT,
            callbacks=[self._observe_limit],
            unit="USD",
            description="USD limit of budget windows active in this process",
        )

    def set_gauge_source(self, source: GaugeSource | None) -> None:
        """The active breaker's user windows; a new instrument() replaces the old source."""
        with self._gauge_lock:
            self._gauge_source = source

    def _rows(self) -> list[tuple[float, float, dict[str, str]]]:
        with self._gauge_lock:
            source = self._gauge_source
        if source is None:
            return []
        try:
            return list(source())
        except Exception:  # a gauge must never break the exporter thread
            return []

    def _observe_spent(self, _options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(spent, attrs) for spent, _limit, attrs in self._rows()]

    def _observe_limit(self, _options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(limit, attrs) for _spent, limit, attrs in self._rows()]
