"""The type of a call span: a real OpenTelemetry ``Span``.

Kept only as a name for ``budgets.breaker``, which annotates the span it is given with this alias;
new code uses ``opentelemetry.trace.Span`` directly.
"""

from __future__ import annotations

from opentelemetry.trace import Span

CallSpan = Span

__all__ = ["CallSpan"]
