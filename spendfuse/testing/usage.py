"""Deterministic token usage for the fake provider.

The default rule, so tests can predict every number:

* ``input_tokens = 10 + prompt_chars // 4`` where ``prompt_chars`` is the total length of every
  string value (never a key) found under the request's prompt fields -- Anthropic ``system``,
  ``messages`` and ``tools``; OpenAI chat ``messages`` and ``tools``; Responses ``instructions``,
  ``input`` and ``tools`` -- skipping the values of the structural keys listed in
  ``STRUCTURAL_KEYS`` (``type``, ``role``, ids, ``cache_control``, ``status``).
  Example: ``messages=[{"role": "user", "content": "Hi there"}]`` gives ``10 + 8 // 4 = 12``.
* ``output_tokens`` = number of whitespace-separated words of the reply text + 1 per tool call,
  capped by the request's ``max_tokens`` / ``max_completion_tokens`` / ``max_output_tokens``.
  When the cap bites, the reply is truncated to fit (see ``completion.py``).
* No cache tokens.

A ``FakeUsage`` given to a ``Reply`` (or to the provider) replaces the rule verbatim.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

Api = Literal["messages", "chat", "responses"]

BASE_INPUT_TOKENS = 10
CHARS_PER_TOKEN = 4

PROMPT_FIELDS: dict[Api, tuple[str, ...]] = {
    "messages": ("system", "messages", "tools"),
    "chat": ("messages", "tools"),
    "responses": ("instructions", "input", "tools"),
}

STRUCTURAL_KEYS = frozenset({"type", "role", "id", "tool_use_id", "tool_call_id", "call_id", "cache_control", "status"})

_OUTPUT_CAP_FIELDS: dict[Api, tuple[str, ...]] = {
    "messages": ("max_tokens",),
    "chat": ("max_completion_tokens", "max_tokens"),
    "responses": ("max_output_tokens",),
}


@dataclass(frozen=True)
class FakeUsage:
    """Token usage the fake reports.

    ``input_tokens`` is the TOTAL prompt size, cache reads and writes included; each wire format
    derives its own fields from it (Anthropic's ``input_tokens`` excludes the cache counts, OpenAI's
    ``prompt_tokens`` / ``input_tokens`` include them).
    """

    input_tokens: int
    output_tokens: int
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0

    def __post_init__(self) -> None:
        counts = (self.input_tokens, self.output_tokens, self.cache_read_tokens, self.cache_write_tokens)
        if any(n < 0 for n in counts):
            raise ValueError(f"token counts must not be negative: {self}")
        if self.cache_read_tokens + self.cache_write_tokens > self.input_tokens:
            raise ValueError(
                "input_tokens is the total prompt size and must include cache_read_tokens and "
                f"cache_write_tokens: {self}"
            )

    @property
    def uncached_input_tokens(self) -> int:
        """What Anthropic reports as ``usage.input_tokens``."""
        return self.input_tokens - self.cache_read_tokens - self.cache_write_tokens

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


def _text_chars(value: object) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list):
        return sum(_text_chars(item) for item in value)
    if isinstance(value, Mapping):
        return sum(_text_chars(v) for k, v in value.items() if k not in STRUCTURAL_KEYS)
    return 0


def prompt_chars(api: Api, body: Mapping[str, Any]) -> int:
    return sum(_text_chars(body.get(name)) for name in PROMPT_FIELDS[api])


def default_input_tokens(api: Api, body: Mapping[str, Any]) -> int:
    return BASE_INPUT_TOKENS + prompt_chars(api, body) // CHARS_PER_TOKEN


def output_cap(api: Api, body: Mapping[str, Any]) -> int | None:
    """The request's output token limit, if it set one."""
    for name in _OUTPUT_CAP_FIELDS[api]:
        value = body.get(name)
        # bool is an int subclass; a stray `true` must not become a cap of 1.
        if isinstance(value, int) and not isinstance(value, bool):
            return max(value, 0)
    return None
