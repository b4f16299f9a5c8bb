"""Plain records the provider extractors fill, shared by both providers."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from spendfuse.budgets.usage import TokenUsage


def get(obj: Any, name: str) -> Any:
    """A field of an SDK object or of the same thing as a decoded JSON dict (raw responses)."""
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)


def items(value: Any) -> list[Any] | tuple[Any, ...]:
    """A list field; anything else (a wrongly typed field of an SDK object built without validation, or
    of a raw JSON body) reads as empty instead of raising."""
    return value if isinstance(value, (list, tuple)) else ()


def tool_signature(name: object, arguments: object) -> str:
    """A stable key for "the same tool with the same arguments" (the repeats limit)."""
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            return f"{name}\x00{arguments}"
    try:
        text = json.dumps(arguments, sort_keys=True, separators=(",", ":"), default=str)
    except (TypeError, ValueError):
        text = repr(arguments)
    return f"{name}\x00{text}"


@dataclass(slots=True)
class RequestInfo:
    model: str
    max_tokens: int | None
    stream: bool
    temperature: float | None = None
    top_p: float | None = None
    max_tokens_key: str | None = None
    cache_write: bool = False
    cache_write_1h: bool = False
    choices: int = 1
    service_tier: str | None = None  # OpenAI price variant ("priority", "flex")
    speed: str | None = None  # Anthropic price variant ("fast")


@dataclass(slots=True)
class ResponseInfo:
    response_id: str | None = None
    response_model: str | None = None
    finish_reasons: list[str] = field(default_factory=list)
    usage: TokenUsage | None = None
    tool_calls: list[str] = field(default_factory=list)  # tool_signature() of each requested call
    output_chars: int = 0  # streamed text seen, for an estimate when no usage arrives
    output_chunks: int = 0
    output_text: list[str] | None = None  # only when content capture is on
    reasoning_tokens: int | None = None  # reported reasoning part of the output tokens (OpenAI)

    def add_text(self, text: str) -> None:
        """Streamed output text. The providers' per-event fast paths inline this (a Python call
        per event is a measurable part of the per-chunk budget); every other path calls it."""
        self.output_chars += len(text)
        if self.output_text is not None:
            self.output_text.append(text)
