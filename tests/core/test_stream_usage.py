"""Chat streams that did not ask for usage (#15 class 2): asked for on OpenAI hosts, chunk hidden.

The fake answers ``stream_options.include_usage`` exactly as the API does (an extra chunk with
empty ``choices``, ``"usage": null`` on every other chunk), so each test compares what the caller
reads with and without spendfuse, chunk by chunk, serialised the way user code would
(``to_dict()`` leaves out unset fields, so an extra ``usage: null`` would show).
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable
from typing import Any

import openai
import pytest

import spendfuse
from spendfuse.config.settings import load_settings
from spendfuse.errors import ConfigError
from spendfuse.testing import FakeProvider, FakeUsage, Reply

USAGE = FakeUsage(input_tokens=1000, output_tokens=200)
GPT = "gpt-4o"
GPT4O_COST = int(1000 * 2.5 + 200 * 10)  # $2.50 / $10 per MTok
MESSAGES = [{"role": "user", "content": "What is the weather in Paris?"}]
FAKE_HOST = "openai.fake.invalid"  # the host of the testing clients' base URL


def _seen(chunk: Any) -> dict[str, Any]:
    data: dict[str, Any] = chunk.to_dict()
    data.pop("created", None)  # the fake stamps the wall clock
    return data


def sync_create(fake: FakeProvider, **extra: Any) -> list[dict[str, Any]]:
    stream = fake.openai_client().chat.completions.create(model=GPT, messages=MESSAGES, stream=True, **extra)
    assert type(stream) is openai.Stream
    return [_seen(chunk) for chunk in stream]


def async_create(fake: FakeProvider, **extra: Any) -> list[dict[str, Any]]:
    async def go() -> list[dict[str, Any]]:
        stream = await fake.async_openai_client().chat.completions.create(
            model=GPT, messages=MESSAGES, stream=True, **extra
        )
        assert type(stream) is openai.AsyncStream
        return [_seen(chunk) async for chunk in stream]

    return asyncio.run(go())


def stream_helper(fake: FakeProvider, **extra: Any) -> list[dict[str, Any]]:
    with fake.openai_client().chat.completions.stream(model=GPT, messages=MESSAGES, **extra) as stream:
        events = [event.type for event in stream]
        final = stream.get_final_completion()
    final_dict = final.to_dict()
    final_dict.pop("created", None)
    return [{"events": events, "final": final_dict}]


def early_break(fake: FakeProvider, **extra: Any) -> list[dict[str, Any]]:
    # The caller stops at the finish chunk, as agents do: the usage chunk was never handed out.
    seen = []
    for chunk in fake.openai_client().chat.completions.create(model=GPT, messages=MESSAGES, stream=True, **extra):
        seen.append(_seen(chunk))
        if chunk.choices and chunk.choices[0].finish_reason:
            break
    return seen


SHAPES: dict[str, Callable[..., list[dict[str, Any]]]] = {
    "create(stream)": sync_create,
    "async create(stream)": async_create,
    "stream()": stream_helper,
}


def _baseline(run_shape: Callable[..., list[dict[str, Any]]], reply: Reply | None, **extra: Any) -> Any:
    fake = FakeProvider(usage=USAGE)
    if reply is not None:
        fake.enqueue(reply)
    return run_shape(fake, **extra)


@pytest.mark.parametrize("reply", [None, Reply.tool_call("search", {"q": "weather"})], ids=["text", "tool"])
@pytest.mark.parametrize("name", list(SHAPES))
def test_usage_is_asked_for_and_its_chunk_hidden(name: str, reply: Reply | None, instrument: Any, telemetry: Any
                                                 ) -> None:  # fmt: skip
    run_shape = SHAPES[name]
    expected = _baseline(run_shape, reply)  # not instrumented: what the caller reads without us
    assert expected

    instrument(stream_usage_hosts=[FAKE_HOST])
    fake = FakeProvider(usage=USAGE)
    if reply is not None:
        fake.enqueue(reply)
    with spendfuse.run("stream-usage") as run:
        seen = run_shape(fake)

    assert seen == expected
    sent = fake.requests[-1].json
    assert sent["stream_options"] == {"include_usage": True}
    attributes = dict(telemetry.span("chat ").attributes or {})
    assert attributes["gen_ai.usage.input_tokens"] == 1000
    assert attributes["gen_ai.usage.output_tokens"] == 200
    assert "spendfuse.usage.estimated" not in attributes
    assert run.spent.usd_micros == GPT4O_COST


def test_a_caller_that_asked_for_usage_still_sees_its_chunk(instrument: Any) -> None:
    expected = _baseline(sync_create, None, stream_options={"include_usage": True})
    assert expected[-1]["choices"] == [] and expected[-1]["usage"]["prompt_tokens"] == 1000
    instrument(stream_usage_hosts=[FAKE_HOST])
    with spendfuse.run("asked") as run:
        seen = sync_create(FakeProvider(usage=USAGE), stream_options={"include_usage": True})
    assert seen == expected
    assert run.spent.usd_micros == GPT4O_COST


def test_a_stream_broken_off_before_the_usage_chunk_is_charged_for_what_it_received(instrument: Any) -> None:
    expected = _baseline(early_break, None)
    instrument(stream_usage_hosts=[FAKE_HOST])
    with spendfuse.run("early") as run:
        seen = early_break(FakeProvider(usage=USAGE))
        gc.collect()  # the dropped stream settles as abandoned
        spendfuse.flush()
    assert seen == expected
    assert run.spent.usd_micros > 0 and run.spent.output_tokens > 0


def _unasked(instrument: Any, telemetry: Any, **settings: Any) -> FakeProvider:
    instrument(**settings)
    fake = FakeProvider(usage=USAGE)
    with spendfuse.run("unasked"):
        sync_create(fake)
    assert "stream_options" not in fake.requests[-1].json
    attributes = dict(telemetry.span("chat ").attributes or {})
    assert attributes["spendfuse.usage.estimated"] is True
    return fake


def test_other_hosts_are_never_asked(instrument: Any, telemetry: Any) -> None:
    _unasked(instrument, telemetry)  # the default hosts: OpenAI and Azure OpenAI only


def test_the_setting_turns_it_off(instrument: Any, telemetry: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPENDFUSE_STREAM_USAGE", "off")
    _unasked(instrument, telemetry, stream_usage_hosts=[FAKE_HOST])


def test_raw_shapes_are_never_asked(instrument: Any) -> None:
    instrument(stream_usage_hosts=[FAKE_HOST])
    fake = FakeProvider(usage=USAGE)
    with spendfuse.run("raw"):
        raw = fake.openai_client().chat.completions.with_raw_response.create(model=GPT, messages=MESSAGES, stream=True)
        lines = [line for line in raw.http_response.iter_lines() if line]
        raw.http_response.close()
    assert "stream_options" not in fake.requests[-1].json
    assert '"choices":[]' not in "".join(lines).replace(" ", "")
    with (
        spendfuse.run("streaming"),
        fake.openai_client().chat.completions.with_streaming_response.create(
            model=GPT, messages=MESSAGES, stream=True
        ) as response,
    ):
        list(response.iter_lines())
    assert "stream_options" not in fake.requests[-1].json


def test_extra_body_stream_options_are_kept_and_completed(instrument: Any) -> None:
    # The caller's own stream_options (through extra_body) are kept; its dict is not changed.
    instrument(stream_usage_hosts=["*.fake.invalid"])
    fake = FakeProvider(usage=USAGE)
    options = {"include_obfuscation": False}
    with spendfuse.run("extra") as run:
        sync_create(fake, extra_body={"stream_options": options})
    assert fake.requests[-1].json["stream_options"] == {"include_obfuscation": False, "include_usage": True}
    assert options == {"include_obfuscation": False}
    assert run.spent.usd_micros == GPT4O_COST


def test_hosts_setting_is_validated() -> None:
    settings = load_settings(environ={"SPENDFUSE_STREAM_USAGE_HOSTS": "api.openai.com, *.Example.com"})
    assert settings.stream_usage_hosts == ("api.openai.com", "*.example.com")
    assert load_settings(environ={}).stream_usage_hosts == ("api.openai.com", "*.openai.azure.com")
    with pytest.raises(ConfigError, match="stream_usage_hosts"):
        load_settings({"stream_usage_hosts": ["http://api.openai.com/"]})
    with pytest.raises(ConfigError, match="stream_usage_hosts"):
        load_settings({"stream_usage_hosts": 3})


def test_only_the_usage_chunk_is_withheld() -> None:
    from openai.types.chat import ChatCompletionChunk

    from spendfuse.instrumentation.stream_usage import usage_only_chunk

    base = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": GPT}
    # Azure sends a first chunk with empty choices and content-filter results, and no usage.
    azure_filter = ChatCompletionChunk.construct(**base, choices=[], prompt_filter_results=[])
    usage = ChatCompletionChunk.construct(
        **base, choices=[], usage={"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
    )
    delta = ChatCompletionChunk.construct(**base, choices=[{"index": 0, "delta": {"content": "hi"}}], usage=None)
    assert not usage_only_chunk(azure_filter)
    assert usage_only_chunk(usage)
    assert not usage_only_chunk(delta)
    assert "usage" not in delta.to_dict()  # the usage: null we caused is unmarked
