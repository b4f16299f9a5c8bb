"""Runs, tools, foreign spans, content capture, secrets, metrics, uninstrument."""

from __future__ import annotations

import asyncio
import gc
import json
from typing import Any

import anthropic
import openai
import pytest
from opentelemetry import trace

import spendfuse
from spendfuse.testing import FakeProvider, FakeUsage, Reply

SONNET = "claude-sonnet-4-5"
SECRET_PROMPT = "the launch code is 0000-PINEAPPLE"
MESSAGES = [{"role": "user", "content": SECRET_PROMPT}]
USAGE = FakeUsage(input_tokens=1000, output_tokens=200)


def _all_text(telemetry: Any) -> str:
    chunks = []
    for span in telemetry.spans():
        chunks.append(span.to_json())
    data = telemetry.metrics_data()
    chunks.append(data.to_json() if data is not None else "")
    return "\n".join(chunks)


def test_run_span_tool_span_and_foreign_spans_share_the_run(instrument: Any, telemetry: Any) -> None:
    instrument()
    fake = FakeProvider(usage=USAGE)
    foreign = telemetry.tracer_provider.get_tracer("some.http.library")

    @spendfuse.tool
    def lookup(city: str) -> str:
        with foreign.start_as_current_span("GET /weather"):
            return "sunny"

    @spendfuse.tool(name="search")
    async def search(query: str) -> str:
        return "found"

    with spendfuse.run("ticket-4711", user_id="alice", name="support") as run:
        fake.anthropic_client().messages.create(model=SONNET, max_tokens=64, messages=MESSAGES)
        lookup("Paris")
        asyncio.run(search("x"))
    run_span = telemetry.span("invoke_agent support")
    assert run_span.parent is None
    assert run_span.kind.name == "INTERNAL"
    assert run_span.attributes["gen_ai.operation.name"] == "invoke_agent"
    assert run.trace_id == format(run_span.context.trace_id, "032x")
    spans = telemetry.spans()
    assert {s.name for s in spans} == {
        "invoke_agent support",
        f"chat {SONNET}",
        "execute_tool lookup",
        "execute_tool search",
        "GET /weather",
    }
    for span in spans:
        assert span.context.trace_id == run_span.context.trace_id
        assert span.attributes["spendfuse.run.id"] == "ticket-4711"
        assert span.attributes["user.id"] == "alice"
    tool_span = telemetry.span("execute_tool lookup")
    assert tool_span.attributes["gen_ai.tool.name"] == "lookup"
    assert telemetry.span("chat ").kind.name == "CLIENT"


def test_a_run_inside_a_request_span_starts_its_own_trace_linked_to_it(instrument: Any, telemetry: Any) -> None:
    instrument()
    tracer = telemetry.tracer_provider.get_tracer("web")
    with tracer.start_as_current_span("POST /tickets") as outer, spendfuse.run("r"):
        pass
    run_span = telemetry.span("invoke_agent")
    assert run_span.context.trace_id != outer.get_span_context().trace_id
    assert run_span.links[0].context.span_id == outer.get_span_context().span_id


def test_run_decorator_sync_and_async(instrument: Any, telemetry: Any) -> None:
    instrument()

    @spendfuse.run(user_id="bob")
    def sync_agent() -> str | None:
        current = spendfuse.current_run()
        return current.user_id if current else None

    @spendfuse.run(user_id="carol")
    async def async_agent() -> str | None:
        current = spendfuse.current_run()
        return current.user_id if current else None

    assert sync_agent() == "bob"
    assert asyncio.run(async_agent()) == "carol"
    assert spendfuse.current_run() is None
    names = sorted(s.name for s in telemetry.spans("invoke_agent"))
    assert names == ["invoke_agent async_agent", "invoke_agent sync_agent"]
    assert telemetry.metric_sum("spendfuse.runs", **{"spendfuse.outcome": "completed"}) == 2


def test_run_that_raises_is_an_error_outcome(instrument: Any, telemetry: Any) -> None:
    instrument()
    with pytest.raises(KeyError), spendfuse.run("boom"):
        raise KeyError("x")
    span = telemetry.span("invoke_agent")
    assert span.attributes["spendfuse.outcome"] == "error"
    assert span.attributes["error.type"] == "KeyError"


def test_no_content_and_no_key_in_telemetry_by_default(instrument: Any, telemetry: Any) -> None:
    instrument()
    fake = FakeProvider(usage=USAGE)
    client = fake.anthropic_client(api_key="sk-ant-SUPERSECRET")
    with spendfuse.run("secret"):
        client.messages.create(model=SONNET, max_tokens=64, messages=MESSAGES)
        stream = client.messages.create(model=SONNET, max_tokens=64, messages=MESSAGES, stream=True)
        list(stream)
    text = _all_text(telemetry)
    assert "PINEAPPLE" not in text
    assert "SUPERSECRET" not in text
    assert "Hello from the fake provider" not in text
    headers = fake.requests[0].headers
    assert "sk-ant-SUPERSECRET" in (headers.get("x-api-key", "") + headers.get("authorization", ""))


def test_content_capture_is_opt_in(instrument: Any, telemetry: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
    instrument()
    fake = FakeProvider(usage=USAGE)
    client = fake.anthropic_client(api_key="sk-ant-SUPERSECRET")
    with spendfuse.run("captured"):
        client.messages.create(model=SONNET, max_tokens=64, messages=MESSAGES)
    span = telemetry.span("chat ")
    assert "PINEAPPLE" in span.attributes["gen_ai.input.messages"]
    assert "Hello from the fake provider" in span.attributes["gen_ai.output.messages"]
    assert "SUPERSECRET" not in _all_text(telemetry)


def test_genai_metrics_use_semconv_names_units_and_buckets(instrument: Any, telemetry: Any) -> None:
    instrument()
    fake = FakeProvider(usage=USAGE)
    with spendfuse.run("m", user_id="alice"):
        fake.anthropic_client().messages.create(model=SONNET, max_tokens=64, messages=MESSAGES)
        list(
            fake.openai_client().chat.completions.create(
                model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
            )
        )
    data = telemetry.metrics_data()
    metrics = {m.name: m for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
    tokens = metrics["gen_ai.client.token.usage"]
    assert tokens.unit == "{token}"
    points = tokens.data.data_points
    assert list(points[0].explicit_bounds)[:3] == [1, 4, 16]
    by_type = {(p.attributes["gen_ai.provider.name"], p.attributes["gen_ai.token.type"]): p.sum for p in points}
    assert by_type == {
        ("anthropic", "input"): 1000,
        ("anthropic", "output"): 200,
        ("openai", "input"): 1000,
        ("openai", "output"): 200,
    }
    assert metrics["gen_ai.client.operation.duration"].unit == "s"
    assert "gen_ai.client.operation.time_to_first_chunk" in metrics
    cost = metrics["spendfuse.cost"]
    assert cost.unit == "USD"
    users = {p.attributes.get("user.id") for p in cost.data.data_points}
    assert users == {"alice"}
    for metric in metrics.values():
        for point in metric.data.data_points:
            assert "spendfuse.run.id" not in point.attributes


def test_error_metric_carries_error_type(instrument: Any, telemetry: Any) -> None:
    instrument()
    fake = FakeProvider()
    fake.enqueue(Reply.error(429))
    with pytest.raises(openai.RateLimitError):
        fake.openai_client().chat.completions.create(model="gpt-4o", messages=MESSAGES)
    points = telemetry.metric_points("gen_ai.client.operation.duration")
    assert [p.attributes.get("error.type") for p in points] == ["RateLimitError"]


@pytest.mark.parametrize(
    "status,error",
    [(429, anthropic.RateLimitError), (500, anthropic.InternalServerError), (529, anthropic.APIStatusError)],
)
def test_exception_types_are_unchanged(instrument: Any, status: int, error: type[Exception]) -> None:
    instrument()
    fake = FakeProvider()
    fake.enqueue(Reply.error(status))
    with pytest.raises(error):
        fake.anthropic_client().messages.create(model=SONNET, max_tokens=64, messages=MESSAGES)


def test_sdk_retries_are_one_turn_and_one_span(instrument: Any, telemetry: Any) -> None:
    instrument()
    fake = FakeProvider(usage=USAGE)
    fake.enqueue(Reply.error(500), Reply.error(529))
    client = fake.anthropic_client(max_retries=2)
    with spendfuse.run("retry", budget=spendfuse.Budget(turns=1)) as run:
        client.with_options(timeout=5).messages.create(model=SONNET, max_tokens=64, messages=MESSAGES)
    assert fake.request_count == 3
    assert run.spent.turns == 1
    assert len(telemetry.spans("chat ")) == 1


def test_streams_keep_their_types_and_chunks(instrument: Any) -> None:
    fake = FakeProvider(usage=USAGE)
    raw_events = [
        e.model_dump()
        for e in fake.anthropic_client().messages.create(model=SONNET, max_tokens=64, messages=MESSAGES, stream=True)
    ]
    instrument()
    stream = fake.anthropic_client().messages.create(model=SONNET, max_tokens=64, messages=MESSAGES, stream=True)
    assert isinstance(stream, anthropic.Stream)
    with stream as same:
        assert same is stream
        events = [e.model_dump() for e in same]
    assert json.dumps(events, default=str) == json.dumps(raw_events, default=str).replace("0001", "0002")


def test_finalize_once_on_gc_of_an_async_stream(instrument: Any, telemetry: Any) -> None:
    instrument()
    fake = FakeProvider(usage=USAGE)

    async def main() -> None:
        stream = await fake.async_openai_client().chat.completions.create(
            model="gpt-4o", messages=MESSAGES, stream=True
        )
        async for _chunk in stream:
            break
        del stream

    with spendfuse.run("gc") as run:
        asyncio.run(main())
        gc.collect()
    assert len(telemetry.spans("chat ")) == 1
    assert run.spent.turns == 1


def test_stream_without_usage_is_estimated_and_marked(instrument: Any, telemetry: Any) -> None:
    instrument()
    fake = FakeProvider()
    with spendfuse.run("no-usage") as run:
        chunks = list(fake.openai_client().chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
    assert all(c.choices for c in chunks)  # we never inject include_usage
    sent = fake.requests[0].json or {}
    assert "stream_options" not in sent
    span = telemetry.span("chat ")
    assert span.attributes["spendfuse.usage.estimated"] is True
    assert run.spent.usd_micros > 0


def test_uninstrument_restores_the_sdk(instrument: Any, telemetry: Any) -> None:
    from anthropic._base_client import SyncAPIClient

    instrument()
    assert hasattr(SyncAPIClient.request, "__wrapped__")
    spendfuse.instrument()  # idempotent: no double patch
    assert not hasattr(SyncAPIClient.request.__wrapped__, "__wrapped__")
    spendfuse.uninstrument()
    assert not hasattr(SyncAPIClient.request, "__wrapped__")
    fake = FakeProvider(usage=USAGE)
    fake.anthropic_client().messages.create(model=SONNET, max_tokens=64, messages=MESSAGES)
    assert telemetry.spans("chat ") == []


def test_anthropic_builtin_tracing_is_not_double_counted(instrument: Any, telemetry: Any) -> None:
    instrument()
    fake = FakeProvider(usage=USAGE)
    trace.set_tracer_provider(telemetry.tracer_provider)
    fake.anthropic_client().messages.create(model=SONNET, max_tokens=64, messages=MESSAGES)
    counted = [s for s in telemetry.spans() if (s.attributes or {}).get("gen_ai.usage.output_tokens") is not None]
    assert len(counted) == 1


def test_internal_errors_never_reach_the_caller(instrument: Any, telemetry: Any, monkeypatch: Any) -> None:
    from spendfuse.instrumentation import anthropic as provider_module

    instrument()

    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("extractor bug")

    monkeypatch.setattr(provider_module, "_has_cache_control", broken)
    fake = FakeProvider(usage=USAGE)
    message = fake.anthropic_client().messages.create(model=SONNET, max_tokens=64, messages=MESSAGES)
    assert message.usage.output_tokens == 200
