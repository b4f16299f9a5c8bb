"""Helpers shared by the framework tests."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.trace import ReadableSpan

from spendfuse.testing import Reply


def runaway(_request: Any) -> Reply:
    """A model that asks for the same tool forever: the loop a budget must stop."""
    return Reply.tool_call("search", {"q": "weather"})


def ours(spans: list[ReadableSpan], prefix: str) -> list[ReadableSpan]:
    """Spans spendfuse made (instrumentation scope ``spendfuse``) whose name starts with ``prefix``."""
    return [
        span
        for span in spans
        if span.name.startswith(prefix)
        and span.instrumentation_scope is not None
        and span.instrumentation_scope.name == "spendfuse"
    ]


def attr(span: ReadableSpan, key: str) -> Any:
    return (span.attributes or {}).get(key)


def one_trace(spans: list[ReadableSpan]) -> set[int]:
    return {span.context.trace_id for span in spans if span.context is not None}
