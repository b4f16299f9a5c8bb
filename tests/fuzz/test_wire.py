"""Fuzzed response bodies and SSE streams, end to end through the real SDK clients.

An ``httpx2.MockTransport`` serves the same fuzzed bytes to the bare SDK and then to the instrumented
one. Instrumented, the caller gets the very same outcome (equal result, or the same exception type:
the SDK's own parse errors are fine, none of ours may surface). And spendfuse's books stay right: the
call settles once, nothing stays reserved, the span is ended, the cost is never negative and never
unknown for a priced model; reported usage is charged exactly; without usage the charge is an
estimate that never exceeds the call's worst case.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx2
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.trace import ReadableSpan

import spendfuse
from spendfuse.budgets.usage import TokenUsage
from spendfuse.testing import clients

from ._strategies import (
    PRICES,
    anthropic_usage_dict,
    chat_usage_dict,
    json_value,
    plain,
    reference_anthropic,
    reference_chat,
    reference_responses,
    responses_usage_dict,
)
from .test_extractors import (
    anthropic_event,
    anthropic_message,
    chat_chunk,
    chat_completion,
    merged_anthropic_usage,
    responses_event,
    responses_response,
)

WIRE = settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
MAX_TOKENS = 64
SONNET = "claude-sonnet-4-5"
GPT = "gpt-4o"
MESSAGES = [{"role": "user", "content": "hello"}]


class Wire:
    """A mock transport that answers every request with the bytes set last."""

    def __init__(self) -> None:
        self.content_type = "application/json"
        self.body = b"{}"
        self.transport = httpx2.MockTransport(self._answer)

    def _answer(self, _request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": self.content_type}, content=self.body)

    def json(self, body: Any) -> None:
        self.content_type, self.body = "application/json", json.dumps(body).encode()

    def sse(self, events: list[Any], *, named: bool, done: bool = False) -> None:
        lines = []
        for item in events:
            kind = item.get("type") if isinstance(item, dict) else None
            if named and isinstance(kind, str) and kind.isprintable() and "\n" not in kind:
                lines.append(f"event: {kind}")
            lines.append(f"data: {json.dumps(item)}")
            lines.append("")
        if done:
            lines += ["data: [DONE]", ""]
        self.content_type, self.body = "text/event-stream", ("\n".join(lines) + "\n").encode()


@pytest.fixture
def wire() -> Wire:
    return Wire()


@pytest.fixture
def anthropic_client(wire: Wire) -> Iterator[Any]:
    client = clients.anthropic_client(transport=wire.transport)
    yield client
    client.close()


@pytest.fixture
def openai_client(wire: Wire) -> Iterator[Any]:
    client = clients.openai_client(transport=wire.transport)
    yield client
    client.close()


Outcome = tuple[str, Any]


def outcome(call: Callable[[], Any]) -> Outcome:
    """("ok", the result as plain data) or ("raised", the exception type)."""
    try:
        result = call()
        if isinstance(result, list):
            return "ok", [plain(item) for item in result]
        return "ok", plain(result)
    except Exception as error:
        return "raised", type(error)


def compare(wire_call: Callable[[], Any], telemetry: Any) -> tuple[Outcome, spendfuse.Run, ReadableSpan]:
    """The bare outcome must equal the instrumented one; returns it with the run and the call's span."""
    spendfuse.uninstrument()
    bare = outcome(wire_call)
    spendfuse.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider,
                         warn_at=None)  # fmt: skip
    telemetry.clear_spans()
    with spendfuse.run("fuzz", budget=spendfuse.Budget(usd=100)) as run:
        instrumented = outcome(wire_call)
    assert instrumented == bare
    event(f"sdk {bare[0]}")
    balance = run.balance
    assert (balance.flight_usd, balance.flight_turns, balance.flight_tokens) == (0, 0, 0)
    assert run.spent.turns == 1
    chats = telemetry.spans("chat ")
    assert len(chats) == 1, [span.name for span in telemetry.spans()]
    return bare, run, chats[0]


def check_money(run: spendfuse.Run, span: ReadableSpan, rates: Any, reported: TokenUsage | None) -> None:
    attributes: dict[str, Any] = dict(span.attributes or {})
    assert "spendfuse.cost.unknown" not in attributes
    assert run.spent.usd_micros >= 0
    assert run.spent.usd_micros == pytest.approx(attributes["spendfuse.cost.usd"] * 1_000_000, rel=1e-12, abs=0.5)
    event("usage reported" if reported is not None else "usage estimated")
    if reported is not None:
        assert run.spent.usd_micros == PRICES.cost_micros(rates, reported)
        assert (run.spent.input_tokens, run.spent.output_tokens) == (reported.input_tokens, reported.output_tokens)
    else:
        assert run.spent.output_tokens <= MAX_TOKENS
        assert run.spent.usd_micros <= round(attributes["spendfuse.reserved.usd"] * 1_000_000)


@pytest.fixture
def instrumented(telemetry: Any) -> Iterator[None]:
    yield
    spendfuse.uninstrument()


# -- JSON bodies -------------------------------------------------------------------------------------

# Mostly well-formed replies whose usage record is always there (its counters still fuzzed), so the
# exact-charge property is exercised as often as the estimate and the SDK-error paths.
anthropic_reply = st.fixed_dictionaries(
    {
        "id": st.just("msg_1"),
        "type": st.just("message"),
        "role": st.just("assistant"),
        "model": st.just(SONNET),
        "content": st.lists(st.fixed_dictionaries({"type": st.just("text"), "text": st.text()}), max_size=2),
        "stop_reason": st.sampled_from(["end_turn", "max_tokens"]),
        "usage": anthropic_usage_dict,
    }
)
chat_reply = st.fixed_dictionaries(
    {
        "id": st.just("c1"),
        "object": st.just("chat.completion"),
        "created": st.just(1),
        "model": st.just(GPT),
        "choices": st.just([{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "Hi"}}]),
        "usage": chat_usage_dict,
    }
)
responses_reply = st.fixed_dictionaries({
    "id": st.just("r1"), "object": st.just("response"), "created_at": st.just(1), "model": st.just(GPT),
    "status": st.just("completed"), "output": st.just([]), "usage": responses_usage_dict,
})  # fmt: skip


@WIRE
@given(body=st.one_of(anthropic_reply, anthropic_reply, anthropic_message, json_value))
def test_anthropic_json(body: Any, wire: Wire, anthropic_client: Any, telemetry: Any, instrumented: None) -> None:
    client = anthropic_client
    wire.json(body)
    bare, run, span = compare(
        lambda: client.messages.create(model=SONNET, max_tokens=MAX_TOKENS, messages=MESSAGES), telemetry
    )
    if bare[0] == "ok":
        reported = reference_anthropic(bare[1].get("usage") if isinstance(bare[1], dict) else None)
        check_money(run, span, PRICES.rates("anthropic", SONNET), reported)


@WIRE
@given(body=st.one_of(chat_reply, chat_reply, chat_completion, json_value))
def test_chat_json(body: Any, wire: Wire, openai_client: Any, telemetry: Any, instrumented: None) -> None:
    client = openai_client
    wire.json(body)
    bare, run, span = compare(
        lambda: client.chat.completions.create(model=GPT, max_completion_tokens=MAX_TOKENS, messages=MESSAGES),
        telemetry,
    )
    if bare[0] == "ok":
        reported = reference_chat(bare[1].get("usage") if isinstance(bare[1], dict) else None)
        check_money(run, span, PRICES.rates("openai", GPT), reported)


@WIRE
@given(body=st.one_of(responses_reply, responses_reply, responses_response, json_value))
def test_responses_json(body: Any, wire: Wire, openai_client: Any, telemetry: Any, instrumented: None) -> None:
    client = openai_client
    wire.json(body)
    bare, run, span = compare(
        lambda: client.responses.create(model=GPT, max_output_tokens=MAX_TOKENS, input="hello"), telemetry
    )
    if bare[0] == "ok":
        reported = reference_responses(bare[1].get("usage") if isinstance(bare[1], dict) else None)
        check_money(run, span, PRICES.rates("openai", GPT), reported)


# -- SSE streams -------------------------------------------------------------------------------------

anthropic_stream = st.lists(
    st.one_of(anthropic_event.filter(lambda e: isinstance(e, dict) and e.get("type") != "error"),
              st.fixed_dictionaries({"type": st.just("message_start"), "message": st.fixed_dictionaries(
                  {"id": st.just("msg_1"), "usage": anthropic_usage_dict})}),
              st.fixed_dictionaries({"type": st.just("message_delta"), "delta": st.just({"stop_reason": "end_turn"}),
                                     "usage": anthropic_usage_dict})),
    max_size=8,
)  # fmt: skip


def drain(stream: Any) -> list[Any]:
    return list(stream)


@WIRE
@given(events=anthropic_stream, capture=st.booleans())
def test_anthropic_stream(
    events: list[Any],
    capture: bool,
    wire: Wire,
    anthropic_client: Any,
    telemetry: Any,
    instrumented: None,
    monkeypatch: Any,
) -> None:
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true" if capture else "false")
    client = anthropic_client
    wire.sse(events, named=True)
    bare, run, span = compare(
        lambda: drain(client.messages.create(model=SONNET, max_tokens=MAX_TOKENS, messages=MESSAGES, stream=True)),
        telemetry,
    )
    if bare[0] == "ok":
        check_money(run, span, PRICES.rates("anthropic", SONNET), merged_anthropic_usage(bare[1]))


chat_stream = st.lists(st.one_of(chat_chunk, st.fixed_dictionaries({
    "id": st.just("c1"), "choices": st.just([]), "usage": chat_usage_dict})), max_size=8)  # fmt: skip


@WIRE
@given(chunks=chat_stream, capture=st.booleans())
def test_chat_stream(
    chunks: list[Any],
    capture: bool,
    wire: Wire,
    openai_client: Any,
    telemetry: Any,
    instrumented: None,
    monkeypatch: Any,
) -> None:
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true" if capture else "false")
    client = openai_client
    wire.sse(chunks, named=False, done=True)
    bare, run, span = compare(
        lambda: drain(client.chat.completions.create(
            model=GPT, max_completion_tokens=MAX_TOKENS, messages=MESSAGES, stream=True)),
        telemetry,
    )  # fmt: skip
    if bare[0] == "ok":
        reported: TokenUsage | None = None
        for chunk in bare[1]:
            if isinstance(chunk, dict) and chunk.get("usage") is not None:
                reported = reference_chat(chunk["usage"])
        check_money(run, span, PRICES.rates("openai", GPT), reported)


responses_stream = st.lists(st.one_of(
    responses_event.filter(lambda e: isinstance(e, dict)),
    st.fixed_dictionaries({"type": st.just("response.completed"), "response": st.fixed_dictionaries(
        {"id": st.just("r1"), "usage": responses_usage_dict})}),
), max_size=8)  # fmt: skip


@WIRE
@given(events=responses_stream, capture=st.booleans())
def test_responses_stream(
    events: list[Any],
    capture: bool,
    wire: Wire,
    openai_client: Any,
    telemetry: Any,
    instrumented: None,
    monkeypatch: Any,
) -> None:
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true" if capture else "false")
    client = openai_client
    wire.sse(events, named=True)
    bare, run, span = compare(
        lambda: drain(client.responses.create(model=GPT, max_output_tokens=MAX_TOKENS, input="hello", stream=True)),
        telemetry,
    )
    if bare[0] == "ok":
        reported: TokenUsage | None = None
        for event in bare[1]:
            if isinstance(event, dict) and event.get("type") in (
                "response.completed", "response.incomplete", "response.failed"
            ):  # fmt: skip
                final = event.get("response")
                reported = reference_responses(final.get("usage") if isinstance(final, dict) else None)
        check_money(run, span, PRICES.rates("openai", GPT), reported)
