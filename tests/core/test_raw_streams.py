"""Raw-response streams (#15 class 1): ``with_raw_response.create(stream=True)`` and friends.

The stream that ``parse()`` returns is watched and settled from its own events: exact usage, one
span, the SDK's own objects (types and identity) handed back, no internal error logged.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import anthropic
import openai
import pytest

import spendfuse
from spendfuse.testing import FakeProvider, FakeUsage

USAGE = FakeUsage(input_tokens=1000, output_tokens=200)
GPT, SONNET = "gpt-4o", "claude-sonnet-4-5"
GPT4O_COST = int(1000 * 2.5 + 200 * 10)  # $2.50 / $10 per MTok
SONNET_COST = 1000 * 3 + 200 * 15  # $3 / $15 per MTok
MESSAGES = [{"role": "user", "content": "What is the weather in Paris?"}]
CHAT = {"model": GPT, "messages": MESSAGES, "max_tokens": 512, "stream": True,
        "stream_options": {"include_usage": True}}  # fmt: skip
RESPONSES = {"model": GPT, "input": "What is the weather?", "max_output_tokens": 512, "stream": True}
MESSAGES_KW = {"model": SONNET, "max_tokens": 1024, "messages": MESSAGES, "stream": True}


def _text(item: Any) -> str:
    choices = getattr(item, "choices", None)
    if choices is not None:
        return (choices[0].delta.content or "") if choices else ""
    if getattr(item, "type", None) == "response.output_text.delta":
        return str(item.delta)
    delta = getattr(item, "delta", None)
    return str(getattr(delta, "text", "") or "")


def _sync(resource: Callable[[FakeProvider], Any], kwargs: dict[str, Any], stream_type: type) -> Callable[..., str]:
    def run(fake: FakeProvider) -> str:
        raw = resource(fake).with_raw_response.create(**kwargs)
        stream = raw.parse()
        assert type(stream) is stream_type
        assert raw.parse() is stream  # the SDK's cache still answers with the same object
        return "".join(_text(item) for item in stream)

    return run


def _async(resource: Callable[[FakeProvider], Any], kwargs: dict[str, Any], stream_type: type) -> Callable[..., str]:
    def run(fake: FakeProvider) -> str:
        async def go() -> str:
            raw = await resource(fake).with_raw_response.create(**kwargs)
            parsed = raw.parse()
            stream = await parsed if asyncio.iscoroutine(parsed) else parsed
            assert type(stream) is stream_type
            return "".join([_text(item) async for item in stream])

        return asyncio.run(go())

    return run


def _chained(resource: Callable[[FakeProvider], Any], kwargs: dict[str, Any]) -> Callable[..., str]:
    # create(...).parse(): the raw response is dropped as soon as parse is looked up.
    def run(fake: FakeProvider) -> str:
        return "".join(_text(item) for item in resource(fake).with_raw_response.create(**kwargs).parse())

    return run


def _streaming(resource: Callable[[FakeProvider], Any], kwargs: dict[str, Any]) -> Callable[..., str]:
    def run(fake: FakeProvider) -> str:
        with resource(fake).with_streaming_response.create(**kwargs) as response:
            return "".join(_text(item) for item in response.parse())

    return run


def _astreaming(resource: Callable[[FakeProvider], Any], kwargs: dict[str, Any]) -> Callable[..., str]:
    def run(fake: FakeProvider) -> str:
        async def go() -> str:
            async with resource(fake).with_streaming_response.create(**kwargs) as response:
                return "".join([_text(item) async for item in await response.parse()])

        return asyncio.run(go())

    return run


def chat(fake: FakeProvider) -> Any:
    return fake.openai_client().chat.completions


def achat(fake: FakeProvider) -> Any:
    return fake.async_openai_client().chat.completions


def responses(fake: FakeProvider) -> Any:
    return fake.openai_client().responses


def aresponses(fake: FakeProvider) -> Any:
    return fake.async_openai_client().responses


def messages(fake: FakeProvider) -> Any:
    return fake.anthropic_client().messages


def amessages(fake: FakeProvider) -> Any:
    return fake.async_anthropic_client().messages


SHAPES: dict[str, tuple[str, Callable[[FakeProvider], str]]] = {
    "openai.chat.raw(stream)": ("openai", _sync(chat, CHAT, openai.Stream)),
    "openai.async.chat.raw(stream)": ("openai", _async(achat, CHAT, openai.AsyncStream)),
    "openai.responses.raw(stream)": ("openai", _sync(responses, RESPONSES, openai.Stream)),
    "openai.async.responses.raw(stream)": ("openai", _async(aresponses, RESPONSES, openai.AsyncStream)),
    "openai.chat.raw(stream).parse() chained": ("openai", _chained(chat, CHAT)),
    "openai.responses.raw(stream).parse() chained": ("openai", _chained(responses, RESPONSES)),
    "anthropic.raw(stream).parse() chained": ("anthropic", _chained(messages, MESSAGES_KW)),
    "openai.chat.streaming_response(stream)": ("openai", _streaming(chat, CHAT)),
    "openai.async.chat.streaming_response(stream)": ("openai", _astreaming(achat, CHAT)),
    "openai.responses.streaming_response(stream)": ("openai", _streaming(responses, RESPONSES)),
    "anthropic.raw(stream)": ("anthropic", _sync(messages, MESSAGES_KW, anthropic.Stream)),
    "anthropic.async.raw(stream)": ("anthropic", _async(amessages, MESSAGES_KW, anthropic.AsyncStream)),
    "anthropic.async.streaming_response(stream)": ("anthropic", _astreaming(amessages, MESSAGES_KW)),
}


@pytest.mark.parametrize("name", list(SHAPES))
def test_a_raw_stream_settles_from_its_events(
    name: str, instrument: Any, telemetry: Any, caplog: pytest.LogCaptureFixture
) -> None:
    provider, run_shape = SHAPES[name]
    instrument()
    fake = FakeProvider(usage=USAGE)
    # The same call without spendfuse: the text the caller reads must not change.
    spendfuse.uninstrument()
    expected = run_shape(fake)
    instrument()
    caplog.set_level(logging.DEBUG, logger="spendfuse")
    with spendfuse.run("raw-stream") as run:
        text = run_shape(fake)
    assert text == expected and text

    cost = GPT4O_COST if provider == "openai" else SONNET_COST
    span = telemetry.span("chat ")
    attributes = dict(span.attributes or {})
    assert attributes["gen_ai.request.stream"] is True
    assert attributes["gen_ai.usage.input_tokens"] == 1000
    assert attributes["gen_ai.usage.output_tokens"] == 200
    assert "spendfuse.usage.estimated" not in attributes
    assert run.spent.usd_micros == cost
    assert run.spent.turns == 1
    assert not [r for r in caplog.records if "internal error" in r.getMessage()]


def test_a_raw_stream_abandoned_before_parse_charges_the_worst_case(instrument: Any) -> None:
    # Read in a way we cannot observe (never parsed): charged the reservation, never nothing.
    instrument()
    fake = FakeProvider(usage=USAGE)
    with spendfuse.run("raw-unparsed") as run:
        raw = fake.openai_client().chat.completions.with_raw_response.create(**CHAT)
        assert raw.http_response.status_code == 200
        del raw
        import gc

        gc.collect()
    assert run.spent.usd_micros > GPT4O_COST
