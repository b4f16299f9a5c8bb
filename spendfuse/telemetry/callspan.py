"""A model call's span and metric measurements, kept as plain data until the emitter builds them.

``CallSpan`` offers the part of the OpenTelemetry ``Span`` API that spendfuse uses on a call span
(``set_attribute``, ``add_event``, ``set_status``, ``end``) and remembers the parent context and
every timestamp, so the span built later on the emitter's thread (``emit``) has the same parent,
times, attributes, events and status as one built live. A call span never becomes the current
span (nothing runs inside it but the SDK's HTTP request), so no other span needs it while the call
is in flight.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.trace import SpanKind, Status, Tracer

Submit = Callable[[Callable[[], None]], None]


class CallSpan:
    __slots__ = ("_submit", "_tracer", "attributes", "end_ns", "events", "name", "parent", "start_ns", "status",
                 "then")

    def __init__(self, tracer: Tracer, submit: Submit, name: str, attributes: dict[str, Any]) -> None:
        self._tracer = tracer
        self._submit = submit
        self.name = name
        self.attributes = attributes
        self.parent = otel_context.get_current()
        self.start_ns = time.time_ns()
        self.end_ns: int | None = None
        self.events: list[tuple[str, Mapping[str, Any] | None, int]] = []
        self.status: Status | None = None
        self.then: Callable[[], None] | None = None  # runs right after the span is built (the metrics)

    def set_attribute(self, key: str, value: Any) -> None:
        self.attributes[key] = value

    def add_event(self, name: str, attributes: Mapping[str, Any] | None = None) -> None:
        self.events.append((name, attributes, time.time_ns()))

    def set_status(self, status: Status) -> None:
        self.status = status

    def end(self) -> None:
        """Hand the span (and ``then``) to the emitter; once only."""
        if self.end_ns is not None:
            return
        self.end_ns = time.time_ns()
        self._submit(self.emit)

    def emit(self) -> None:
        span = self._tracer.start_span(
            self.name, context=self.parent, kind=SpanKind.CLIENT, attributes=self.attributes,
            start_time=self.start_ns,
        )
        for name, attributes, timestamp in self.events:
            span.add_event(name, attributes, timestamp)
        if self.status is not None:
            span.set_status(self.status)
        span.end(end_time=self.end_ns)
        if self.then is not None:
            self.then()
