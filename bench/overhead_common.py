"""What the overhead benchmark's orchestrator, workers and fake server agree on: cases, request,
reply."""

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
SHAPES = ("json", "stream")
TRANSPORTS = ("mock", "loopback", "remote")
REMOTE_THINK_MS = 20  # "remote": the loopback server waits this long before answering, as a provider would
MODES = ("raw", "telemetry", "budget-memory", "budget-sqlite", "budget-redis")


@dataclass(frozen=True)
class Case:
    provider: str
    shape: str
    transport: str

    @property
    def name(self) -> str:
        return f"{self.provider}/{self.shape}/{self.transport}"

    @classmethod
    def parse(cls, name: str) -> Case:
        provider, shape, transport = name.split("/")
        if provider not in PROVIDERS or shape not in SHAPES or transport not in TRANSPORTS:
            raise ValueError(f"unknown case {name!r}")
        return cls(provider, shape, transport)


ALL_CASES = tuple(Case(p, s, t) for t in TRANSPORTS for p in PROVIDERS for s in SHAPES)

# Events around the text deltas: Anthropic sends message_start, content_block_start, ping,
# content_block_stop, message_delta, message_stop; OpenAI a role chunk (carrying the first word)
# and a finish_reason chunk. These word counts give STREAM_CHUNKS items either way; the worker
# counts them again and reports what it saw.
_WORDS = {"anthropic": STREAM_CHUNKS - 5, "openai": STREAM_CHUNKS - 2}

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
