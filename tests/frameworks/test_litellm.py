"""LiteLLM end to end over a loopback socket: every completion is budgeted and traced exactly once,
through the openai SDK (OpenAI path) or the adapter on LiteLLM's own HTTP handler (Anthropic path)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

pytest.importorskip("litellm")

import litellm

import spendfuse
from spendfuse.frameworks import is_budget_stop
from spendfuse.testing import FakeProvider, FakeServer, Reply
from tests.conftest import Telemetry

from ._helpers import attr, ours

pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning"),  # pydantic on LiteLLM's own TypedDicts
]

MESSAGES = [{"role": "user", "content": "hi"}]


def anthropic_kwargs(server: FakeServer) -> dict[str, Any]:
    return {
        "model": "anthropic/claude-sonnet-4-6",
        "api_base": server.anthropic_base_url,
        "api_key": "test-key",
        "messages": MESSAGES,
        "max_tokens": 64,
    }


def openai_kwargs(server: FakeServer) -> dict[str, Any]:
    return {
        "model": "openai/gpt-4o",
        "api_base": server.openai_base_url,
        "api_key": "test-key",
        "messages": MESSAGES,
        "max_tokens": 64,
    }


@pytest.mark.parametrize("stream", [False, True])
def test_anthropic_path_is_budgeted_and_traced_once(
    stream: bool, fake: FakeProvider, server: FakeServer, instrument: Callable[..., None], telemetry: Telemetry
) -> None:
    instrument()
    with spendfuse.run("ll-1", budget=spendfuse.Budget(turns=3)) as the_run:
        for _ in range(3):
            response = litellm.completion(stream=stream, **anthropic_kwargs(server))
            if stream:
                text = "".join(chunk.choices[0].delta.content or "" for chunk in response)
            else:
                text = response.choices[0].message.content
            assert text == "Hello from the fake provider."
        with pytest.raises(Exception) as caught:
            litellm.completion(stream=stream, num_retries=0, **anthropic_kwargs(server))

    assert is_budget_stop(caught.value)  # LiteLLM wraps it in its InternalServerError
    assert fake.request_count == 3
    assert all(request.path == "/v1/messages" and request.stream is stream for request in fake.requests)
    fake.wait_for(lambda: all(r.outcome == "completed" for r in fake.requests))
    calls = ours(telemetry.spans(), "chat claude-sonnet-4-6")
    assert len(calls) == 4  # three sent, one refused; none twice
    answered = [s for s in calls if not attr(s, "spendfuse.breaker.tripped")]
    assert [attr(s, "gen_ai.usage.input_tokens") for s in answered] == [r.usage.input_tokens for r in fake.requests]
    assert [attr(s, "gen_ai.usage.output_tokens") for s in answered] == [r.usage.output_tokens for r in fake.requests]
    assert all(attr(s, "spendfuse.run.id") == "ll-1" for s in calls)
    assert the_run.spent.turns == 3
    assert the_run.spent.input_tokens == sum(r.usage.input_tokens for r in fake.requests)


async def test_anthropic_path_async(
    fake: FakeProvider, server: FakeServer, instrument: Callable[..., None], telemetry: Telemetry
) -> None:
    instrument()
    async with spendfuse.run("ll-2", budget=spendfuse.Budget(turns=2)) as the_run:
        response = await litellm.acompletion(stream=True, **anthropic_kwargs(server))
        chunks = [chunk async for chunk in response]
        await litellm.acompletion(**anthropic_kwargs(server))
        with pytest.raises(Exception) as caught:
            await litellm.acompletion(num_retries=0, **anthropic_kwargs(server))

    assert chunks and is_budget_stop(caught.value)
    assert fake.request_count == 2
    assert len(ours(telemetry.spans(), "chat claude-sonnet-4-6")) == 3
    assert the_run.spent.turns == 2


def test_openai_path_goes_through_the_sdk_once(
    fake: FakeProvider, server: FakeServer, instrument: Callable[..., None], telemetry: Telemetry
) -> None:
    instrument()
    with spendfuse.run("ll-3", budget=spendfuse.Budget(turns=2)) as the_run:
        litellm.completion(**openai_kwargs(server))
        "".join(c.choices[0].delta.content or "" for c in litellm.completion(stream=True, **openai_kwargs(server)))
        with pytest.raises(Exception) as caught:
            litellm.completion(num_retries=0, **openai_kwargs(server))

    assert is_budget_stop(caught.value)
    assert fake.request_count == 2
    assert len(ours(telemetry.spans(), "chat gpt-4o")) == 3
    assert the_run.spent.turns == 2


def test_runaway_loop_without_a_run_has_no_run_budget_but_is_traced(
    fake: FakeProvider, server: FakeServer, instrument: Callable[..., None], telemetry: Telemetry
) -> None:
    """LiteLLM has no agent invocation to open a run around: outside a run its calls are traced and
    user-budgeted, and the run budget applies only inside ``spendfuse.run`` or an agent framework's run."""
    instrument(run_budget=spendfuse.Budget(turns=2))
    for _ in range(3):
        litellm.completion(**anthropic_kwargs(server))
    assert fake.request_count == 3
    assert len(ours(telemetry.spans(), "chat claude-sonnet-4-6")) == 3


def test_disabled_adapter_leaves_the_anthropic_path_alone(
    fake: FakeProvider, server: FakeServer, instrument: Callable[..., None], telemetry: Telemetry
) -> None:
    instrument(disable_frameworks=["litellm"])
    with spendfuse.run("ll-4", budget=spendfuse.Budget(turns=1)):
        litellm.completion(**anthropic_kwargs(server))
        litellm.completion(**anthropic_kwargs(server))
    assert fake.request_count == 2
    assert ours(telemetry.spans(), "chat") == []


def test_error_status_releases_the_reservation(
    fake: FakeProvider, server: FakeServer, instrument: Callable[..., None], telemetry: Telemetry
) -> None:
    instrument()
    fake.enqueue(Reply.error(400, message="bad request"))
    with spendfuse.run("ll-5", budget=spendfuse.Budget(usd=1.0)) as the_run, pytest.raises(Exception) as caught:
        litellm.completion(num_retries=0, **anthropic_kwargs(server))
    assert not is_budget_stop(caught.value)
    assert the_run.spent.usd == 0
    assert the_run.spent.in_flight_usd == 0
    calls = ours(telemetry.spans(), "chat claude-sonnet-4-6")
    assert len(calls) == 1 and attr(calls[0], "error.type")


def test_clamp_lowers_max_tokens_in_the_body_litellm_sends(
    fake: FakeProvider, server: FakeServer, instrument: Callable[..., None], telemetry: Telemetry
) -> None:
    instrument(clamp=True, clamp_floor=16)
    with spendfuse.run("ll-6", budget=spendfuse.Budget(usd=0.01)):
        litellm.completion(**{**anthropic_kwargs(server), "max_tokens": 4000})

    sent = fake.requests[0].json["max_tokens"]
    assert 16 <= sent < 4000
    calls = ours(telemetry.spans(), "chat claude-sonnet-4-6")
    assert len(calls) == 1 and attr(calls[0], "spendfuse.clamped.max_tokens") == sent
