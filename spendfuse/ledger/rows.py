"""Turn a finished span into ledger rows, reading only an allow-list of attributes.

Reading by allow-list is what keeps message content (``gen_ai.input.messages``,
``gen_ai.output.messages``, ``gen_ai.system_instructions``) and anything else unexpected out of the
ledger, whatever the instrumentation put on the span.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import astuple, dataclass
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

from spendfuse.telemetry import names

KIND_RUN = "run"
KIND_CALL = "call"
KIND_TOOL = "tool"
KIND_OTHER = "other"

OUR_SCOPE = "spendfuse"
KIND_BY_OPERATION = {
    names.OPERATION_INVOKE_AGENT: KIND_RUN,
    names.OPERATION_CHAT: KIND_CALL,
    names.OPERATION_EXECUTE_TOOL: KIND_TOOL,
}
# Reserved by other calls in flight, apart from `spent` (trips and warnings carry it).
BREAKER_IN_FLIGHT = names.BREAKER_IN_FLIGHT
BREAKER_EVENTS = frozenset({names.EVENT_BREAKER_TRIPPED, names.EVENT_BREAKER_APPROVED, names.EVENT_BUDGET_WARNING})


@dataclass(slots=True)
class SpanRow:
    """One ``spans`` row; field order is ``schema.SPAN_COLUMNS``."""

    trace_id: str
    span_id: str
    parent_span_id: str | None
    run_id: str | None
    parent_run_id: str | None
    run_name: str | None
    user_id: str | None
    name: str
    kind: str
    start_ns: int
    end_ns: int
    status: str
    status_message: str | None
    service: str | None
    provider: str | None
    request_model: str | None
    response_model: str | None
    tool_name: str | None
    input_tokens: int | None
    output_tokens: int | None
    cache_read_tokens: int | None
    cache_write_tokens: int | None
    cost_usd: float | None
    cost_unknown: int
    reserved_usd: float | None
    estimated: int
    outcome: str | None
    spent_usd: float | None
    spent_turns: int | None
    spent_tokens: int | None
    budget_usd: float | None
    tripped: int
    approved: int
    trip_scope: str | None
    trip_key: str | None
    trip_limit: str | None
    trip_limit_value: float | None
    trip_spent: float | None
    trip_requested: float | None
    error_type: str | None
    trip_in_flight: float | None = None
    scopes: str | None = None  # JSON {"team": "search", "org": "acme"}: the run's keyed scopes

    def values(self) -> tuple[Any, ...]:
        return astuple(self)


@dataclass(slots=True)
class EventRow:
    """One ``events`` row; field order is ``schema.EVENT_COLUMNS``."""

    trace_id: str
    span_id: str
    run_id: str | None
    user_id: str | None
    name: str
    time_ns: int
    scope: str | None
    key: str | None
    limit_name: str | None
    limit_value: float | None
    spent: float | None
    requested: float | None
    in_flight: float | None = None

    def values(self) -> tuple[Any, ...]:
        return astuple(self)


def _text(attributes: Mapping[str, Any], key: str) -> str | None:
    value = attributes.get(key)
    return None if value is None else str(value)


def _int(attributes: Mapping[str, Any], key: str) -> int | None:
    value = attributes.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return int(value)


def _float(attributes: Mapping[str, Any], key: str) -> float | None:
    value = attributes.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _flag(attributes: Mapping[str, Any], key: str) -> int:
    return 1 if attributes.get(key) is True else 0


def span_kind(span: ReadableSpan, attributes: Mapping[str, Any]) -> str | None:
    """run / call / tool for our own spans, other for foreign spans inside a run, else None (skip)."""
    scope = span.instrumentation_scope
    operation = attributes.get(names.GEN_AI_OPERATION_NAME)
    if scope is not None and scope.name == OUR_SCOPE and isinstance(operation, str):
        kind = KIND_BY_OPERATION.get(operation)
        if kind is not None:
            return kind
    # Spans of other instrumentations carry the run id when they start inside a run.
    return KIND_OTHER if attributes.get(names.RUN_ID) is not None else None


def to_rows(span: ReadableSpan) -> tuple[SpanRow, list[EventRow]] | None:
    """The span's row and its breaker events, or None when the span is not spendfuse's concern."""
    attributes: Mapping[str, Any] = span.attributes or {}
    kind = span_kind(span, attributes)
    context = span.context
    if kind is None or context is None:
        return None
    trace_id = format(context.trace_id, "032x")
    span_id = format(context.span_id, "016x")
    run_id = _text(attributes, names.RUN_ID)
    user_id = _text(attributes, names.USER_ID)
    status = span.status
    start = span.start_time or 0
    row = SpanRow(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=format(span.parent.span_id, "016x") if span.parent is not None else None,
        run_id=run_id,
        parent_run_id=_text(attributes, names.PARENT_RUN_ID),
        run_name=_text(attributes, names.RUN_NAME),
        user_id=user_id,
        name=span.name,
        kind=kind,
        start_ns=start,
        end_ns=span.end_time or start,
        status=status.status_code.name.lower(),
        status_message=status.description if status.status_code is StatusCode.ERROR else None,
        service=_text(span.resource.attributes, "service.name") if span.resource is not None else None,
        provider=_text(attributes, names.GEN_AI_PROVIDER_NAME),
        request_model=_text(attributes, names.GEN_AI_REQUEST_MODEL),
        response_model=_text(attributes, names.GEN_AI_RESPONSE_MODEL),
        tool_name=_text(attributes, names.GEN_AI_TOOL_NAME),
        input_tokens=_int(attributes, names.GEN_AI_USAGE_INPUT_TOKENS),
        output_tokens=_int(attributes, names.GEN_AI_USAGE_OUTPUT_TOKENS),
        cache_read_tokens=_int(attributes, names.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS),
        cache_write_tokens=_int(attributes, names.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS),
        cost_usd=None if attributes.get(names.COST_UNKNOWN) is True else _float(attributes, names.COST_USD),
        cost_unknown=_flag(attributes, names.COST_UNKNOWN),
        reserved_usd=_float(attributes, names.RESERVED_USD),
        estimated=_flag(attributes, names.USAGE_ESTIMATED),
        outcome=_text(attributes, names.OUTCOME),
        spent_usd=_float(attributes, names.SPENT_USD),
        spent_turns=_int(attributes, names.SPENT_TURNS),
        spent_tokens=_int(attributes, names.SPENT_TOKENS),
        budget_usd=_float(attributes, names.BUDGET_USD),
        tripped=_flag(attributes, names.BREAKER_TRIPPED),
        approved=_flag(attributes, names.BREAKER_APPROVED),
        trip_scope=None,
        trip_key=None,
        trip_limit=None,
        trip_limit_value=None,
        trip_spent=None,
        trip_requested=None,
        error_type=_text(attributes, names.ERROR_TYPE),
    )
    events: list[EventRow] = []
    for event in span.events:
        if event.name not in BREAKER_EVENTS:
            continue
        details: Mapping[str, Any] = event.attributes or {}
        events.append(
            EventRow(
                trace_id=trace_id,
                span_id=span_id,
                run_id=run_id,
                user_id=user_id,
                name=event.name,
                time_ns=event.timestamp or row.start_ns,
                scope=_text(details, names.BREAKER_SCOPE),
                key=_text(details, names.BREAKER_KEY),
                limit_name=_text(details, names.BREAKER_LIMIT),
                limit_value=_float(details, names.BREAKER_LIMIT_VALUE),
                spent=_float(details, names.BREAKER_SPENT),
                requested=_float(details, names.BREAKER_REQUESTED),
                in_flight=_float(details, BREAKER_IN_FLIGHT),
            )
        )
        if event.name == names.EVENT_BREAKER_TRIPPED and row.trip_limit is None:
            row.tripped = 1
            row.trip_scope = events[-1].scope
            row.trip_key = events[-1].key
            row.trip_limit = events[-1].limit_name
            row.trip_limit_value = events[-1].limit_value
            row.trip_spent = events[-1].spent
            row.trip_requested = events[-1].requested
            row.trip_in_flight = events[-1].in_flight
    row.scopes = _scopes(attributes)
    return row, events


def _scopes(attributes: Mapping[str, Any]) -> str | None:
    """``spendfuse.scope.<name>`` attributes as one JSON object (sorted, so equal runs read equal)."""
    found = {
        key[len(names.SCOPE_PREFIX) :]: value
        for key, value in attributes.items()
        if key.startswith(names.SCOPE_PREFIX) and isinstance(value, str)
    }
    if not found:
        return None
    user = attributes.get(names.USER_ID)
    if isinstance(user, str):
        found["user"] = user
    return json.dumps(found, sort_keys=True, separators=(",", ":"))
