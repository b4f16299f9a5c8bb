"""One model call of a given shape, on the real SDK clients, run to its end: the shared driver of the fault suites."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

SONNET = "claude-sonnet-4-5"
GPT = "gpt-4o"
MESSAGES = [{"role": "user", "content": "What is the weather in Paris?"}]
PROMPT = "What is the weather in Paris?"
MAX_TOKENS = 256
USER_KEY = "user/lifetime/{user}"  # the breaker's scope key of a user budget without a window


@dataclass(frozen=True)
class Shape:
    api: str  # "messages" (Anthropic), "chat" or "responses" (OpenAI)
    is_async: bool
    stream: bool

    @property
    def sdk(self) -> str:
        return "anthropic" if self.api == "messages" else "openai"

    @property
    def model(self) -> str:
        return SONNET if self.api == "messages" else GPT

    @property
    def id(self) -> str:
        return f"{self.api}-{'async' if self.is_async else 'sync'}-{'stream' if self.stream else 'json'}"


SHAPES = [Shape(api, is_async, stream) for api in ("messages", "chat", "responses") for is_async in (False, True)
          for stream in (False, True)]  # fmt: skip
SHAPE_IDS = [shape.id for shape in SHAPES]


def client_for(shape: Shape, source: Any, **kwargs: Any) -> Any:
    """The shape's client from a FakeProvider or a FakeServer (they share the method names)."""
    name = f"{'async_' if shape.is_async else ''}{shape.sdk}_client"
    return getattr(source, name)(**kwargs)


def create(shape: Shape, client: Any, max_tokens: int = MAX_TOKENS) -> Any:
    """The SDK call itself: a result, a stream, or (async clients) an awaitable of one."""
    if shape.api == "messages":
        return client.messages.create(model=SONNET, max_tokens=max_tokens, messages=MESSAGES, stream=shape.stream)
    if shape.api == "chat":
        # Usage in a chat stream only when asked for, as with the real API.
        options = {"stream_options": {"include_usage": True}} if shape.stream else {}
        return client.chat.completions.create(
            model=GPT, max_completion_tokens=max_tokens, messages=MESSAGES, stream=shape.stream, **options
        )
    return client.responses.create(model=GPT, max_output_tokens=max_tokens, input=PROMPT, stream=shape.stream)


def perform(shape: Shape, make_client: Callable[[], Any], max_tokens: int = MAX_TOKENS) -> Exception | None:
    """Run one call to its end (a stream is drained); the exception it raised, or None."""
    if shape.is_async:
        return asyncio.run(_aperform(shape, make_client, max_tokens))
    client = make_client()
    try:
        result = create(shape, client, max_tokens)
        if shape.stream:
            for _ in result:
                pass
    except Exception as error:
        return error
    finally:
        client.close()
    return None


async def _aperform(shape: Shape, make_client: Callable[[], Any], max_tokens: int) -> Exception | None:
    client = make_client()  # inside the loop: an async client belongs to the loop that uses it
    try:
        result = await create(shape, client, max_tokens)
        if shape.stream:
            async for _ in result:
                pass
    except Exception as error:
        return error
    finally:
        await client.close()
    return None


class SpanTracker(SpanProcessor):
    """Every span started and every span ended, to prove none is left open."""

    def __init__(self) -> None:
        self.started: list[Span] = []
        self.ended: list[ReadableSpan] = []

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        self.started.append(span)

    def on_end(self, span: ReadableSpan) -> None:
        self.ended.append(span)

    def chat_started(self) -> list[Span]:
        return [span for span in self.started if span.name.startswith("chat ")]

    def chat_ended(self) -> list[ReadableSpan]:
        return [span for span in self.ended if span.name.startswith("chat ")]

    def open_spans(self) -> list[str]:
        ended = {span.context.span_id for span in self.ended if span.context is not None}
        return [span.name for span in self.started if span.context.span_id not in ended]


def attributes_of(span: Any) -> dict[str, Any]:
    """A span's attributes as a plain dict (typed loosely: the tests read numbers and strings)."""
    return dict(span.attributes or {})


def micros(usd: Any) -> int:
    """A ``spendfuse.*.usd`` attribute back in integer micro-dollars."""
    return round(float(usd) * 1_000_000)


def histogram_count(telemetry: Any, name: str) -> int:
    return sum(point.count for point in telemetry.metric_points(name))
