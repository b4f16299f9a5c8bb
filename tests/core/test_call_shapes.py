"""Every call shape of both SDKs: one span, exact usage and cost, unchanged return values."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anthropic
import openai
import pydantic
import pytest

import spendfuse
from spendfuse.testing import FakeProvider, FakeUsage, Reply

USAGE = FakeUsage(input_tokens=1000, output_tokens=200)
# claude-sonnet-4-5: $3 / $15 per MTok; gpt-4o: $2.50 / $10 per MTok (genai-prices snapshot).
SONNET_COST = 1000 * 3 + 200 * 15  # micro-dollars
GPT4O_COST = int(1000 * 2.5 + 200 * 10)
SONNET = "claude-sonnet-4-5"
GPT = "gpt-4o"
MESSAGES = [{"role": "user", "content": "What is the weather in Paris?"}]


class Weather(pydantic.BaseModel):
    city: str
    sunny: bool


WEATHER_JSON = '{"city": "Paris", "sunny": true}'


@dataclass
class Shape:
    name: str
    provider: str
    stream: bool
    run: Callable[[FakeProvider], Any]
    reply: Reply | None = None
    check: Callable[[Any], None] | None = None


def _drain(stream: Any) -> str:
    parts = []
    for event in stream:
        delta = getattr(event, "delta", None)
        text = getattr(delta, "text", None) if delta is not None else None
        if text:
            parts.append(text)
    return "".join(parts)


def a_create(fake: FakeProvider) -> Any:
    return fake.anthropic_client().messages.create(model=SONNET, max_tokens=1024, messages=MESSAGES)


def a_create_stream(fake: FakeProvider) -> Any:
    stream = fake.anthropic_client().messages.create(model=SONNET, max_tokens=1024, messages=MESSAGES, stream=True)
    assert isinstance(stream, anthropic.Stream)
    return _drain(stream)


def a_stream_helper(fake: FakeProvider) -> Any:
    with fake.anthropic_client().messages.stream(model=SONNET, max_tokens=1024, messages=MESSAGES) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert final.content[0].text == text
    return text


def a_parse(fake: FakeProvider) -> Any:
    if not hasattr(anthropic.resources.Messages, "parse"):
        pytest.skip("this anthropic release has no messages.parse")
    message = fake.anthropic_client().messages.parse(
        model=SONNET, max_tokens=1024, messages=MESSAGES, output_format=Weather
    )
    return message.parsed_output


def a_beta_create(fake: FakeProvider) -> Any:
    return fake.anthropic_client().beta.messages.create(model=SONNET, max_tokens=1024, messages=MESSAGES)


def a_beta_stream(fake: FakeProvider) -> Any:
    with fake.anthropic_client().beta.messages.stream(model=SONNET, max_tokens=1024, messages=MESSAGES) as stream:
        return stream.get_final_message()


def a_raw(fake: FakeProvider) -> Any:
    raw = fake.anthropic_client().messages.with_raw_response.create(model=SONNET, max_tokens=1024, messages=MESSAGES)
    assert raw.headers.get("content-type", "").startswith("application/json")
    return raw.parse()


def a_streaming_response(fake: FakeProvider) -> Any:
    with fake.anthropic_client().messages.with_streaming_response.create(
        model=SONNET, max_tokens=1024, messages=MESSAGES
    ) as response:
        return response.parse()


def a_streaming_response_stream(fake: FakeProvider) -> Any:
    with fake.anthropic_client().messages.with_streaming_response.create(
        model=SONNET, max_tokens=1024, messages=MESSAGES, stream=True
    ) as response:
        return _drain(response.parse())


def a_async_create(fake: FakeProvider) -> Any:
    async def go() -> Any:
        return await fake.async_anthropic_client().messages.create(model=SONNET, max_tokens=1024, messages=MESSAGES)

    return asyncio.run(go())


def a_async_stream(fake: FakeProvider) -> Any:
    async def go() -> Any:
        client = fake.async_anthropic_client()
        stream = await client.messages.create(model=SONNET, max_tokens=1024, messages=MESSAGES, stream=True)
        assert isinstance(stream, anthropic.AsyncStream)
        parts = []
        async for event in stream:
            text = getattr(getattr(event, "delta", None), "text", None)
            if text:
                parts.append(text)
        return "".join(parts)

    return asyncio.run(go())


def a_async_stream_helper(fake: FakeProvider) -> Any:
    async def go() -> Any:
        async with fake.async_anthropic_client().messages.stream(
            model=SONNET, max_tokens=1024, messages=MESSAGES
        ) as stream:
            text = "".join([t async for t in stream.text_stream])
            await stream.get_final_message()
            return text

    return asyncio.run(go())


def o_create(fake: FakeProvider) -> Any:
    return fake.openai_client().chat.completions.create(model=GPT, messages=MESSAGES, max_tokens=512)


def o_create_stream_usage(fake: FakeProvider) -> Any:
    stream = fake.openai_client().chat.completions.create(
        model=GPT, messages=MESSAGES, max_tokens=512, stream=True, stream_options={"include_usage": True}
    )
    assert isinstance(stream, openai.Stream)
    return "".join(c.choices[0].delta.content or "" for c in stream if c.choices)


def o_parse(fake: FakeProvider) -> Any:
    completion = fake.openai_client().chat.completions.parse(
        model=GPT, messages=MESSAGES, max_tokens=512, response_format=Weather
    )
    return completion.choices[0].message.parsed


def o_stream_helper(fake: FakeProvider) -> Any:
    with fake.openai_client().chat.completions.stream(
        model=GPT, messages=MESSAGES, max_tokens=512, stream_options={"include_usage": True}
    ) as stream:
        for _event in stream:
            pass
        return stream.get_final_completion().choices[0].message.content


def o_responses_create(fake: FakeProvider) -> Any:
    return fake.openai_client().responses.create(model=GPT, input="What is the weather?", max_output_tokens=512)


def o_responses_stream(fake: FakeProvider) -> Any:
    stream = fake.openai_client().responses.create(
        model=GPT, input="What is the weather?", max_output_tokens=512, stream=True
    )
    return "".join(e.delta for e in stream if e.type == "response.output_text.delta")


def o_responses_stream_helper(fake: FakeProvider) -> Any:
    with fake.openai_client().responses.stream(model=GPT, input="What is the weather?", max_output_tokens=512) as s:
        for _event in s:
            pass
        return s.get_final_response().output_text


def o_responses_parse(fake: FakeProvider) -> Any:
    return (
        fake.openai_client()
        .responses.parse(model=GPT, input="What is the weather?", max_output_tokens=512, text_format=Weather)
        .output_parsed
    )


def o_raw(fake: FakeProvider) -> Any:
    raw = fake.openai_client().chat.completions.with_raw_response.create(model=GPT, messages=MESSAGES, max_tokens=512)
    return raw.parse()


def o_streaming_response(fake: FakeProvider) -> Any:
    with fake.openai_client().chat.completions.with_streaming_response.create(
        model=GPT, messages=MESSAGES, max_tokens=512
    ) as response:
        return response.parse()


def o_async_create(fake: FakeProvider) -> Any:
    async def go() -> Any:
        return await fake.async_openai_client().chat.completions.create(model=GPT, messages=MESSAGES, max_tokens=512)

    return asyncio.run(go())


def o_async_stream(fake: FakeProvider) -> Any:
    async def go() -> Any:
        stream = await fake.async_openai_client().chat.completions.create(
            model=GPT, messages=MESSAGES, max_tokens=512, stream=True, stream_options={"include_usage": True}
        )
        assert isinstance(stream, openai.AsyncStream)
        return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

    return asyncio.run(go())


def o_async_responses_stream(fake: FakeProvider) -> Any:
    async def go() -> Any:
        async with fake.async_openai_client().responses.stream(
            model=GPT, input="What is the weather?", max_output_tokens=512
        ) as stream:
            async for _event in stream:
                pass
            return (await stream.get_final_response()).output_text

    return asyncio.run(go())


JSON = Reply.text(WEATHER_JSON)
SHAPES = [
    Shape("anthropic.create", "anthropic", False, a_create),
    Shape("anthropic.create(stream)", "anthropic", True, a_create_stream),
    Shape("anthropic.stream()", "anthropic", True, a_stream_helper),
    Shape("anthropic.parse", "anthropic", False, a_parse, JSON, lambda r: r == Weather(city="Paris", sunny=True)),
    Shape("anthropic.beta.create", "anthropic", False, a_beta_create),
    Shape("anthropic.beta.stream", "anthropic", True, a_beta_stream),
    Shape("anthropic.with_raw_response", "anthropic", False, a_raw),
    Shape("anthropic.with_streaming_response", "anthropic", False, a_streaming_response),
    Shape("anthropic.with_streaming_response(stream)", "anthropic", True, a_streaming_response_stream),
    Shape("anthropic.async.create", "anthropic", False, a_async_create),
    Shape("anthropic.async.create(stream)", "anthropic", True, a_async_stream),
    Shape("anthropic.async.stream()", "anthropic", True, a_async_stream_helper),
    Shape("openai.chat.create", "openai", False, o_create),
    Shape("openai.chat.create(stream, usage)", "openai", True, o_create_stream_usage),
    Shape("openai.chat.parse", "openai", False, o_parse, JSON),
    Shape("openai.chat.stream()", "openai", True, o_stream_helper),
    Shape("openai.responses.create", "openai", False, o_responses_create),
    Shape("openai.responses.create(stream)", "openai", True, o_responses_stream),
    Shape("openai.responses.stream()", "openai", True, o_responses_stream_helper),
    Shape("openai.responses.parse", "openai", False, o_responses_parse, JSON),
    Shape("openai.chat.with_raw_response", "openai", False, o_raw),
    Shape("openai.chat.with_streaming_response", "openai", False, o_streaming_response),
    Shape("openai.async.chat.create", "openai", False, o_async_create),
    Shape("openai.async.chat.create(stream)", "openai", True, o_async_stream),
    Shape("openai.async.responses.stream()", "openai", True, o_async_responses_stream),
]


@pytest.mark.parametrize("shape", SHAPES, ids=[s.name for s in SHAPES])
def test_every_call_shape_is_traced_and_priced_once(shape: Shape, instrument: Any, telemetry: Any) -> None:
    instrument()
    fake = FakeProvider(usage=USAGE)
    if shape.reply is not None:
        fake.enqueue(shape.reply)
    with spendfuse.run("shape-run", user_id="alice") as run:
        result = shape.run(fake)
    if shape.check is not None:
        shape.check(result)

    assert fake.request_count == 1
    model = SONNET if shape.provider == "anthropic" else GPT
    cost = SONNET_COST if shape.provider == "anthropic" else GPT4O_COST
    span = telemetry.span("chat ")
    assert span.name == f"chat {model}"
    attributes = dict(span.attributes or {})
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.provider.name"] == shape.provider
    assert attributes["gen_ai.request.model"] == model
    assert attributes["gen_ai.response.model"] == model
    assert attributes["gen_ai.request.stream"] is shape.stream
    assert attributes["gen_ai.usage.input_tokens"] == 1000
    assert attributes["gen_ai.usage.output_tokens"] == 200
    assert attributes["spendfuse.cost.usd"] == pytest.approx(cost / 1e6, abs=1e-12)
    assert attributes["spendfuse.run.id"] == "shape-run"
    assert attributes["user.id"] == "alice"
    assert attributes["server.address"]
    assert "gen_ai.response.id" in attributes
    assert "spendfuse.usage.estimated" not in attributes
    assert run.spent.usd_micros == cost
    assert run.spent.turns == 1
    assert run.spent.input_tokens == 1000 and run.spent.output_tokens == 200
    assert telemetry.metric_sum("spendfuse.cost") == pytest.approx(cost / 1e6)
