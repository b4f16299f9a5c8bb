"""Hypothesis strategies for provider payloads, and an independent reference of what they should cost.

The reference states the documented reading of usage counters, written from the contract rather
than from the implementation: a counter counts when it is an int (not a bool) or a finite float
above 0 (floats truncate), capped at a billion tokens; missing, null, negative, NaN, infinite or
wrongly typed counters read as 0; a usage record with no counter at all (every field missing or
null) is "no usage", which makes the call estimated instead of charged at zero.
"""

from __future__ import annotations

import math
from typing import Any

from hypothesis import strategies as st

from spendfuse.budgets.pricing import PriceBook, Rates
from spendfuse.budgets.usage import TokenUsage

HUGE = 2**80

junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-HUGE, max_value=HUGE),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6),
    st.just("12"),
    st.lists(st.integers(min_value=0, max_value=9), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(min_value=0, max_value=9), max_size=2),
)
counter = st.one_of(
    st.integers(min_value=0, max_value=5_000),
    st.integers(min_value=0, max_value=HUGE),
    st.integers(min_value=-1_000, max_value=-1),
    st.floats(min_value=0, max_value=1e6),
    junk,
)

json_scalar = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-HUGE, max_value=HUGE), st.floats(allow_nan=False), st.text()
)
json_value = st.recursive(
    json_scalar,
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=12,
)


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """The strategy's value, or junk in its place."""
    return st.one_of(strategy, junk)


anthropic_usage_dict = st.fixed_dictionaries(
    {},
    optional={
        "input_tokens": counter,
        "output_tokens": counter,
        "cache_read_input_tokens": counter,
        "cache_creation_input_tokens": counter,
        "cache_creation": maybe(
            st.fixed_dictionaries(
                {}, optional={"ephemeral_5m_input_tokens": counter, "ephemeral_1h_input_tokens": counter}
            )
        ),
    },
)
chat_usage_dict = st.fixed_dictionaries(
    {},
    optional={
        "prompt_tokens": counter,
        "completion_tokens": counter,
        "total_tokens": counter,
        "prompt_tokens_details": maybe(
            st.fixed_dictionaries({}, optional={"cached_tokens": counter, "cache_write_tokens": counter})
        ),
    },
)
responses_usage_dict = st.fixed_dictionaries(
    {},
    optional={
        "input_tokens": counter,
        "output_tokens": counter,
        "total_tokens": counter,
        "input_tokens_details": maybe(
            st.fixed_dictionaries({}, optional={"cached_tokens": counter, "cache_write_tokens": counter})
        ),
    },
)


# -- the reference ---------------------------------------------------------------------------------


def count(value: object) -> int:
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return min(max(value, 0), 10**9)
    if isinstance(value, float) and math.isfinite(value) and value > 0:
        return min(int(value), 10**9)
    return 0


def _has_counter(mapping: dict[str, Any], names: tuple[str, ...]) -> bool:
    return any(mapping.get(name) is not None for name in names)


def reference_anthropic(usage: Any) -> TokenUsage | None:
    if not isinstance(usage, dict):
        return None
    names = ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens",
             "cache_creation")  # fmt: skip
    if not _has_counter(usage, names):
        return None
    read = count(usage.get("cache_read_input_tokens"))
    write = count(usage.get("cache_creation_input_tokens"))
    details = usage.get("cache_creation")
    write_1h = 0
    if isinstance(details, dict):
        write_1h = count(details.get("ephemeral_1h_input_tokens"))
        write = max(write, count(details.get("ephemeral_5m_input_tokens")) + write_1h)
    return TokenUsage(count(usage.get("input_tokens")) + read + write, count(usage.get("output_tokens")), read,
                      write, min(write_1h, write))  # fmt: skip


def reference_openai(usage: Any, input_name: str, output_name: str, details_name: str) -> TokenUsage | None:
    if not isinstance(usage, dict) or not _has_counter(usage, (input_name, output_name)):
        return None
    details = usage.get(details_name)
    read = write = 0
    if isinstance(details, dict):
        read, write = count(details.get("cached_tokens")), count(details.get("cache_write_tokens"))
    return TokenUsage(max(count(usage.get(input_name)), read + write), count(usage.get(output_name)), read, write)


def reference_chat(usage: Any) -> TokenUsage | None:
    return reference_openai(usage, "prompt_tokens", "completion_tokens", "prompt_tokens_details")


def reference_responses(usage: Any) -> TokenUsage | None:
    return reference_openai(usage, "input_tokens", "output_tokens", "input_tokens_details")


def all_rates(rates: Rates) -> list[Rates]:
    return [rates, *(tier for _, tier in rates.tiers)]


def upper_bound_micros(rates: Rates, usage: TokenUsage) -> int:
    """Every reported input token at the dearest input rate of any tier, every output token at the
    dearest output rate: no correct charge of this usage can exceed it."""
    per_input = max(max(r.input, r.cache_read, r.cache_write, r.cache_write_1h) for r in all_rates(rates))
    per_output = max(r.output for r in all_rates(rates))
    pico: int = usage.input_tokens * per_input + usage.output_tokens * per_output
    return -(-pico // 1_000_000)


PRICES = PriceBook()


def plain(value: Any) -> Any:
    """An SDK object as the plain data it holds (the SDKs coerce some values, e.g. "12" to 12, when
    they build objects), so the reference reads exactly what the instrumented code was given."""
    fields = getattr(value, "__pydantic_fields_set__", None)
    if fields is not None:
        data = {name: plain(item) for name, item in vars(value).items()}
        data.update({name: plain(item) for name, item in (getattr(value, "__pydantic_extra__", None) or {}).items()})
        return data
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value
