"""A model call's ``chat {model}`` span and metric measurements, made on the caller's thread.

The span is a real OpenTelemetry CLIENT span: started (and seen by every processor's ``on_start``)
before the request is sent, current while the SDK sends it, ended before a JSON call returns or
when its stream ends, its measurements recorded by then. Speed comes from doing less: the
attribute dicts that depend only on (provider, model, ...) are built once and reused (the SDK
copies span attributes and only reads metric attributes), every attribute goes in one call, and a
span that does not record (a no-op tracer provider) gets no end attributes built at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer

from spendfuse.telemetry import names

if TYPE_CHECKING:
    from spendfuse.budgets.settlement import Settlement
    from spendfuse.instrumentation.records import RequestInfo, ResponseInfo
    from spendfuse.telemetry.instruments import Instruments

CACHE_LIMIT = 512  # distinct attribute sets kept; past it the cache starts over (a bound, not an LRU)
CONTENT_LIMIT = 16_384  # characters of captured message content per attribute


def _bounded(cache: dict[Any, Any]) -> dict[Any, Any]:
    if len(cache) >= CACHE_LIMIT:
        cache.clear()
    return cache


class CallTelemetry:
    """Starts and ends call spans and records call metrics; one per ``instrument()``."""

    def __init__(
        self,
        tracer: Tracer,
        instruments: Instruments,
        *,
        metric_user: bool,
        experimental: bool,
        metric_scopes: frozenset[str] = frozenset(),
    ) -> None:
        self.tracer = tracer
        self.instruments = instruments
        self.metric_user = metric_user
        # Scopes whose keys label the call metrics: only those the user marked low-cardinality.
        self.metric_scopes = tuple(sorted(metric_scopes - {"user", "model", "provider"}))
        self.experimental = experimental  # OTEL_SEMCONV_STABILITY_OPT_IN has gen_ai_latest_experimental
        self._start_attributes: dict[tuple[Any, ...], tuple[str, dict[str, Any]]] = {}
        self._metric_attributes: dict[tuple[Any, ...], _MetricAttributes] = {}

    # -- span ------------------------------------------------------------------------------

    def start(
        self,
        provider: str,
        request: RequestInfo,
        stream: bool,
        server: tuple[str | None, int | None],
        run_id: str | None,
        user_id: str | None,
        content: Mapping[str, Any] | None = None,
    ) -> Span:
        key = (provider, request.model, stream, request.max_tokens, request.temperature, request.top_p,
               server, run_id, user_id)  # fmt: skip
        cached = self._start_attributes.get(key)
        if cached is None:
            cached = _bounded(self._start_attributes)[key] = _start_attributes(
                provider, request, stream, server, run_id, user_id
            )
        name, attributes = cached
        if content:
            attributes = {**attributes, **content}
        return self.tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attributes)

    def end(
        self,
        span: Span,
        info: ResponseInfo | None,
        settlement: Settlement | None,
        *,
        stream: bool,
        error: BaseException | None,
    ) -> None:
        if span.is_recording():
            attributes = _end_attributes(info, settlement, stream)
            if error is not None:
                attributes[names.ERROR_TYPE] = type(error).__qualname__
                span.set_status(Status(StatusCode.ERROR, str(error)[:200]))
            span.set_attributes(attributes)
        span.end()

    # -- metrics ---------------------------------------------------------------------------

    def record(
        self,
        provider: str,
        request_model: str,
        info: ResponseInfo | None,
        settlement: Settlement | None,
        *,
        duration: float,
        time_to_first_chunk: float | None,
        error: BaseException | None,
        user_id: str | None,
        scopes: Mapping[str, str] | None = None,
    ) -> None:
        response_model = info.response_model if info is not None else None
        labels: tuple[tuple[str, str], ...] = ()
        if scopes and self.metric_scopes:
            labels = tuple((name, scopes[name]) for name in self.metric_scopes if name in scopes)
        key = (provider, request_model, response_model, type(error) if error is not None else None,
               user_id if self.metric_user else None, labels)  # fmt: skip
        attributes = self._metric_attributes.get(key)
        if attributes is None:
            attributes = _bounded(self._metric_attributes)[key] = _MetricAttributes(*key)
        instruments = self.instruments
        instruments.duration.record(duration, attributes.duration)
        if time_to_first_chunk is not None:
            instruments.time_to_first_chunk.record(time_to_first_chunk, attributes.common)
        usage = settlement.usage if settlement is not None else None
        if usage is None:
            return
        instruments.token_usage.record(usage.input_tokens, attributes.input)
        reasoning = info.reasoning_tokens if info is not None else None
        if self.experimental and reasoning and reasoning <= usage.output_tokens:
            # Output split by phase: the two measurements add up to the output total.
            instruments.token_usage.record(usage.output_tokens - reasoning, attributes.response_phase)
            instruments.token_usage.record(reasoning, attributes.reasoning_phase)
        else:
            instruments.token_usage.record(usage.output_tokens, attributes.output)
        cost = settlement.cost if settlement is not None else None
        if cost:
            instruments.cost.add(cost / 1_000_000, attributes.cost)


class _MetricAttributes:
    """Every attribute dict one (provider, model, response model, error, user) records with."""

    __slots__ = ("common", "cost", "duration", "input", "output", "reasoning_phase", "response_phase")

    def __init__(
        self,
        provider: str,
        request_model: str,
        response_model: str | None,
        error_type: type[BaseException] | None,
        user_id: str | None,
        scope_labels: tuple[tuple[str, str], ...] = (),
    ) -> None:
        common: dict[str, Any] = {
            names.GEN_AI_OPERATION_NAME: names.OPERATION_CHAT,
            names.GEN_AI_PROVIDER_NAME: provider,
            names.GEN_AI_REQUEST_MODEL: request_model,
        }
        for name, scope_key in scope_labels:
            common[names.SCOPE_PREFIX + name] = scope_key
        if response_model:
            common[names.GEN_AI_RESPONSE_MODEL] = str(response_model)
        self.common = common
        self.duration = common if error_type is None else {**common, names.ERROR_TYPE: error_type.__qualname__}
        self.input = {**common, names.GEN_AI_TOKEN_TYPE: names.TOKEN_TYPE_INPUT}
        self.output = {**common, names.GEN_AI_TOKEN_TYPE: names.TOKEN_TYPE_OUTPUT}
        self.response_phase = {**self.output, names.GEN_AI_TOKEN_PHASE: names.TOKEN_PHASE_RESPONSE}
        self.reasoning_phase = {**self.output, names.GEN_AI_TOKEN_PHASE: names.TOKEN_PHASE_REASONING}
        cost: dict[str, Any] = {names.GEN_AI_PROVIDER_NAME: provider, names.GEN_AI_REQUEST_MODEL: request_model}
        for name, scope_key in scope_labels:
            cost[names.SCOPE_PREFIX + name] = scope_key
        if user_id:
            cost[names.USER_ID] = user_id
        self.cost = cost


def _start_attributes(
    provider: str,
    request: RequestInfo,
    stream: bool,
    server: tuple[str | None, int | None],
    run_id: str | None,
    user_id: str | None,
) -> tuple[str, dict[str, Any]]:
    attributes: dict[str, Any] = {
        names.GEN_AI_OPERATION_NAME: names.OPERATION_CHAT,
        names.GEN_AI_PROVIDER_NAME: provider,
        names.GEN_AI_REQUEST_MODEL: request.model,
        names.GEN_AI_REQUEST_STREAM: stream,
    }
    if request.max_tokens is not None:
        attributes[names.GEN_AI_REQUEST_MAX_TOKENS] = request.max_tokens
    if request.temperature is not None:
        attributes[names.GEN_AI_REQUEST_TEMPERATURE] = float(request.temperature)
    if request.top_p is not None:
        attributes[names.GEN_AI_REQUEST_TOP_P] = float(request.top_p)
    host, port = server
    if host:
        attributes[names.SERVER_ADDRESS] = host
    if port:
        attributes[names.SERVER_PORT] = port
    if run_id is not None:
        attributes[names.RUN_ID] = run_id
        if user_id is not None:
            attributes[names.USER_ID] = user_id
    return f"{names.OPERATION_CHAT} {request.model}", attributes


def _end_attributes(info: ResponseInfo | None, settlement: Settlement | None, stream: bool) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    if info is not None:
        if info.response_id:
            attributes[names.GEN_AI_RESPONSE_ID] = str(info.response_id)
        if info.response_model:
            attributes[names.GEN_AI_RESPONSE_MODEL] = str(info.response_model)
        if info.finish_reasons:
            attributes[names.GEN_AI_RESPONSE_FINISH_REASONS] = info.finish_reasons
        if info.output_text:
            attributes[names.GEN_AI_OUTPUT_MESSAGES] = "".join(info.output_text)[:CONTENT_LIMIT]
        if info.reasoning_tokens:
            attributes[names.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] = info.reasoning_tokens
    if settlement is not None:
        usage = settlement.usage
        if usage is not None:
            attributes[names.GEN_AI_USAGE_INPUT_TOKENS] = usage.input_tokens
            attributes[names.GEN_AI_USAGE_OUTPUT_TOKENS] = usage.output_tokens
            if usage.cache_read_tokens:
                attributes[names.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = usage.cache_read_tokens
            if usage.cache_write_tokens:
                attributes[names.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS] = usage.cache_write_tokens
        if settlement.estimated:
            attributes[names.USAGE_ESTIMATED] = True
        if settlement.cost is None:
            attributes[names.COST_UNKNOWN] = True
        else:
            attributes[names.COST_USD] = settlement.cost / 1_000_000
        if stream:
            attributes[names.STREAM_END] = settlement.reason
    return attributes
