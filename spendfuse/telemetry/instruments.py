"""The metric instruments, created once per ``instrument()`` from one meter.

Metric attributes are kept apart from span attributes on purpose: metrics get only low-cardinality
keys (provider, model, operation, token type, error type, scope, limit, optionally user), never a
run id.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

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


@dataclass(slots=True)
class CallMeasurements:
    """One model call's metric values, recorded on the telemetry thread (``record``).

    The caller only fills in numbers and names; the attribute dicts and the SDK's per-measurement
    work (validating, hashing and aggregating attributes) happen off its thread.
    """

    instruments: Instruments
    provider: str
    request_model: str
    response_model: str | None
    duration: float
    time_to_first_chunk: float | None
    input_tokens: int | None
    output_tokens: int | None
    cost_usd: float
    error_type: str | None
    user_id: str | None

    def record(self) -> None:
        instruments = self.instruments
        attributes: dict[str, Any] = {
            names.GEN_AI_OPERATION_NAME: names.OPERATION_CHAT,
            names.GEN_AI_PROVIDER_NAME: self.provider,
            names.GEN_AI_REQUEST_MODEL: self.request_model,
        }
        if self.response_model:
            attributes[names.GEN_AI_RESPONSE_MODEL] = self.response_model
        duration_attributes = attributes
        if self.error_type is not None:
            duration_attributes = {**attributes, names.ERROR_TYPE: self.error_type}
        instruments.duration.record(self.duration, duration_attributes)
        if self.time_to_first_chunk is not None:
            instruments.time_to_first_chunk.record(self.time_to_first_chunk, attributes)
        if self.input_tokens is not None:
            instruments.token_usage.record(self.input_tokens, {**attributes, names.GEN_AI_TOKEN_TYPE: "input"})
        if self.output_tokens is not None:
            instruments.token_usage.record(self.output_tokens, {**attributes, names.GEN_AI_TOKEN_TYPE: "output"})
        if self.cost_usd:
            cost_attributes = {
                names.GEN_AI_PROVIDER_NAME: self.provider,
                names.GEN_AI_REQUEST_MODEL: self.request_model,
            }
            if self.user_id:
                cost_attributes[names.USER_ID] = self.user_id
            instruments.cost.add(self.cost_usd, cost_attributes)
