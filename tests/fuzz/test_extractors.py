"""Fuzzed usage records, responses and stream events, straight into the extractors.

Properties: nothing raises; every count is a non-negative int; the parts never exceed the whole;
the numbers are exactly the reference reading of what was reported; and the price of what was
extracted is never negative and never above the reported tokens at the dearest rates.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any

import anthropic.types
import openai.types
import openai.types.responses
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spendfuse.budgets.usage import TokenUsage, anthropic_usage, openai_chat_usage, openai_responses_usage
from spendfuse.instrumentation import anthropic as anthropic_extract
from spendfuse.instrumentation import openai as openai_extract
from spendfuse.instrumentation.records import ResponseInfo

from ._strategies import (
    PRICES,
    anthropic_usage_dict,
    chat_usage_dict,
    counter,
    json_value,
    junk,
    maybe,
    plain,
    reference_anthropic,
    reference_chat,
    reference_responses,
    responses_usage_dict,
    upper_bound_micros,
)

FUZZ = settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

SONNET_RATES = PRICES.rates("anthropic", "claude-sonnet-4-5")
GPT_RATES = PRICES.rates("openai", "gpt-4o")


def assert_sane(usage: TokenUsage | None) -> None:
    if usage is None:
        return
    for name in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "cache_write_1h_tokens"):
        value = getattr(usage, name)
        assert type(value) is int and value >= 0, (name, value)
    assert usage.cache_read_tokens + usage.cache_write_tokens <= usage.input_tokens
    assert usage.cache_write_1h_tokens <= usage.cache_write_tokens


def assert_priced_within_reported(usage: TokenUsage | None, rates: Any) -> None:
    if usage is None:
        return
    cost = PRICES.cost_micros(rates, usage)
    assert type(cost) is int and 0 <= cost <= upper_bound_micros(rates, usage)


# -- usage records -----------------------------------------------------------------------------------


Forms = Callable[[dict[str, Any]], Any]
FORMS: dict[str, Forms] = {
    "dict": lambda d: d,
    "mappingproxy": types.MappingProxyType,
    "namespace": lambda d: types.SimpleNamespace(**d),
}


@FUZZ
@given(usage=st.one_of(anthropic_usage_dict, junk), form=st.sampled_from(sorted(FORMS)))
def test_anthropic_usage_is_read_exactly_as_reported(usage: Any, form: str) -> None:
    shaped = FORMS[form](usage) if isinstance(usage, dict) else usage
    read = anthropic_usage(shaped)
    assert read == reference_anthropic(usage)
    assert_sane(read)
    assert_priced_within_reported(read, SONNET_RATES)


@FUZZ
@given(usage=anthropic_usage_dict)
def test_anthropic_sdk_usage_object(usage: dict[str, Any]) -> None:
    # What the SDK hands over: a model built without validation, optional fields defaulting to None.
    built = anthropic.types.Usage.construct(**usage)
    read = anthropic_usage(built)
    assert read == reference_anthropic(plain(built))
    assert_sane(read)


@FUZZ
@given(usage=st.one_of(chat_usage_dict, junk), form=st.sampled_from(sorted(FORMS)))
def test_chat_usage_is_read_exactly_as_reported(usage: Any, form: str) -> None:
    shaped = FORMS[form](usage) if isinstance(usage, dict) else usage
    read = openai_chat_usage(shaped)
    assert read == reference_chat(usage)
    assert_sane(read)
    assert_priced_within_reported(read, GPT_RATES)
    if isinstance(usage, dict):
        built = openai.types.CompletionUsage.construct(**usage)
        assert openai_chat_usage(built) == reference_chat(plain(built))


@FUZZ
@given(usage=st.one_of(responses_usage_dict, junk), form=st.sampled_from(sorted(FORMS)))
def test_responses_usage_is_read_exactly_as_reported(usage: Any, form: str) -> None:
    shaped = FORMS[form](usage) if isinstance(usage, dict) else usage
    read = openai_responses_usage(shaped)
    assert read == reference_responses(usage)
    assert_sane(read)
    assert_priced_within_reported(read, GPT_RATES)
    if isinstance(usage, dict):
        built = openai.types.responses.ResponseUsage.construct(**usage)
        assert openai_responses_usage(built) == reference_responses(plain(built))


# -- whole responses ---------------------------------------------------------------------------------

content_block = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": maybe(st.text())}),
    st.fixed_dictionaries(
        {"type": st.just("tool_use"), "id": maybe(st.text()), "name": maybe(st.text()), "input": json_value}
    ),
    json_value,
)
anthropic_message = st.fixed_dictionaries(
    {},
    optional={
        "id": json_value,
        "model": json_value,
        "type": st.just("message"),
        "stop_reason": json_value,
        "content": st.one_of(st.lists(content_block, max_size=4), json_value),
        "usage": st.one_of(anthropic_usage_dict, junk),
    },
)
tool_call = st.fixed_dictionaries(
    {}, optional={"index": junk, "id": junk, "function": maybe(st.fixed_dictionaries(
        {}, optional={"name": maybe(st.text()), "arguments": maybe(st.text())}))}
)  # fmt: skip
chat_message = st.fixed_dictionaries(
    {}, optional={"content": maybe(st.text()), "refusal": junk, "tool_calls": maybe(st.lists(tool_call, max_size=3))}
)
chat_completion = st.fixed_dictionaries(
    {},
    optional={
        "id": json_value,
        "model": json_value,
        "choices": maybe(st.lists(st.one_of(
            st.fixed_dictionaries({}, optional={"finish_reason": junk, "message": maybe(chat_message)}), json_value
        ), max_size=3)),
        "usage": st.one_of(chat_usage_dict, junk),
    },
)  # fmt: skip
output_item = st.one_of(
    st.fixed_dictionaries({"type": st.just("function_call"), "name": maybe(st.text()), "arguments": maybe(st.text())}),
    st.fixed_dictionaries({"type": st.just("message"), "content": maybe(st.lists(
        st.fixed_dictionaries({"type": st.just("output_text"), "text": maybe(st.text())}), max_size=2))}),
    json_value,
)  # fmt: skip
responses_response = st.fixed_dictionaries(
    {},
    optional={
        "id": json_value,
        "model": json_value,
        "status": json_value,
        "incomplete_details": json_value,
        "output": maybe(st.lists(output_item, max_size=3)),
        "usage": st.one_of(responses_usage_dict, junk),
    },
)


def assert_info(info: ResponseInfo) -> None:
    assert isinstance(info, ResponseInfo)
    assert all(isinstance(signature, str) for signature in info.tool_calls)
    assert all(isinstance(reason, str) for reason in info.finish_reasons)
    assert type(info.output_chars) is int and info.output_chars >= 0
    assert type(info.output_chunks) is int and info.output_chunks >= 0
    assert_sane(info.usage)


@FUZZ
@given(message=st.one_of(anthropic_message, json_value))
def test_anthropic_extract_response(message: Any) -> None:
    info = anthropic_extract.extract_response("messages", message)
    assert_info(info)
    assert info.usage == reference_anthropic(message.get("usage") if isinstance(message, dict) else None)


@FUZZ
@given(completion=st.one_of(chat_completion, json_value))
def test_chat_extract_response(completion: Any) -> None:
    info = openai_extract.extract_response("chat", completion)
    assert_info(info)
    assert info.usage == reference_chat(completion.get("usage") if isinstance(completion, dict) else None)


@FUZZ
@given(response=st.one_of(responses_response, json_value))
def test_responses_extract_response(response: Any) -> None:
    info = openai_extract.extract_response("responses", response)
    assert_info(info)
    assert info.usage == reference_responses(response.get("usage") if isinstance(response, dict) else None)


# -- stream events -----------------------------------------------------------------------------------

anthropic_event = st.one_of(
    st.fixed_dictionaries({"type": st.just("message_start"), "message": maybe(st.fixed_dictionaries(
        {}, optional={"id": junk, "model": junk, "usage": st.one_of(anthropic_usage_dict, junk)}))}),
    st.fixed_dictionaries({"type": st.just("content_block_start"), "index": junk, "content_block": maybe(
        st.fixed_dictionaries({"type": st.sampled_from(["text", "tool_use"]), "name": junk}))}),
    st.fixed_dictionaries({"type": st.just("content_block_delta"), "delta": maybe(st.fixed_dictionaries(
        {}, optional={"type": junk, "text": maybe(st.text()), "partial_json": maybe(st.text())}))}),
    st.fixed_dictionaries({"type": st.just("content_block_stop")}),
    st.fixed_dictionaries({"type": st.just("message_delta"), "delta": maybe(st.fixed_dictionaries(
        {}, optional={"stop_reason": junk})), "usage": st.one_of(anthropic_usage_dict, junk)}),
    st.fixed_dictionaries({"type": st.sampled_from(["message_stop", "ping", "error"])}),
    json_value,
)  # fmt: skip
chat_chunk = st.fixed_dictionaries(
    {},
    optional={
        "id": junk,
        "model": junk,
        "choices": maybe(st.lists(st.fixed_dictionaries({}, optional={
            "delta": maybe(st.fixed_dictionaries({}, optional={
                "content": maybe(st.text()), "tool_calls": maybe(st.lists(tool_call, max_size=2))})),
            "finish_reason": junk}), max_size=2)),
        "usage": st.one_of(chat_usage_dict, junk),
    },
)  # fmt: skip
responses_event = st.one_of(
    st.fixed_dictionaries({"type": st.sampled_from(["response.output_text.delta",
                                                    "response.function_call_arguments.delta"]), "delta": junk}),
    st.fixed_dictionaries({"type": st.just("response.output_item.done"), "item": maybe(output_item)}),
    st.fixed_dictionaries({"type": st.sampled_from(["response.created", "response.completed", "response.incomplete",
                                                    "response.failed"]), "response": maybe(responses_response)}),
    json_value,
)  # fmt: skip


def merged_anthropic_usage(events: list[Any]) -> TokenUsage | None:
    """Counts are cumulative across message_start and message_delta: the latest non-null one wins."""
    parts: dict[str, Any] = {}
    seen = False
    for event in events:
        if not isinstance(event, dict):
            continue
        if event.get("type") == "message_start" and isinstance(event.get("message"), dict):
            usage = event["message"].get("usage")
        elif event.get("type") == "message_delta":
            usage = event.get("usage")
        else:
            continue
        if isinstance(usage, dict):
            seen = True
            parts.update({key: value for key, value in usage.items() if value is not None})
    return reference_anthropic(parts) if seen else None


@FUZZ
@given(events=st.lists(anthropic_event, max_size=8), capture=st.booleans())
def test_anthropic_stream_state(events: list[Any], capture: bool) -> None:
    state = anthropic_extract.StreamState("messages", capture)
    for event in events:
        state.observe(event)
    info = state.result()
    assert_info(info)
    assert info.usage == merged_anthropic_usage(events)
    assert_priced_within_reported(info.usage, SONNET_RATES)


def last_chat_usage(chunks: list[Any]) -> TokenUsage | None:
    found: TokenUsage | None = None
    for chunk in chunks:
        if isinstance(chunk, dict) and chunk.get("usage") is not None:
            found = reference_chat(chunk["usage"])
    return found


@FUZZ
@given(chunks=st.lists(st.one_of(chat_chunk, json_value), max_size=8), capture=st.booleans())
def test_chat_stream_state(chunks: list[Any], capture: bool) -> None:
    state = openai_extract.StreamState("chat", capture)
    for chunk in chunks:
        state.observe(chunk)
    info = state.result()
    assert_info(info)
    assert info.usage == last_chat_usage(chunks)
    assert_priced_within_reported(info.usage, GPT_RATES)


@FUZZ
@given(events=st.lists(responses_event, max_size=8), capture=st.booleans())
def test_responses_stream_state(events: list[Any], capture: bool) -> None:
    state = openai_extract.StreamState("responses", capture)
    expected: TokenUsage | None = None
    for event in events:
        state.observe(event)
        kind = event.get("type") if isinstance(event, dict) else None
        if kind in ("response.completed", "response.incomplete", "response.failed"):
            final = event.get("response")
            expected = reference_responses(final.get("usage") if isinstance(final, dict) else None)
    info = state.result()
    assert_info(info)
    assert info.usage == expected
    assert_priced_within_reported(info.usage, GPT_RATES)


@FUZZ
@given(value=counter)
def test_a_lone_counter_is_never_negative_or_fractional(value: Any) -> None:
    for usage in (anthropic_usage({"output_tokens": value}), openai_chat_usage({"completion_tokens": value})):
        assert_sane(usage)
