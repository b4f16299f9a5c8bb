"""OpenAI background responses (#15 class 5): held in flight, settled from the retrieved usage.

A wire fixture written from the documented flow: ``POST /responses`` with ``background: true``
answers ``queued`` with ``usage: null``; ``GET /responses/{id}`` answers ``in_progress`` and then
``completed`` with the usage; ``GET /responses/{id}?stream=true`` replays the events, ending with
``response.completed``; ``POST /responses/{id}/cancel`` answers ``cancelled``.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import time
from typing import Any

import openai
import pytest

import spendfuse
from spendfuse import Budget
from spendfuse.testing.clients import uses_httpx2

GPT = "gpt-4o"
COST = int(1000 * 2.5 + 200 * 10)  # $2.50 / $10 per MTok
USAGE = {
    "input_tokens": 1000,
    "output_tokens": 200,
    "total_tokens": 1200,
    "input_tokens_details": {"cached_tokens": 0},
    "output_tokens_details": {"reasoning_tokens": 0},
}
CANCELLED_USAGE = {**USAGE, "output_tokens": 50, "total_tokens": 1050}


def _response(status: str, usage: Any = None) -> dict[str, Any]:
    output = []
    if status == "completed":
        output = [
            {
                "type": "message",
                "id": "msg_1",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "Done.", "annotations": []}],
            }
        ]
    return {
        "id": "resp_bg1",
        "object": "response",
        "created_at": 0,
        "model": GPT,
        "status": status,
        "background": True,
        "output": output,
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": usage,
    }


class Server:
    """The provider's side: queued, then in progress for ``polls`` retrievals, then completed."""

    def __init__(self, polls: int = 1) -> None:
        self.polls = polls
        self.requests: list[tuple[str, str]] = []
        self.http = importlib.import_module("httpx2" if uses_httpx2("openai") else "httpx")

    def answer(self, request: Any) -> Any:
        http, path = self.http, request.url.path
        self.requests.append((request.method, path))
        if request.method == "POST" and path.endswith("/responses"):
            body = json.loads(request.content)
            assert body["background"] is True
            return self._json(_response("queued"))
        if path.endswith("/cancel"):
            return self._json(_response("cancelled", CANCELLED_USAGE))
        if request.url.params.get("stream") == "true":
            final = _response("completed", USAGE)
            events = [
                (
                    "response.in_progress",
                    {"type": "response.in_progress", "sequence_number": 1, "response": _response("in_progress")},
                ),
                ("response.completed", {"type": "response.completed", "sequence_number": 2, "response": final}),
            ]
            data = "".join(f"event: {name}\ndata: {json.dumps(body)}\n\n" for name, body in events)
            return http.Response(200, content=data.encode(), headers={"content-type": "text/event-stream"})
        if self.polls > 0:
            self.polls -= 1
            return self._json(_response("in_progress"))
        return self._json(_response("completed", USAGE))

    def _json(self, body: dict[str, Any]) -> Any:
        return self.http.Response(200, content=json.dumps(body), headers={"content-type": "application/json"})

    def client(self) -> openai.OpenAI:
        transport = self.http.MockTransport(self.answer)
        return openai.OpenAI(
            api_key="k",
            base_url="http://openai.fake.invalid/v1",
            max_retries=0,
            http_client=openai.DefaultHttpxClient(transport=transport),
        )

    def async_client(self) -> openai.AsyncOpenAI:
        transport = self.http.MockTransport(self.answer)
        return openai.AsyncOpenAI(
            api_key="k",
            base_url="http://openai.fake.invalid/v1",
            max_retries=0,
            http_client=openai.DefaultAsyncHttpxClient(transport=transport),
        )


CREATE = {"model": GPT, "input": "Write a long report.", "max_output_tokens": 4096, "background": True}


def _check_settled(run: Any, telemetry: Any, cost: int = COST, output: int = 200) -> None:
    spans = telemetry.spans("chat ")
    assert len(spans) == 1
    attributes = dict(spans[0].attributes or {})
    assert attributes["gen_ai.usage.input_tokens"] == 1000
    assert attributes["gen_ai.usage.output_tokens"] == output
    assert "spendfuse.usage.estimated" not in attributes
    assert run.spent.usd_micros == cost
    assert run.spent.in_flight_usd == 0
    assert run.spent.turns == 1


def test_polling_settles_from_the_retrieved_usage(instrument: Any, telemetry: Any) -> None:
    instrument()
    server = Server(polls=2)
    client = server.client()
    with spendfuse.run("background", budget=Budget(usd=1.0)) as run:
        queued = client.responses.create(**CREATE)
        assert queued.status == "queued" and queued.usage is None  # returned unchanged
        assert run.spent.usd_micros == 0 and run.spent.in_flight_usd > 0  # held in flight
        assert telemetry.spans("chat ") == []
        response = queued
        while response.status in ("queued", "in_progress"):
            assert run.spent.in_flight_usd > 0
            response = client.responses.retrieve(response.id)
        assert response.status == "completed" and response.output_text == "Done."
        _check_settled(run, telemetry)
        client.responses.retrieve(response.id)  # a later retrieve settles nothing twice
    _check_settled(run, telemetry)
    assert server.requests.count(("GET", "/v1/responses/resp_bg1")) == 4


def test_async_polling(instrument: Any, telemetry: Any) -> None:
    instrument()
    server = Server(polls=1)

    async def go() -> Any:
        client = server.async_client()
        response = await client.responses.create(**CREATE)
        while response.status in ("queued", "in_progress"):
            response = await client.responses.retrieve(response.id)
        return response

    with spendfuse.run("background-async") as run:
        assert asyncio.run(go()).status == "completed"
    _check_settled(run, telemetry)


def test_a_stream_resumed_by_id_settles_the_call(instrument: Any, telemetry: Any) -> None:
    instrument()
    server = Server()
    client = server.client()
    with spendfuse.run("resumed") as run:
        queued = client.responses.create(**CREATE)
        stream = client.responses.retrieve(queued.id, stream=True, starting_after=0)
        assert isinstance(stream, openai.Stream)
        kinds = [event.type for event in stream]
    assert kinds == ["response.in_progress", "response.completed"]
    _check_settled(run, telemetry)


def test_a_cancel_settles_from_the_cancelled_usage(instrument: Any, telemetry: Any) -> None:
    instrument()
    client = Server().client()
    with spendfuse.run("cancelled") as run:
        queued = client.responses.create(**CREATE)
        assert client.responses.cancel(queued.id).status == "cancelled"
    _check_settled(run, telemetry, cost=int(1000 * 2.5 + 50 * 10), output=50)


def test_raw_shapes_are_held_and_settled(instrument: Any, telemetry: Any) -> None:
    instrument()
    client = Server(polls=0).client()
    with spendfuse.run("raw") as run:
        raw = client.responses.with_raw_response.create(**CREATE)
        assert raw.parse().status == "queued"
        assert run.spent.in_flight_usd > 0
        assert client.responses.with_raw_response.retrieve("resp_bg1").parse().status == "completed"
    _check_settled(run, telemetry)


def test_a_response_never_retrieved_is_charged_its_reservation_after_the_lease(instrument: Any, telemetry: Any) -> None:
    instrument(lease_seconds=1)
    client = Server().client()
    with spendfuse.run("forgotten", budget=Budget(usd=1.0)) as run:
        client.responses.create(**CREATE)
        reserved = run.spent.in_flight_usd
        assert reserved > 0
        time.sleep(1.05)
        client.responses.retrieve("resp_bg1")  # too late: the lease is over, charged as reserved
    assert run.spent.in_flight_usd == 0
    assert run.spent.usd == pytest.approx(reserved)
    attributes = dict(telemetry.span("chat ").attributes or {})
    assert attributes["spendfuse.usage.estimated"] is True
