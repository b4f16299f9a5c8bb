"""What the overhead benchmark's orchestrator, workers and profile helper agree on: modes, cases,
request and reply."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ANTHROPIC_MODEL = "claude-sonnet-4-6"  # priced, and not on the SDK's deprecation list (that warns per call)
OPENAI_MODEL = "gpt-4.1"
MAX_TOKENS = 1024
STREAM_CHUNKS = 50
# The fake provider logs every request; clearing the log keeps its growth out of time and RSS.
RESET_EVERY = 1000

PROVIDERS = ("anthropic", "openai")
SHAPES = ("json", "stream50")

# mode -> what it is. Every mode but raw also times raw calls in the same process (see the worker).
MODES: dict[str, str] = {
    "raw": "the SDK alone; nothing instrumented, no OpenTelemetry SDK providers",
    "spendfuse-noop": "spendfuse.instrument(), no budgets, the OpenTelemetry API's default no-op tracer and meter",
    "spendfuse": "spendfuse.instrument(), no budgets (telemetry only), the SDK providers",
    "spendfuse-budgets": "spendfuse + a run budget and a 1d user budget on memory://, calls inside spendfuse.run()",
    "openllmetry": "OpenLLMetry (Traceloop) Anthropic + OpenAI instrumentors, their defaults, the SDK providers",
    "openllmetry-nocontent": "the same with TRACELOOP_TRACE_CONTENT=false (no prompts/completions on spans)",
    "otel-openai-v2": "opentelemetry-instrumentation-openai-v2 (official OTel), its defaults, the SDK providers",
}
# Modes that need a venv of their own (bench/setup_peers.py), and the venv's name.
PEER_VENV = {"openllmetry": "openllmetry", "openllmetry-nocontent": "openllmetry", "otel-openai-v2": "otel-openai-v2"}
# Modes that instrument one provider only.
MODE_PROVIDERS = {"otel-openai-v2": ("openai",)}


@dataclass(frozen=True)
class Case:
    provider: str
    shape: str

    @property
    def name(self) -> str:
        return f"{self.provider}/{self.shape}"

    @property
    def stream(self) -> bool:
        return self.shape != "json"

    @classmethod
    def parse(cls, name: str) -> Case:
        provider, shape = name.split("/")[:2]
        if shape == "stream":
            shape = "stream50"
        if provider not in PROVIDERS or shape not in SHAPES:
            raise ValueError(f"unknown case {name!r} (provider/shape: anthropic|openai / json|stream50)")
        return cls(provider, shape)


ALL_CASES = tuple(Case(p, s) for p in PROVIDERS for s in SHAPES)

# Events around the text deltas: Anthropic sends message_start, content_block_start, ping,
# content_block_stop, message_delta, message_stop; OpenAI a role chunk (carrying the first word),
# a finish_reason chunk and a usage chunk (stream_options.include_usage). These word counts give
# STREAM_CHUNKS items either way; the worker counts them again and reports what it saw.
_WORDS = {"anthropic": STREAM_CHUNKS - 5, "openai": STREAM_CHUNKS - 3}

_SYSTEM = (
    "You are a meticulous support agent for an online bookshop. Answer in two or three sentences, "
    "quote order numbers exactly, never promise refunds before checking the order status, and ask "
    "one clarifying question when the customer's request is ambiguous. Prices are in euros."
)
_TURNS = (
    ("user", "Hi, my order 48213 was supposed to arrive on Monday and it still has not shown up."),
    (
        "assistant",
        "I am sorry about the delay. Order 48213 left our warehouse on Friday and the carrier lists it "
        "as in transit. Could you confirm the delivery postcode so I can check the route?",
    ),
    ("user", "It is 10115, Berlin. Can you tell me when it will arrive, or should I order it again?"),
)


def reply_text(provider: str) -> str:
    return " ".join(f"word{index}" for index in range(_WORDS[provider]))


def reply_for(record: Any) -> Any:
    """The fake provider's responder: the same text for JSON and stream calls of one provider."""
    from spendfuse.testing import Reply

    return Reply.text(reply_text(record.provider))


def anthropic_messages() -> tuple[str, list[dict[str, Any]]]:
    """(system, messages) of a short agent turn; built once per target and resent every call."""
    return _SYSTEM, [{"role": role, "content": text} for role, text in _TURNS]


def openai_messages() -> list[dict[str, Any]]:
    return [{"role": "system", "content": _SYSTEM}, *({"role": role, "content": text} for role, text in _TURNS)]
