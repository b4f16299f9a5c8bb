"""The worst case is computed from the body the SDK sends: ``extra_body`` merged over the arguments.

``create(max_tokens=16, extra_body={"max_tokens": 16000})`` sends 16000: it must be reserved (and
refused) as 16000, and a clamp must lower the value the SDK will send, in ``extra_body``.
"""

from __future__ import annotations

from typing import Any

import pytest

import spendfuse
from spendfuse.testing import FakeProvider, FakeUsage

SONNET = "claude-sonnet-4-5"  # $15 per MTok of output: 15 micro-dollars a token
GPT = "gpt-4o"  # $10 per MTok of output
MESSAGES = [{"role": "user", "content": "What is the weather in Paris?"}]
USAGE = FakeUsage(input_tokens=10, output_tokens=20)


def _reserved_micros(telemetry: Any) -> int:
    spans = telemetry.spans("chat ")
    return round(spans[-1].attributes["spendfuse.reserved.usd"] * 1_000_000)


def test_extra_body_max_tokens_is_what_gets_reserved(instrument: Any, telemetry: Any) -> None:
    instrument()
    fake = FakeProvider(usage=USAGE)
    client = fake.anthropic_client()
    # A run each: a run remembers its conversations' reported sizes, which would change the estimate.
    with spendfuse.run("plain-16000"):
        client.messages.create(model=SONNET, max_tokens=16000, messages=MESSAGES)
    plain_16000 = _reserved_micros(telemetry)
    with spendfuse.run("plain-16"):
        client.messages.create(model=SONNET, max_tokens=16, messages=MESSAGES)
    plain_16 = _reserved_micros(telemetry)
    with spendfuse.run("extra"):
        client.messages.create(model=SONNET, max_tokens=16, messages=MESSAGES, extra_body={"max_tokens": 16000})
    overridden = _reserved_micros(telemetry)
    assert plain_16000 - plain_16 == (16000 - 16) * 15
    assert overridden == plain_16000
    assert fake.requests[-1].json is not None and fake.requests[-1].json["max_tokens"] == 16000
    assert telemetry.spans("chat ")[-1].attributes["gen_ai.request.max_tokens"] == 16000


def test_extra_body_n_and_messages_count_for_openai(instrument: Any, telemetry: Any) -> None:
    instrument()
    fake = FakeProvider(usage=USAGE)
    client = fake.openai_client()
    with spendfuse.run("one"):
        client.chat.completions.create(model=GPT, messages=MESSAGES, max_tokens=100)
    one = _reserved_micros(telemetry)
    with spendfuse.run("three"):
        client.chat.completions.create(model=GPT, messages=MESSAGES, max_tokens=100, extra_body={"n": 3})
    three = _reserved_micros(telemetry)
    longer = [{"role": "user", "content": "word " * 2000}]
    with spendfuse.run("longer"):
        client.chat.completions.create(model=GPT, messages=MESSAGES, max_tokens=100, extra_body={"messages": longer})
    long_prompt = _reserved_micros(telemetry)
    assert three - one == 2 * 100 * 10  # two more choices of 100 tokens at 10 micro-dollars each
    assert long_prompt > one + 2000 * 2.5  # the prompt the SDK sends, not the one passed as an argument


def test_a_merged_max_tokens_that_does_not_fit_is_refused_before_sending(instrument: Any, telemetry: Any) -> None:
    instrument()
    fake = FakeProvider(usage=USAGE)
    client = fake.anthropic_client()
    with spendfuse.run("extra", budget=spendfuse.Budget(usd=0.10)):  # 16000 output tokens cost $0.24
        with pytest.raises(spendfuse.CostLimitExceeded) as raised:
            client.messages.create(model=SONNET, max_tokens=16, messages=MESSAGES, extra_body={"max_tokens": 16000})
        assert fake.request_count == 0
        assert raised.value.requested > 0.24
        client.messages.create(model=SONNET, max_tokens=16, messages=MESSAGES)  # the argument alone fits
    assert fake.request_count == 1


def test_a_clamp_lowers_max_tokens_where_the_sdk_takes_it_from(instrument: Any, telemetry: Any) -> None:
    instrument(clamp=True, clamp_floor=16)
    fake = FakeProvider(usage=USAGE)
    extra = {"max_tokens": 4096}
    with spendfuse.run("clamp", budget=spendfuse.Budget(tokens=600)):
        fake.anthropic_client().messages.create(model=SONNET, max_tokens=16, messages=MESSAGES, extra_body=extra)
    sent = fake.requests[0].json
    assert sent is not None
    clamped = telemetry.span("chat ").attributes["spendfuse.clamped.max_tokens"]
    assert 16 <= clamped < 600
    assert sent["max_tokens"] == clamped
    assert extra == {"max_tokens": 4096}  # the caller's dict is left alone
