"""No double counting with a framework's own GenAI instrumentation.

pydantic-ai (and Logfire), OpenLLMetry or OpenInference emit their own ``chat {model}`` spans and
``gen_ai.client.token.usage`` measurements for the very calls spendfuse traces. The rule:

- spendfuse's call spans (instrumentation scope ``spendfuse``) and spendfuse's metrics (meter
  ``spendfuse``) are the ledger: sums of tokens and dollars are taken over them only;
- a framework's model-call span that starts while spendfuse is instrumented is marked
  ``spendfuse.usage.duplicate = true`` (its usage is also on a spendfuse call span), so a query
  over every span can exclude it with one condition, and one that wants the framework's view of a
  call can still read it.

The mark is set when the framework span starts; a span that names a provider spendfuse does not
meter (``gen_ai.provider.name`` / ``gen_ai.system`` set at start) is left unmarked.
"""

from __future__ import annotations

import weakref
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from spendfuse import runtime

DUPLICATE = "spendfuse.usage.duplicate"
SCOPE = "spendfuse"
_MODEL_OPERATIONS = frozenset({"chat", "completion", "text_completion", "generate_content", "responses"})
_METERED = frozenset({"openai", "anthropic", "azure.ai.openai", "aws.bedrock", "gcp.vertex_ai"})

_marked_providers: weakref.WeakSet[Any] = weakref.WeakSet()


def is_framework_model_span(span: Span) -> bool:
    scope = span.instrumentation_scope
    if scope is not None and scope.name == SCOPE:
        return False
    attributes = span.attributes or {}
    # The GenAI conventions name the operation; OpenLLMetry's releases use llm.request.type and
    # span names like "openai.chat"; older pydantic-ai/Logfire only the span name "chat {model}".
    operation = attributes.get("gen_ai.operation.name", attributes.get("llm.request.type"))
    if operation is None:
        name = span.name or ""
        if name.startswith(("chat ", "text_completion ")):
            operation = name.split(" ", 1)[0]
        elif name.endswith((".chat", ".completion")):
            operation = "chat"
    if operation not in _MODEL_OPERATIONS:
        return False
    provider = attributes.get("gen_ai.provider.name", attributes.get("gen_ai.system"))
    return provider is None or str(provider).lower() in _METERED


class DuplicateUsageMarker(SpanProcessor):
    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        try:
            if runtime.current() is not None and is_framework_model_span(span):
                span.set_attribute(DUPLICATE, True)
        except Exception:  # a span processor must never break the span's creator
            return

    def on_end(self, span: ReadableSpan) -> None:
        return None

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def mark_duplicates(tracer_provider: Any) -> None:
    """Add the marker to the tracer provider spendfuse uses (once per provider)."""
    from opentelemetry import trace

    provider = tracer_provider if tracer_provider is not None else trace.get_tracer_provider()
    add = getattr(provider, "add_span_processor", None)
    if add is None or provider in _marked_providers:
        return
    _marked_providers.add(provider)
    add(DuplicateUsageMarker())
