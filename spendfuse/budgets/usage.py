"""One normalized token-usage record for both providers, and cheap extractors from their SDK objects.

Field meanings follow the OpenTelemetry GenAI semantic conventions: ``input_tokens`` counts *every*
prompt token, cache reads and cache writes included. Anthropic reports the opposite way (its
``input_tokens`` excludes both cache reads and cache writes), which is why its usage must never be
handed raw to a price calculator.

The extractors run on every response (and on stream events), so they read attributes with
``getattr`` / ``dict.get`` only: no ``model_dump``, no validation, no exception on odd input.
Missing, ``None``, negative or wrongly typed counters read as 0; a counter above
``MAX_TOKENS`` is garbage from upstream and reads as ``MAX_TOKENS``, with a logged error, so no
span, metric, ledger row or balance ever holds ``inf`` or ``NaN`` (a float like 7e307 would).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["MAX_TOKENS", "SERVER_TOOLS", "TokenUsage", "anthropic_usage", "openai_chat_usage", "openai_responses_usage"]

log = logging.getLogger("spendfuse")

# A billion tokens: a hundred times the largest context window of any model. A reported count above
# it is charged as this many tokens (conservative for budgets, and finite in every number derived).
MAX_TOKENS = 1_000_000_000

# The server-side tools billed per use, in the order of ``TokenUsage.tool_uses`` and the fee fields
# of ``Rates``; also the keys of price overrides (USD per 1000 uses).
SERVER_TOOLS = ("web_search", "web_fetch", "file_search", "code_execution")


@dataclass(slots=True)
class TokenUsage:
    input_tokens: int = 0
    """All input tokens, cache reads and cache writes included."""
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    """All cache writes, whatever their time to live."""
    cache_write_1h_tokens: int = 0
    """The part of ``cache_write_tokens`` written with a one-hour time to live (Anthropic)."""
    # Server-side tool uses billed per use on top of tokens (Anthropic ``usage.server_tool_use``,
    # OpenAI Responses ``web_search_call`` / ``file_search_call`` output items).
    web_search_uses: int = 0
    web_fetch_uses: int = 0
    file_search_uses: int = 0
    code_execution_uses: int = 0

    @property
    def tool_uses(self) -> tuple[int, int, int, int]:
        """(web search, web fetch, file search, code execution) uses, in ``SERVER_TOOLS`` order."""
        return (self.web_search_uses, self.web_fetch_uses, self.file_search_uses, self.code_execution_uses)

    @property
    def total(self) -> int:
        return self.input_tokens + self.output_tokens


_ABSENT = object()


def _field(obj: object, name: str) -> object:
    if isinstance(obj, dict):
        return obj.get(name, _ABSENT)
    value = getattr(obj, name, _ABSENT)
    if value is _ABSENT and isinstance(obj, Mapping):
        return obj.get(name, _ABSENT)
    return value


def _missing(value: object) -> bool:
    # The SDKs build usage objects without validation, their optional counters defaulting to None:
    # a record whose every counter is missing or null reports nothing, which is not "0 tokens".
    return value is _ABSENT or value is None


def _count(value: object) -> int:
    # bool is an int subclass; a True counter is a bug upstream, not one token.
    if type(value) is int:
        count = value if value > 0 else 0
    elif isinstance(value, float) and math.isfinite(value) and value > 0:
        count = int(value)
    else:
        return 0
    if count > MAX_TOKENS:
        log.error("spendfuse: a reported token count of %.3g is absurd; charged as %d tokens", count, MAX_TOKENS)
        return MAX_TOKENS
    return count


def anthropic_usage(usage: object) -> TokenUsage | None:
    """Normalize an Anthropic ``Usage`` / ``MessageDeltaUsage`` object or its dict form.

    Anthropic's ``input_tokens`` excludes cache reads and writes, so they are added back here.
    Returns None when there is no usage at all (every counter missing or null).
    """
    if usage is None:
        return None
    raw_input = _field(usage, "input_tokens")
    raw_output = _field(usage, "output_tokens")
    raw_read = _field(usage, "cache_read_input_tokens")
    raw_write = _field(usage, "cache_creation_input_tokens")
    details = _field(usage, "cache_creation")
    if all(_missing(raw) for raw in (raw_input, raw_output, raw_read, raw_write, details)):
        return None
    read = _count(raw_read)
    write = _count(raw_write)
    write_1h = 0
    if details is not _ABSENT and details is not None:
        write_1h = _count(_field(details, "ephemeral_1h_input_tokens"))
        write_5m = _count(_field(details, "ephemeral_5m_input_tokens"))
        # Trust the larger total: a reply that carries only the breakdown must not lose its writes.
        if write_5m + write_1h > write:
            write = write_5m + write_1h
    result = TokenUsage(_count(raw_input) + read + write, _count(raw_output), read, write, min(write_1h, write))
    tools = _field(usage, "server_tool_use")
    if tools is not _ABSENT and tools is not None:
        result.web_search_uses = _count(_field(tools, "web_search_requests"))
        result.web_fetch_uses = _count(_field(tools, "web_fetch_requests"))
        result.code_execution_uses = _count(_field(tools, "code_execution_requests"))
    return result


def _openai_usage(usage: object, input_name: str, output_name: str, details_name: str) -> TokenUsage | None:
    if usage is None:
        return None
    raw_input = _field(usage, input_name)
    raw_output = _field(usage, output_name)
    if _missing(raw_input) and _missing(raw_output):
        return None
    read = write = 0
    details = _field(usage, details_name)
    if details is not _ABSENT and details is not None:
        read = _count(_field(details, "cached_tokens"))
        write = _count(_field(details, "cache_write_tokens"))
    # OpenAI's prompt count already includes cached tokens; never let the parts exceed the whole.
    input_tokens = _count(raw_input)
    if read + write > input_tokens:
        input_tokens = read + write
    return TokenUsage(input_tokens, _count(raw_output), read, write)


def openai_chat_usage(usage: object) -> TokenUsage | None:
    """Normalize a Chat Completions ``CompletionUsage`` object or dict (``prompt_tokens`` includes cached)."""
    return _openai_usage(usage, "prompt_tokens", "completion_tokens", "prompt_tokens_details")


def openai_responses_usage(usage: object) -> TokenUsage | None:
    """Normalize a Responses API ``ResponseUsage`` object or dict (``input_tokens`` includes cached)."""
    return _openai_usage(usage, "input_tokens", "output_tokens", "input_tokens_details")
