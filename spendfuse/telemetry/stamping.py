"""Stamp ``spendfuse.run.id``, ``user.id`` and ``spendfuse.scope.<name>`` on every span started inside a run.

A span processor sees spans of every instrumentation (HTTP clients, databases, the SDKs' own), so
a run's whole trace can be found and filtered by run id in Tempo without those libraries knowing
about us.
"""

from __future__ import annotations

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from spendfuse.runs.run import current_run
from spendfuse.telemetry import names


class RunStampingProcessor(SpanProcessor):
    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        the_run = current_run()
        if the_run is None:
            return
        attributes = span.attributes
        if attributes is not None and names.RUN_ID in attributes:
            # A run span names its own run and scopes, not the enclosing one's; a call span starts
            # with the run id and user (telemetry/calls.py) and takes the run's scopes from here.
            if names.RUN_NAME not in attributes and the_run.scope_attributes:
                span.set_attributes(the_run.scope_attributes)
            return
        span.set_attribute(names.RUN_ID, the_run.run_id)
        if the_run.user_id is not None:
            span.set_attribute(names.USER_ID, the_run.user_id)
        if the_run.scope_attributes:
            span.set_attributes(the_run.scope_attributes)

    def on_end(self, span: ReadableSpan) -> None:
        return None

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
