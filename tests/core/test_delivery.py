"""A call's span and metrics are delivered with the call: read right after it returns, no flush.

Behind a ``SimpleSpanProcessor(InMemorySpanExporter())`` a span is in the exporter as soon as it
ends, and an ``InMemoryMetricReader`` collects what has been recorded: nothing here flushes. The
call span is current while the SDK sends the request, so spans made in an httpx event hook and log
records emitted meanwhile belong to it, and it is no longer current once the call returns.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import anthropic
import openai
import pytest
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

import spendfuse
from spendfuse.testing import FakeProvider, FakeUsage
from spendfuse.testing.clients import uses_httpx2

USAGE = FakeUsage(input_tokens=1000, output_tokens=200)
SONNET, GPT = "claude-sonnet-4-5", "gpt-4o"
SONNET_COST = 1000 * 3 + 200 * 15  # micro-dollars at $3 / $15 per MTok
GPT_COST = int(1000 * 2.5 + 200 * 10)  # $2.50 / $10 per MTok
MESSAGES = [{"role": "user", "content": "What is the weather in Paris?"}]
ANTHROPIC_HOST, OPENAI_HOST = "anthropic.fake.invalid", "openai.fake.invalid"


@dataclass(frozen=True)
class Shape:
    name: str
    provider: str
    stream: bool
    run: Callable[[FakeProvider], Any]


def _a_create(fake: FakeProvider) -> Any:
    return fake.anthropic_client().messages.create(model=SONNET, max_tokens=1024, messages=MESSAGES)


def _a_async_create(fake: FakeProvider) -> Any:
    async def go() -> Any:
        return await fake.async_anthropic_client().messages.create(model=SONNET, max_tokens=1024, messages=MESSAGES)

    return asyncio.run(go())


def _a_stream(fake: FakeProvider) -> Any:
    stream = fake.anthropic_client().messages.create(model=SONNET, max_tokens=1024, messages=MESSAGES, stream=True)
    return [event.type for event in stream]  # read after the last chunk; the stream is not closed


def _a_async_stream(fake: FakeProvider) -> Any:
    async def go() -> Any:
        client = fake.async_anthropic_client()
        stream = await client.messages.create(model=SONNET, max_tokens=1024, messages=MESSAGES, stream=True)
        return [event.type async for event in stream]

    return asyncio.run(go())


def _a_stream_helper(fake: FakeProvider) -> Any:
    with fake.anthropic_client().messages.stream(model=SONNET, max_tokens=1024, messages=MESSAGES) as stream:
        return stream.get_final_message()


def _a_raw(fake: FakeProvider) -> Any:
    return (
        fake.anthropic_client()
        .messages.with_raw_response.create(model=SONNET, max_tokens=1024, messages=MESSAGES)
        .parse()
    )


def _a_streaming_response(fake: FakeProvider) -> Any:
    with fake.anthropic_client().messages.with_streaming_response.create(
        model=SONNET, max_tokens=1024, messages=MESSAGES
    ) as response:
        return response.parse()


def _o_create(fake: FakeProvider) -> Any:
    return fake.openai_client().chat.completions.create(model=GPT, messages=MESSAGES, max_tokens=512)


def _o_async_create(fake: FakeProvider) -> Any:
    async def go() -> Any:
        return await fake.async_openai_client().chat.completions.create(model=GPT, messages=MESSAGES, max_tokens=512)

    return asyncio.run(go())


def _o_stream(fake: FakeProvider) -> Any:
    stream = fake.openai_client().chat.completions.create(
        model=GPT, messages=MESSAGES, max_tokens=512, stream=True, stream_options={"include_usage": True}
    )
    return [chunk.id for chunk in stream]


def _o_stream_helper(fake: FakeProvider) -> Any:
    with fake.openai_client().chat.completions.stream(
        model=GPT, messages=MESSAGES, max_tokens=512, stream_options={"include_usage": True}
    ) as stream:
        for _event in stream:
            pass
        return stream.get_final_completion()


def _o_responses(fake: FakeProvider) -> Any:
    return fake.openai_client().responses.create(model=GPT, input="What is the weather?", max_output_tokens=512)


def _o_raw(fake: FakeProvider) -> Any:
    return (
        fake.openai_client()
        .chat.completions.with_raw_response.create(model=GPT, messages=MESSAGES, max_tokens=512)
        .parse()
    )


def _o_streaming_response(fake: FakeProvider) -> Any:
    with fake.openai_client().chat.completions.with_streaming_response.create(
        model=GPT, messages=MESSAGES, max_tokens=512
    ) as response:
        return response.parse()


SHAPES = [
    Shape("anthropic.create", "anthropic", False, _a_create),
    Shape("anthropic.async.create", "anthropic", False, _a_async_create),
    Shape("anthropic.create(stream)", "anthropic", True, _a_stream),
    Shape("anthropic.async.create(stream)", "anthropic", True, _a_async_stream),
    Shape("anthropic.messages.stream()", "anthropic", True, _a_stream_helper),
    Shape("anthropic.with_raw_response", "anthropic", False, _a_raw),
    Shape("anthropic.with_streaming_response", "anthropic", False, _a_streaming_response),
    Shape("openai.chat.create", "openai", False, _o_create),
    Shape("openai.async.chat.create", "openai", False, _o_async_create),
    Shape("openai.chat.create(stream)", "openai", True, _o_stream),
    Shape("openai.chat.completions.stream()", "openai", True, _o_stream_helper),
    Shape("openai.responses.create", "openai", False, _o_responses),
    Shape("openai.chat.with_raw_response", "openai", False, _o_raw),
    Shape("openai.chat.with_streaming_response", "openai", False, _o_streaming_response),
]


def _expected_attributes(shape: Shape) -> dict[str, Any]:
    anthropic_shape = shape.provider == "anthropic"
    model = SONNET if anthropic_shape else GPT
    finish = "end_turn" if anthropic_shape else ("completed" if "responses" in shape.name else "stop")
    expected: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": shape.provider,
        "gen_ai.request.model": model,
        "gen_ai.request.stream": shape.stream,
        "gen_ai.request.max_tokens": 1024 if anthropic_shape else 512,
        "server.address": ANTHROPIC_HOST if anthropic_shape else OPENAI_HOST,
        "spendfuse.run.id": "delivery",
        "user.id": "alice",
        "gen_ai.response.model": model,
        "gen_ai.response.finish_reasons": (finish,),
        "gen_ai.usage.input_tokens": 1000,
        "gen_ai.usage.output_tokens": 200,
        "spendfuse.cost.usd": (SONNET_COST if anthropic_shape else GPT_COST) / 1e6,
        "spendfuse.attempts": 1,  # requests sent for the call, the SDK's retries included
    }
    if shape.stream:
        expected["spendfuse.stream.end"] = "complete"
    return expected


@pytest.mark.parametrize("shape", SHAPES, ids=[s.name for s in SHAPES])
def test_the_call_span_and_metrics_are_there_when_the_call_returns(
    shape: Shape, instrument: Any, telemetry: Any
) -> None:
    instrument()
    fake = FakeProvider(usage=USAGE)
    with spendfuse.run("delivery", user_id="alice"):
        shape.run(fake)
        # Still inside the run, and straight from the exporter: nothing flushed, nothing waited for.
        finished = [s for s in telemetry.exporter.get_finished_spans() if s.name.startswith("chat ")]
        assert len(finished) == 1, [s.name for s in telemetry.exporter.get_finished_spans()]
        points = telemetry.reader.get_metrics_data()

    span = finished[0]
    model = SONNET if shape.provider == "anthropic" else GPT
    assert span.name == f"chat {model}"
    assert span.kind is trace.SpanKind.CLIENT
    attributes = dict(span.attributes or {})
    response_id = attributes.pop("gen_ai.response.id")
    assert isinstance(response_id, str) and response_id
    reserved = attributes.pop("spendfuse.reserved.usd")  # the worst case: max output + an input bound
    assert reserved > (1024 * 15 if shape.provider == "anthropic" else 512 * 10) / 1e6
    assert attributes == _expected_attributes(shape)
    assert fake.request_count == 1

    recorded: dict[str, list[Any]] = {}
    for resource_metrics in points.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                recorded.setdefault(metric.name, []).extend(metric.data.data_points)
    assert [p.count for p in recorded["gen_ai.client.operation.duration"]] == [1]
    tokens = {p.attributes["gen_ai.token.type"]: p.sum for p in recorded["gen_ai.client.token.usage"]}
    assert tokens == {"input": 1000, "output": 200}
    cost = SONNET_COST if shape.provider == "anthropic" else GPT_COST
    assert [p.value for p in recorded["spendfuse.cost"]] == [pytest.approx(cost / 1e6)]
    if shape.stream:
        assert [p.count for p in recorded["gen_ai.client.operation.time_to_first_chunk"]] == [1]


class Order(SpanProcessor):
    """Notes, at each chat span's start, how many requests the fake had received by then."""

    def __init__(self, fake: FakeProvider) -> None:
        self.fake = fake
        self.requests_at_start: list[int] = []
        self.started: list[Span] = []

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        if span.name.startswith("chat "):
            self.requests_at_start.append(self.fake.request_count)
            self.started.append(span)

    def on_end(self, span: ReadableSpan) -> None:
        return None


def test_processors_see_the_call_span_start_before_the_request_reaches_the_provider(
    instrument: Any, telemetry: Any
) -> None:
    fake = FakeProvider(usage=USAGE)
    order = Order(fake)
    telemetry.tracer_provider.add_span_processor(order)
    instrument()
    client = fake.anthropic_client()
    client.messages.create(model=SONNET, max_tokens=64, messages=MESSAGES)
    client.messages.create(model=SONNET, max_tokens=64, messages=MESSAGES)
    assert order.requests_at_start == [0, 1]
    assert fake.request_count == 2


def _http_client(sdk: Any, fake: FakeProvider, hooks: dict[str, list[Any]], *, asynchronous: bool = False) -> Any:
    """The SDK's own HTTP client class (httpx2 on current releases, httpx before) with event hooks."""
    client_class = sdk.DefaultAsyncHttpxClient if asynchronous else sdk.DefaultHttpxClient
    transport = fake.transport() if uses_httpx2(sdk.__name__) else fake.httpx_transport()
    return client_class(transport=transport, event_hooks=hooks)


@pytest.fixture
def hook_tracer(telemetry: Any) -> trace.Tracer:
    return telemetry.tracer_provider.get_tracer("app.http")


def test_a_span_made_in_an_httpx_event_hook_is_a_child_of_the_call_span(
    instrument: Any, telemetry: Any, hook_tracer: trace.Tracer
) -> None:
    instrument()
    fake = FakeProvider(usage=USAGE)

    def on_request(request: Any) -> None:
        with hook_tracer.start_as_current_span("hook " + request.url.path):
            pass

    http_client = _http_client(anthropic, fake, {"request": [on_request]})
    client = fake.anthropic_client(http_client=http_client)
    with spendfuse.run("hooked"):
        client.messages.create(model=SONNET, max_tokens=64, messages=MESSAGES)
    call = telemetry.span("chat ")
    hook = telemetry.span("hook ")
    assert hook.name == "hook /v1/messages"
    assert hook.parent is not None and hook.parent.span_id == call.context.span_id
    assert hook.context.trace_id == call.context.trace_id
    assert hook.attributes["spendfuse.run.id"] == "hooked"


def test_a_span_made_in_an_async_event_hook_is_a_child_of_the_call_span(
    instrument: Any, telemetry: Any, hook_tracer: trace.Tracer
) -> None:
    instrument()
    fake = FakeProvider(usage=USAGE)

    async def on_request(request: Any) -> None:
        with hook_tracer.start_as_current_span("hook " + request.url.path):
            await asyncio.sleep(0)

    async def go() -> None:
        http_client = _http_client(openai, fake, {"request": [on_request]}, asynchronous=True)
        client = fake.async_openai_client(http_client=http_client)
        await client.chat.completions.create(model=GPT, messages=MESSAGES, max_tokens=64)
        await client.close()

    asyncio.run(go())
    call = telemetry.span("chat ")
    hook = telemetry.span("hook ")
    assert hook.parent is not None and hook.parent.span_id == call.context.span_id


class SpanIdFilter(logging.Filter):
    """Stamps each record with the span current when it was emitted."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, int]] = []

    def filter(self, record: logging.LogRecord) -> bool:
        self.seen.append((record.getMessage(), trace.get_current_span().get_span_context().span_id))
        return True


@pytest.fixture
def sdk_debug_log() -> Iterator[SpanIdFilter]:
    stamp = SpanIdFilter()
    handler = logging.Handler()  # NullHandler skips its filters
    handler.emit = lambda record: None  # type: ignore[method-assign]
    handler.addFilter(stamp)
    loggers = [logging.getLogger(name) for name in ("anthropic", "openai", "app")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
    yield stamp
    for logger, level in zip(loggers, levels, strict=True):
        logger.removeHandler(handler)
        logger.setLevel(level)


def test_log_records_emitted_during_the_call_carry_the_call_span(
    instrument: Any, telemetry: Any, sdk_debug_log: SpanIdFilter
) -> None:
    instrument()
    fake = FakeProvider(usage=USAGE)

    def on_response(response: Any) -> None:
        logging.getLogger("app").info("answered %s", response.status_code)

    http_client = _http_client(anthropic, fake, {"response": [on_response]})
    client = fake.anthropic_client(http_client=http_client)
    client.messages.create(model=SONNET, max_tokens=64, messages=MESSAGES)
    logging.getLogger("app").info("after the call")

    call_span_id = telemetry.span("chat ").context.span_id
    during = dict(sdk_debug_log.seen)
    assert during["answered 200"] == call_span_id
    # The SDK's own debug records of the request (written while it builds and sends it) too.
    sdk_records = [span_id for message, span_id in sdk_debug_log.seen if message.startswith("Request options")]
    assert sdk_records == [call_span_id]
    assert during["after the call"] == 0  # detached before control came back: no span is current


def test_the_call_span_is_never_left_current(instrument: Any, telemetry: Any) -> None:
    instrument()
    fake = FakeProvider(usage=USAGE)
    with spendfuse.run("current") as run:
        run_span = trace.get_current_span()
        fake.anthropic_client().messages.create(model=SONNET, max_tokens=64, messages=MESSAGES)
        assert trace.get_current_span() is run_span
        stream = fake.openai_client().chat.completions.create(
            model=GPT, messages=MESSAGES, max_tokens=64, stream=True, stream_options={"include_usage": True}
        )
        # A stream's span lives until the stream ends, but it is not current after create() returns.
        assert trace.get_current_span() is run_span
        assert [s.name for s in telemetry.spans("chat ")] == [f"chat {SONNET}"]
        for _chunk in stream:
            assert trace.get_current_span() is run_span
        assert trace.get_current_span() is run_span
        assert [s.name for s in telemetry.spans("chat ")] == [f"chat {SONNET}", f"chat {GPT}"]
    assert run.spent.turns == 2


def test_a_stream_consumed_on_another_thread_ends_its_span_there(
    instrument: Any, telemetry: Any, caplog: pytest.LogCaptureFixture
) -> None:
    instrument()
    fake = FakeProvider(usage=USAGE)
    stream = fake.anthropic_client().messages.create(model=SONNET, max_tokens=64, messages=MESSAGES, stream=True)
    worker = threading.Thread(target=contextvars.copy_context().run, args=(lambda: list(stream),))
    worker.start()
    worker.join(10)
    span = telemetry.span("chat ")
    assert span.attributes["spendfuse.stream.end"] == "complete"
    assert span.attributes["gen_ai.usage.output_tokens"] == 200
    assert not [r for r in caplog.records if "detach" in r.getMessage().lower()]


def test_run_and_tool_spans_end_when_their_block_exits(instrument: Any, telemetry: Any) -> None:
    instrument()

    @spendfuse.tool
    def lookup() -> str:
        return "sunny"

    with spendfuse.run("blocks", name="support"):
        lookup()
        assert [s.name for s in telemetry.exporter.get_finished_spans()] == ["execute_tool lookup"]
    names = [s.name for s in telemetry.exporter.get_finished_spans()]
    assert names == ["execute_tool lookup", "invoke_agent support"]
    runs = telemetry.metric_points("spendfuse.runs")
    assert [(p.attributes["spendfuse.outcome"], p.value) for p in runs] == [("completed", 1)]


def test_flush_returns_within_its_timeout_when_an_exporter_hangs() -> None:
    import time

    from opentelemetry.sdk.trace import TracerProvider

    release = threading.Event()

    class Stuck(SpanProcessor):  # an exporter hung on the network, as a processor sees it
        def force_flush(self, timeout_millis: int = 30000) -> bool:
            release.wait(30)
            return True

    provider = TracerProvider()
    provider.add_span_processor(Stuck())
    spendfuse.instrument(tracer_provider=provider, warn_at=None)
    try:
        started = time.monotonic()
        assert spendfuse.flush(timeout_millis=300) is False
        assert time.monotonic() - started < 2
    finally:
        release.set()
        spendfuse.uninstrument()


def test_isinstance_of_the_sdk_stream_types_holds(instrument: Any) -> None:
    instrument()
    fake = FakeProvider(usage=USAGE)
    a_stream = fake.anthropic_client().messages.create(model=SONNET, max_tokens=64, messages=MESSAGES, stream=True)
    o_stream = fake.openai_client().chat.completions.create(model=GPT, messages=MESSAGES, stream=True)
    assert type(a_stream) is anthropic.Stream and type(o_stream) is openai.Stream
    a_stream.close()
    o_stream.close()


OPEN_AT_EXIT = """
import spendfuse
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

class Print(SpanExporter):
    def export(self, spans):
        for span in spans:
            attributes = span.attributes
            print(span.name, attributes.get("spendfuse.stream.end"), attributes.get("spendfuse.usage.estimated"))
        return SpanExportResult.SUCCESS

provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(Print()))
spendfuse.instrument(tracer_provider=provider, warn_at=None)
from spendfuse.testing import FakeProvider
fake = FakeProvider()
stream = fake.anthropic_client().messages.create(
    model="claude-sonnet-4-5", max_tokens=32, messages=[{"role": "user", "content": "hi"}], stream=True
)
next(iter(stream))  # read in part and still referenced when the interpreter exits
print("last line", flush=True)
"""


def test_a_stream_still_open_at_exit_is_settled_and_its_span_ended_before_the_providers_shut_down() -> None:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", OPEN_AT_EXIT], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["last line", f"chat {SONNET} abandoned True"]
