"""The fake provider, driven through the real anthropic and openai SDK clients.

Expected token numbers follow the documented rule (spendfuse.testing.usage):
input = 10 + prompt characters // 4, output = words of the reply + 1 per tool call.
"""

from __future__ import annotations

import asyncio
import importlib.util
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import anthropic
import httpx2
import openai
import pytest

from spendfuse.testing import FakeProvider, FakeServer, FakeUsage, RecordedRequest, Reply

HI: list[Any] = [{"role": "user", "content": "Hi there"}]
# SDK releases before httpx2 let the original httpx's errors through instead.
TRANSPORT_ERRORS: tuple[type[Exception], ...] = (httpx2.TransportError,) + (
    (importlib.import_module("httpx").TransportError,) if importlib.util.find_spec("httpx") else ()
)
# anthropic >= 2.17 wraps a failed read of a stream's body in APIConnectionError (the transport
# error as its cause), as openai always did; earlier releases let the transport error through.
ANTHROPIC_WRAPS_STREAM_ERRORS = hasattr(importlib.import_module("anthropic._streaming"), "iter_response_bytes")
ANTHROPIC_STREAM_ERROR: tuple[type[Exception], ...] = (
    (anthropic.APIConnectionError,) if ANTHROPIC_WRAPS_STREAM_ERRORS else TRANSPORT_ERRORS
)


def assert_anthropic_stream_error(error: BaseException) -> None:
    """Exactly the error this SDK release raises for a broken stream, with the cause it carries."""
    if ANTHROPIC_WRAPS_STREAM_ERRORS:
        assert type(error) is anthropic.APIConnectionError
        assert isinstance(error.__cause__, TRANSPORT_ERRORS)
    else:
        assert isinstance(error, TRANSPORT_ERRORS)


HI_INPUT_TOKENS = 10 + len("Hi there") // 4  # 12
DEFAULT_TEXT = "Hello from the fake provider."
DEFAULT_OUTPUT_TOKENS = 5
CLAUDE: dict[str, Any] = {"model": "claude-fake-1", "max_tokens": 100, "messages": HI}
GPT: dict[str, Any] = {"model": "gpt-fake-1", "messages": HI}
CACHED = FakeUsage(input_tokens=100, output_tokens=7, cache_read_tokens=60, cache_write_tokens=30)

WEATHER_TOOL_ANTHROPIC: Any = {
    "name": "get_weather",
    "description": "Look up the weather",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def first_text(message: Any) -> str:
    block = message.content[0]
    assert block.type == "text"
    return str(block.text)


def settled(fake: FakeProvider, record: RecordedRequest) -> RecordedRequest:
    """Over a socket the server thread may still be finishing the stream when the client is done."""
    assert fake.wait_for(lambda: record.outcome != "pending", timeout=3)
    return record


@pytest.fixture(params=["mock", "server"])
def wire(request: pytest.FixtureRequest, fake: FakeProvider) -> Iterator[FakeProvider | FakeServer]:
    """Where SDK clients connect: the in-process mock transport or the loopback server."""
    if request.param == "mock":
        yield fake
    else:
        with FakeServer(fake) as running:
            yield running


@dataclass
class Clients:
    claude: anthropic.Anthropic
    gpt: openai.OpenAI


@pytest.fixture
def clients(wire: FakeProvider | FakeServer) -> Iterator[Clients]:
    with wire.anthropic_client() as claude, wire.openai_client() as gpt:
        yield Clients(claude, gpt)


@dataclass
class AsyncClients:
    claude: anthropic.AsyncAnthropic
    gpt: openai.AsyncOpenAI


@pytest.fixture
async def async_clients(wire: FakeProvider | FakeServer) -> AsyncIterator[AsyncClients]:
    async with wire.async_anthropic_client() as claude, wire.async_openai_client() as gpt:
        yield AsyncClients(claude, gpt)


# -- Anthropic -------------------------------------------------------------------------------------


def test_anthropic_create_returns_text_usage_and_logs_the_request(clients: Clients, fake: FakeProvider) -> None:
    message = clients.claude.messages.create(**CLAUDE)

    assert message.id == "msg_fake_0001"
    assert message.model == "claude-fake-1"
    assert [block.type for block in message.content] == ["text"]
    assert first_text(message) == DEFAULT_TEXT
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens == HI_INPUT_TOKENS
    assert message.usage.output_tokens == DEFAULT_OUTPUT_TOKENS
    assert message.usage.cache_read_input_tokens == 0
    assert message._request_id is not None and message._request_id.startswith("req_fake_")

    (record,) = fake.requests
    assert (record.method, record.path, record.provider, record.api) == (
        "POST",
        "/v1/messages",
        "anthropic",
        "messages",
    )
    assert record.stream is False
    assert record.json["messages"] == HI
    # anthropic 2.x sends the API key as a bearer token; older releases as x-api-key.
    assert "test-key" in record.headers.get("authorization", "") + record.headers.get("x-api-key", "")
    assert "anthropic-version" in record.headers
    assert record.status == 200 and record.outcome == "completed"
    assert record.usage == FakeUsage(HI_INPUT_TOKENS, DEFAULT_OUTPUT_TOKENS)
    assert fake.request_count == 1


def test_anthropic_stream_helper_yields_the_real_event_sequence(clients: Clients, fake: FakeProvider) -> None:
    fake.enqueue(Reply.text("Paris is sunny today."))
    with clients.claude.messages.stream(**CLAUDE) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()

    assert kinds == [
        "message_start",
        "content_block_start",
        *["content_block_delta", "text"] * 4,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert first_text(final) == "Paris is sunny today."
    assert final.usage.input_tokens == HI_INPUT_TOKENS
    assert final.usage.output_tokens == 4
    assert final.stop_reason == "end_turn"
    record = settled(fake, fake.requests[0])
    assert record.stream is True
    # 9 SDK-visible raw events plus the `ping` the SDK skips.
    assert record.events_sent == 10 and record.outcome == "completed"


def test_anthropic_raw_stream_reports_input_at_start_and_cumulative_output_at_delta(
    fake: FakeProvider,
) -> None:
    fake.enqueue(Reply.text("one two three four five six seven", usage=CACHED))
    with fake.anthropic_client() as client:
        events = list(client.messages.create(stream=True, **CLAUDE))

    start, delta = events[0], events[-2]
    assert start.type == "message_start" and delta.type == "message_delta"
    assert start.message.usage.input_tokens == 10  # 100 total - 60 read - 30 written
    assert start.message.usage.cache_read_input_tokens == 60
    assert start.message.usage.cache_creation_input_tokens == 30
    assert start.message.usage.cache_creation is not None
    assert start.message.usage.cache_creation.ephemeral_5m_input_tokens == 30
    assert start.message.usage.output_tokens == 1
    assert delta.usage.output_tokens == 7
    assert delta.usage.input_tokens == 10 and delta.usage.cache_read_input_tokens == 60


def test_anthropic_tool_use_round_trip(clients: Clients, fake: FakeProvider) -> None:
    fake.enqueue(
        Reply.tool_call("get_weather", {"city": "Paris"}, text="Let me check."),
        Reply.text("It is sunny in Paris."),
    )
    question: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
    first = clients.claude.messages.create(
        model="claude-fake-1", max_tokens=100, messages=question, tools=[WEATHER_TOOL_ANTHROPIC]
    )
    assert first.stop_reason == "tool_use"
    text, tool_use = first.content
    assert text.type == "text" and text.text == "Let me check."
    assert tool_use.type == "tool_use"
    assert (tool_use.id, tool_use.name, tool_use.input) == (
        "toolu_fake_0001",
        "get_weather",
        {"city": "Paris"},
    )
    assert first.usage.output_tokens == 3 + 1

    follow_up: list[Any] = [
        *question,
        {"role": "assistant", "content": [block.model_dump(exclude_none=True) for block in first.content]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": tool_use.id, "content": "Sunny, 21C"}],
        },
    ]
    second = clients.claude.messages.create(
        model="claude-fake-1", max_tokens=100, messages=follow_up, tools=[WEATHER_TOOL_ANTHROPIC]
    )
    assert first_text(second) == "It is sunny in Paris."
    # "Weather in Paris?" 17 + "Let me check." 13 + "get_weather" 11 + "Paris" 5 + "Sunny, 21C" 10
    # + tools: "get_weather" 11 + "Look up the weather" 19 = 86 characters.
    assert second.usage.input_tokens == 10 + 86 // 4


def test_anthropic_stream_helper_parses_tool_input_from_json_deltas(fake: FakeProvider) -> None:
    fake.enqueue(Reply.tool_call("get_weather", {"city": "Paris", "units": "metric"}, call_id="toolu_x"))
    with fake.anthropic_client() as client, client.messages.stream(**CLAUDE) as stream:
        final = stream.get_final_message()
    (tool_use,) = final.content
    assert tool_use.type == "tool_use"
    assert (tool_use.id, tool_use.input) == ("toolu_x", {"city": "Paris", "units": "metric"})
    assert final.stop_reason == "tool_use"
    assert final.usage.output_tokens == 1


def test_anthropic_beta_messages_and_beta_query_are_accepted(fake: FakeProvider) -> None:
    with fake.anthropic_client() as client:
        beta = client.beta.messages.create(**CLAUDE)
    assert first_text(beta) == DEFAULT_TEXT
    # Older SDK releases mark beta calls with ?beta=true.
    with httpx2.Client(transport=fake.transport(), base_url="http://fake.invalid") as raw:
        response = raw.post("/v1/messages?beta=true", json=CLAUDE, headers={"anthropic-version": "2023-06-01"})
    assert response.status_code == 200
    assert (fake.requests[-1].path, fake.requests[-1].query) == ("/v1/messages", {"beta": "true"})


def test_default_input_rule_counts_system_and_message_text(fake: FakeProvider) -> None:
    with fake.anthropic_client() as client:
        message = client.messages.create(**CLAUDE, system="You are terse.")
    assert message.usage.input_tokens == 10 + (len("You are terse.") + len("Hi there")) // 4


# -- OpenAI chat completions -----------------------------------------------------------------------


def test_openai_chat_create_returns_text_and_usage(clients: Clients, fake: FakeProvider) -> None:
    completion = clients.gpt.chat.completions.create(**GPT)

    assert completion.id == "chatcmpl-fake-0001"
    assert completion.model == "gpt-fake-1"
    assert completion.choices[0].message.content == DEFAULT_TEXT
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (HI_INPUT_TOKENS, 5)
    assert completion.usage.total_tokens == HI_INPUT_TOKENS + 5
    (record,) = fake.requests
    assert (record.path, record.provider, record.api, record.stream) == (
        "/v1/chat/completions",
        "openai",
        "chat",
        False,
    )
    assert "test-key" in record.headers.get("authorization", "") + record.headers.get("x-api-key", "")


def test_openai_chat_cache_usage_counts_cached_tokens_inside_prompt_tokens(fake: FakeProvider) -> None:
    fake.enqueue(Reply.text("cached answer", usage=CACHED))
    with fake.openai_client() as client:
        usage = client.chat.completions.create(**GPT).usage
    assert usage is not None and usage.prompt_tokens_details is not None
    assert (usage.prompt_tokens, usage.prompt_tokens_details.cached_tokens) == (100, 60)
    assert (usage.completion_tokens, usage.total_tokens) == (7, 107)


def test_openai_chat_stream_without_include_usage_carries_no_usage(clients: Clients, fake: FakeProvider) -> None:
    fake.enqueue(Reply.text("Paris is sunny today."))
    chunks = list(clients.gpt.chat.completions.create(stream=True, **GPT))

    assert all(chunk.object == "chat.completion.chunk" and chunk.usage is None for chunk in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(chunk.choices[0].delta.content or "" for chunk in chunks) == "Paris is sunny today."
    assert [chunk.choices[0].finish_reason for chunk in chunks][-1] == "stop"
    # role chunk, 4 words, finish chunk, then `data: [DONE]` which the SDK swallows.
    assert len(chunks) == 6
    assert settled(fake, fake.requests[0]).events_sent == 7


def test_openai_chat_stream_with_include_usage_ends_with_a_usage_only_chunk(
    clients: Clients, fake: FakeProvider
) -> None:
    fake.enqueue(Reply.text("Paris is sunny today."))
    chunks = list(clients.gpt.chat.completions.create(stream=True, stream_options={"include_usage": True}, **GPT))
    *body, last = chunks
    assert last.choices == [] and last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (HI_INPUT_TOKENS, 4)
    assert all(chunk.usage is None for chunk in body)


def test_openai_chat_stream_helper_accumulates_text_and_tool_calls(clients: Clients, fake: FakeProvider) -> None:
    fake.enqueue(Reply.tool_call("get_weather", {"city": "Paris"}, text="Checking."))
    with clients.gpt.chat.completions.stream(stream_options={"include_usage": True}, **GPT) as stream:
        final = stream.get_final_completion()

    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Checking."
    (call,) = choice.message.tool_calls or []
    assert (call.id, call.function.name) == ("call_fake_0001", "get_weather")
    assert call.function.arguments == '{"city": "Paris"}'
    assert final.usage is not None and final.usage.completion_tokens == 1 + 1


def test_openai_chat_tool_messages_are_valid_input(clients: Clients, fake: FakeProvider) -> None:
    fake.enqueue(Reply.tool_call("get_weather", {"city": "Paris"}), Reply.text("Sunny."))
    question: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
    first = clients.gpt.chat.completions.create(model="gpt-fake-1", messages=question)
    message = first.choices[0].message
    assert message.content is None and message.tool_calls is not None
    call = message.tool_calls[0]
    assert call.type == "function" and call.function.name == "get_weather"

    follow_up: list[Any] = [
        *question,
        message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "Sunny, 21C"},
    ]
    second = clients.gpt.chat.completions.create(model="gpt-fake-1", messages=follow_up)
    assert second.choices[0].message.content == "Sunny."
    assert second.usage is not None
    # "Weather in Paris?" 17 + "get_weather" 11 + '{"city": "Paris"}' 17 + "Sunny, 21C" 10 = 55
    assert second.usage.prompt_tokens == 10 + 55 // 4


# -- OpenAI Responses ------------------------------------------------------------------------------


def test_openai_responses_create_returns_output_text_and_usage(clients: Clients, fake: FakeProvider) -> None:
    fake.enqueue(Reply.text("cached answer", usage=CACHED))
    response = clients.gpt.responses.create(model="gpt-fake-1", input="Hi there")

    assert response.id == "resp_fake_0001"
    assert response.status == "completed"
    assert response.output_text == "cached answer"
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.input_tokens_details.cached_tokens) == (100, 60)
    assert (response.usage.output_tokens, response.usage.total_tokens) == (7, 107)
    assert (fake.requests[0].path, fake.requests[0].api) == ("/v1/responses", "responses")


def test_openai_responses_stream_event_sequence_and_final_usage(clients: Clients, fake: FakeProvider) -> None:
    fake.enqueue(Reply.text("Paris is sunny."))
    events = list(clients.gpt.responses.create(model="gpt-fake-1", input="Hi there", stream=True))

    assert [event.type for event in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * 3,
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [event.sequence_number for event in events] == list(range(len(events)))
    completed = events[-1]
    assert completed.type == "response.completed"
    assert completed.response.output_text == "Paris is sunny."
    assert completed.response.usage is not None
    assert (completed.response.usage.input_tokens, completed.response.usage.output_tokens) == (12, 3)


def test_openai_responses_stream_helper_returns_function_calls(clients: Clients, fake: FakeProvider) -> None:
    fake.enqueue(Reply.tool_call("get_weather", {"city": "Paris"}), Reply.text("Sunny."))
    with clients.gpt.responses.stream(model="gpt-fake-1", input="Weather in Paris?") as stream:
        final = stream.get_final_response()
    (call,) = final.output
    assert call.type == "function_call"
    assert (call.name, call.call_id, call.arguments) == ("get_weather", "call_fake_0001", '{"city": "Paris"}')
    assert final.usage is not None and final.usage.output_tokens == 1

    follow_up = clients.gpt.responses.create(
        model="gpt-fake-1",
        input=[
            {"role": "user", "content": "Weather in Paris?"},
            {"type": "function_call_output", "call_id": call.call_id, "output": "Sunny, 21C"},
        ],
    )
    assert follow_up.output_text == "Sunny."


# -- Errors and broken responses -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "anthropic_error", "anthropic_type"),
    [
        (429, anthropic.RateLimitError, "rate_limit_error"),
        (500, anthropic.InternalServerError, "api_error"),
        (529, anthropic.APIStatusError, "overloaded_error"),
    ],
)
def test_anthropic_errors_raise_the_sdk_exception_types(
    clients: Clients, fake: FakeProvider, status: int, anthropic_error: type[Exception], anthropic_type: str
) -> None:
    fake.enqueue(Reply.error(status, retry_after=3))
    with pytest.raises(anthropic_error) as caught:
        clients.claude.messages.create(**CLAUDE)
    error = caught.value
    assert isinstance(error, anthropic.APIStatusError)
    assert error.status_code == status
    assert error.response.headers["retry-after"] == "3"
    assert isinstance(error.body, dict)
    assert error.body["type"] == "error" and error.body["error"]["type"] == anthropic_type
    assert fake.requests[0].status == status


@pytest.mark.parametrize(
    ("status", "openai_error", "openai_type"),
    [(429, openai.RateLimitError, "requests"), (500, openai.InternalServerError, "server_error")],
)
def test_openai_errors_raise_the_sdk_exception_types(
    clients: Clients, fake: FakeProvider, status: int, openai_error: type[Exception], openai_type: str
) -> None:
    fake.enqueue(Reply.error(status, message="slow down"))
    with pytest.raises(openai_error) as caught:
        clients.gpt.chat.completions.create(**GPT)
    error = caught.value
    assert isinstance(error, openai.APIStatusError)
    assert error.status_code == status
    # The SDK unwraps the `error` object into `body`.
    assert error.body == {"message": "slow down", "type": openai_type, "param": None, "code": error.code}


def test_error_type_can_be_overridden(fake: FakeProvider) -> None:
    fake.enqueue(Reply.error(400, error_type="invalid_request_error", message="max_tokens: too large"))
    with fake.anthropic_client() as client, pytest.raises(anthropic.BadRequestError, match="too large"):
        client.messages.create(**CLAUDE)


def test_anthropic_stream_failure_breaks_the_sdk_iterator(clients: Clients, fake: FakeProvider) -> None:
    fake.enqueue(Reply.stream_failure(after_events=4))
    seen: list[str] = []
    with pytest.raises(ANTHROPIC_STREAM_ERROR) as caught:
        for event in clients.claude.messages.create(stream=True, **CLAUDE):
            seen.append(event.type)
    assert_anthropic_stream_error(caught.value)
    assert seen == ["message_start", "content_block_start", "content_block_delta"]  # + the skipped ping
    record = settled(fake, fake.requests[0])
    assert (record.outcome, record.events_sent) == ("broken", 4)


def test_openai_stream_failure_raises_api_connection_error(clients: Clients, fake: FakeProvider) -> None:
    fake.enqueue(Reply.stream_failure(after_events=2))
    received = 0
    with pytest.raises((openai.APIConnectionError, *TRANSPORT_ERRORS)):
        for _ in clients.gpt.chat.completions.create(stream=True, **GPT):
            received += 1
    assert received == 2
    assert settled(fake, fake.requests[0]).outcome == "broken"


def test_stream_failure_on_a_non_streaming_call_cuts_the_json_body(clients: Clients, fake: FakeProvider) -> None:
    fake.enqueue(Reply.stream_failure(after_events=0))
    with pytest.raises(anthropic.APIConnectionError):
        clients.claude.messages.create(**CLAUDE)


def test_malformed_json_fails_inside_the_sdk(fake: FakeProvider) -> None:
    fake.enqueue(Reply.malformed_json(), Reply.malformed_json())
    with fake.anthropic_client() as client:
        with pytest.raises(ValueError):
            client.messages.create(**CLAUDE)
        with pytest.raises(ValueError):
            list(client.messages.create(stream=True, **CLAUDE))
    assert [record.status for record in fake.requests] == [200, 200]


def test_no_usage_replies_leave_every_usage_field_out(fake: FakeProvider) -> None:
    fake.enqueue(*[Reply.no_usage("just text")] * 4)
    with fake.anthropic_client() as claude, fake.openai_client() as gpt:
        assert claude.messages.create(**CLAUDE).usage is None
        start = next(iter(claude.messages.create(stream=True, **CLAUDE)))
        assert start.type == "message_start" and start.message.usage is None
        completion = gpt.chat.completions.create(**GPT)
        assert completion.usage is None and completion.choices[0].message.content == "just text"
        assert gpt.responses.create(model="gpt-fake-1", input="Hi there").usage is None
    assert fake.requests[0].usage is None


def test_unknown_routes_wrong_methods_and_invalid_bodies_get_provider_errors(fake: FakeProvider) -> None:
    with httpx2.Client(transport=fake.transport(), base_url="http://fake.invalid") as raw:
        embeddings = raw.post("/v1/embeddings", json={"model": "x", "input": "hi"})
        listing = raw.get("/v1/messages", headers={"anthropic-version": "2023-06-01"})
        no_max_tokens = raw.post("/v1/messages", json={"model": "m", "messages": HI}, headers={"x-api-key": "k"})
    assert embeddings.status_code == 404
    assert embeddings.json()["error"]["type"] == "invalid_request_error"
    assert listing.status_code == 405 and listing.json()["type"] == "error"
    assert no_max_tokens.status_code == 400
    assert no_max_tokens.json()["error"] == {
        "type": "invalid_request_error",
        "message": "max_tokens: Field required",
    }
    assert [record.api for record in fake.requests] == [None, "messages", "messages"]
    assert fake.pending_replies == 0


def test_output_cap_truncates_the_reply_like_the_real_apis(fake: FakeProvider) -> None:
    six_words = "one two three four five six"
    fake.enqueue(*[Reply.text(six_words)] * 3)
    with fake.anthropic_client() as claude, fake.openai_client() as gpt:
        message = claude.messages.create(model="m", max_tokens=3, messages=HI)
        chat = gpt.chat.completions.create(max_completion_tokens=2, **GPT)
        response = gpt.responses.create(model="m", input="Hi there", max_output_tokens=4)
    assert (first_text(message), message.stop_reason, message.usage.output_tokens) == (
        "one two three",
        "max_tokens",
        3,
    )
    assert (chat.choices[0].message.content, chat.choices[0].finish_reason) == ("one two", "length")
    assert response.status == "incomplete" and response.output_text == "one two three four"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"


# -- Script, responder and log ---------------------------------------------------------------------


def test_queue_then_responder_then_default(fake: FakeProvider) -> None:
    fake.enqueue(Reply.text("first"), Reply.text("second"))
    texts = []
    with fake.openai_client() as client:
        for _ in range(3):
            texts.append(client.chat.completions.create(**GPT).choices[0].message.content)
        fake.responder = lambda request: Reply.text(f"echo {request.api} #{request.index}")
        texts.append(client.chat.completions.create(**GPT).choices[0].message.content)
    assert texts == ["first", "second", DEFAULT_TEXT, "echo chat #3"]
    assert fake.requests[0].reply == Reply.text("first")


def test_a_failing_responder_surfaces_as_a_500(fake: FakeProvider) -> None:
    def responder(request: RecordedRequest) -> Reply:
        raise LookupError("no script for this")

    fake.responder = responder
    with fake.anthropic_client() as client, pytest.raises(anthropic.InternalServerError, match="no script"):
        client.messages.create(**CLAUDE)


def test_provider_wide_usage_and_reset(fake: FakeProvider) -> None:
    fake.usage = FakeUsage(input_tokens=50, output_tokens=5)
    fake.enqueue(Reply.text("unused"), Reply.text("unused"))
    with fake.anthropic_client() as client:
        assert client.messages.create(**CLAUDE).usage.input_tokens == 50
        fake.reset()
        assert (fake.request_count, fake.pending_replies) == (0, 0)
        again = client.messages.create(**CLAUDE)
    assert again.id == "msg_fake_0001"
    assert first_text(again) == DEFAULT_TEXT


def test_fake_usage_rejects_cache_counts_above_the_total() -> None:
    with pytest.raises(ValueError, match="total prompt size"):
        FakeUsage(input_tokens=10, output_tokens=1, cache_read_tokens=8, cache_write_tokens=8)


def test_concurrent_requests_are_each_logged_and_answered_once(server: FakeServer, fake: FakeProvider) -> None:
    count = 12
    fake.enqueue(*[Reply.text(f"answer {n}") for n in range(count)])
    answers: list[str] = []
    lock = threading.Lock()

    with server.openai_client() as client:

        def call() -> None:
            text = client.chat.completions.create(**GPT).choices[0].message.content or ""
            with lock:
                answers.append(text)

        threads = [threading.Thread(target=call) for _ in range(count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert sorted(answers) == sorted(f"answer {n}" for n in range(count))
    assert fake.request_count == count
    assert sorted(record.index for record in fake.requests) == list(range(count))


# -- Timing: latency and lazily paced streams ------------------------------------------------------


def test_latency_is_honoured_on_every_request(clients: Clients, fake: FakeProvider) -> None:
    fake.latency = 0.05
    started = time.perf_counter()
    clients.claude.messages.create(**CLAUDE)
    clients.gpt.chat.completions.create(**GPT)
    assert time.perf_counter() - started >= 0.1
    first, second = fake.requests
    assert second.time - first.time >= 0.05


async def test_async_latency_does_not_block_the_event_loop(fake: FakeProvider) -> None:
    fake.latency = 0.15
    async with fake.async_anthropic_client() as client:
        started = time.perf_counter()
        await asyncio.gather(*(client.messages.create(**CLAUDE) for _ in range(3)))
        elapsed = time.perf_counter() - started
    # Three sequential sleeps would take 0.45 s.
    assert 0.15 <= elapsed < 0.4
    assert fake.request_count == 3


def test_an_abandoned_stream_stops_being_generated(clients: Clients, fake: FakeProvider) -> None:
    fake.chunk_delay = 0.01
    fake.enqueue(Reply.text(" ".join(f"word{n}" for n in range(100))))
    started = time.perf_counter()
    stream = clients.claude.messages.create(stream=True, **CLAUDE)
    for index, _ in enumerate(stream):
        if index == 3:
            break
    stream.close()
    record = settled(fake, fake.requests[0])
    assert record.outcome == "abandoned"
    assert record.events_sent < 20  # of 106
    assert time.perf_counter() - started < 0.6


# -- Async clients ---------------------------------------------------------------------------------


async def test_async_clients_on_both_wires(async_clients: AsyncClients, fake: FakeProvider) -> None:
    fake.enqueue(Reply.text("async hello"), Reply.text("streamed hello"), Reply.text("chat hello"))
    message = await async_clients.claude.messages.create(**CLAUDE)
    assert first_text(message) == "async hello"

    async with async_clients.claude.messages.stream(**CLAUDE) as stream:
        pieces = [text async for text in stream.text_stream]
        final = await stream.get_final_message()
    assert pieces == ["streamed ", "hello"]
    assert final.usage.output_tokens == 2

    async with async_clients.gpt.chat.completions.stream(stream_options={"include_usage": True}, **GPT) as chat_stream:
        completion = await chat_stream.get_final_completion()
    assert completion.choices[0].message.content == "chat hello"
    assert completion.usage is not None and completion.usage.completion_tokens == 2

    events = [
        event
        async for event in await async_clients.gpt.responses.create(model="gpt-fake-1", input="Hi there", stream=True)
    ]
    assert events[-1].type == "response.completed"
    assert events[-1].response.output_text == DEFAULT_TEXT


async def test_async_stream_failure_and_abandonment(fake: FakeProvider) -> None:
    fake.enqueue(Reply.stream_failure(after_events=3), Reply.text("a b c d e f g h"))
    async with fake.async_openai_client() as client:
        with pytest.raises((openai.APIConnectionError, *TRANSPORT_ERRORS)):
            async for _ in await client.chat.completions.create(stream=True, **GPT):
                pass
        stream = await client.chat.completions.create(stream=True, **GPT)
        async for _ in stream:
            break
        await stream.close()
    broken, abandoned = fake.requests
    assert (broken.outcome, broken.events_sent) == ("broken", 3)
    assert abandoned.outcome == "abandoned"


# -- The loopback server ---------------------------------------------------------------------------


def test_server_urls_and_lifecycle(fake: FakeProvider) -> None:
    server = FakeServer(fake)
    with pytest.raises(RuntimeError):
        _ = server.base_url
    with server:
        assert server.base_url.startswith("http://127.0.0.1:")
        assert server.anthropic_base_url == server.base_url
        assert server.openai_base_url == server.base_url + "/v1"
        response = httpx2.post(server.openai_base_url + "/chat/completions", json=GPT)
        assert response.status_code == 200
        assert response.headers["x-request-id"].startswith("req_fake_")
    with pytest.raises(RuntimeError):
        _ = server.port


def test_server_survives_clients_that_vanish_mid_stream(
    server: FakeServer, fake: FakeProvider, capfd: pytest.CaptureFixture[str]
) -> None:
    fake.chunk_delay = 0.005
    fake.enqueue(Reply.text(" ".join(["word"] * 300)), Reply.stream_failure(after_events=2))
    with server.anthropic_client() as client:
        stream = client.messages.create(stream=True, **CLAUDE)
        next(iter(stream))
        stream.close()
        with pytest.raises(ANTHROPIC_STREAM_ERROR) as caught:
            list(client.messages.create(stream=True, **CLAUDE))
        assert_anthropic_stream_error(caught.value)
        assert first_text(client.messages.create(**CLAUDE)) == DEFAULT_TEXT
    assert settled(fake, fake.requests[0]).outcome == "abandoned"
    assert capfd.readouterr().err == ""


def test_httpx_transport_needs_httpx(fake: FakeProvider) -> None:
    if importlib.util.find_spec("httpx") is None:
        with pytest.raises(RuntimeError, match="httpx"):
            fake.httpx_transport()
        return
    import httpx

    with httpx.Client(transport=fake.httpx_transport(), base_url="http://fake.invalid") as raw:
        assert raw.post("/v1/chat/completions", json=GPT).json()["choices"][0]["message"]["content"]
