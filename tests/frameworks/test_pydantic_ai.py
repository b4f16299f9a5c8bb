"""pydantic-ai end to end: real Agent, real openai/anthropic clients, the fake provider."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
import wrapt

pytest.importorskip("pydantic_ai")

from pydantic_ai import Agent
from pydantic_ai.models.anthropic import AnthropicModel
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.anthropic import AnthropicProvider
from pydantic_ai.providers.openai import OpenAIProvider

import spendfuse
from spendfuse.frameworks import is_budget_stop
from spendfuse.frameworks.usage import DUPLICATE
from spendfuse.testing import FakeProvider, Reply
from tests.conftest import Telemetry

from ._helpers import attr, one_trace, ours, runaway

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def openai_agent(fake: FakeProvider, **kwargs: Any) -> Agent[None, str]:
    model = OpenAIChatModel("gpt-4o", provider=OpenAIProvider(openai_client=fake.async_openai_client()))
    agent: Agent[None, str] = Agent(model, name="weather", **kwargs)

    @agent.tool_plain
    def search(q: str) -> str:
        return "sunny"

    return agent


def test_runaway_tool_loop_is_stopped_by_the_run_budget_without_a_run(
    fake: FakeProvider, instrument: Callable[..., None], telemetry: Telemetry
) -> None:
    instrument(run_budget=spendfuse.Budget(turns=3))
    fake.responder = runaway
    agent = openai_agent(fake)

    with pytest.raises(spendfuse.TurnLimitExceeded) as caught:
        agent.run_sync("What is the weather?")

    assert is_budget_stop(caught.value)
    assert fake.request_count == 3  # without the adapter pydantic-ai's own 50-request limit ends it
    spans = telemetry.spans()
    runs = ours(spans, "invoke_agent")
    assert [s.name for s in runs] == ["invoke_agent weather"]
    assert attr(runs[0], "spendfuse.outcome") == "tripped"
    assert attr(runs[0], "spendfuse.spent.turns") == 3
    calls = ours(spans, "chat gpt-4o")
    assert len(calls) == 4  # three answered, the fourth refused before it was sent
    assert sum(1 for s in calls if attr(s, "spendfuse.breaker.tripped")) == 1
    assert one_trace(runs + calls) == {runs[0].context.trace_id}
    assert {attr(s, "spendfuse.run.id") for s in calls} == {attr(runs[0], "spendfuse.run.id")}
    assert spendfuse.current_run() is None


def test_without_the_adapter_only_pydantic_ai_own_limit_stops_the_loop(
    fake: FakeProvider, instrument: Callable[..., None]
) -> None:
    """The failure the adapter fixes: same budget, adapter off, the loop runs to pydantic-ai's limit."""
    from pydantic_ai.exceptions import UsageLimitExceeded

    instrument(run_budget=spendfuse.Budget(turns=3), disable_frameworks="pydantic_ai")
    fake.responder = runaway

    with pytest.raises(UsageLimitExceeded):
        openai_agent(fake).run_sync("What is the weather?")

    assert fake.request_count == 50


def test_run_takes_pydantic_ai_run_id_and_metadata_user(
    fake: FakeProvider, instrument: Callable[..., None], telemetry: Telemetry
) -> None:
    instrument()
    agent = openai_agent(fake)

    given = agent.run_sync("hi", run_id="ticket-7", metadata={"user_id": "alice"})
    generated = agent.run_sync("hi")

    runs = ours(telemetry.spans(), "invoke_agent")
    assert [attr(s, "spendfuse.run.id") for s in runs] == ["ticket-7", generated.run_id]
    assert given.run_id == "ticket-7"
    assert attr(runs[0], "user.id") == "alice"
    assert fake.request_count == 2
    calls = ours(telemetry.spans(), "chat")
    assert [attr(s, "spendfuse.run.id") for s in calls] == ["ticket-7", generated.run_id]


async def test_run_stream_keeps_the_run_open_until_the_stream_is_closed(
    fake: FakeProvider, instrument: Callable[..., None], telemetry: Telemetry
) -> None:
    instrument(run_budget=spendfuse.Budget(turns=5))
    fake.enqueue(Reply.text("It is sunny in Paris today."))
    agent = openai_agent(fake)

    async with agent.run_stream("weather?") as stream:
        inside = spendfuse.current_run()
        assert inside is not None and inside.name == "weather"
        assert ours(telemetry.spans(), "invoke_agent") == []  # still open
        chunks = [chunk async for chunk in stream.stream_output(debounce_by=None)]
    assert chunks[-1] == "It is sunny in Paris today."
    assert spendfuse.current_run() is None

    runs = ours(telemetry.spans(), "invoke_agent")
    assert len(runs) == 1 and attr(runs[0], "spendfuse.outcome") == "completed"
    assert attr(runs[0], "spendfuse.spent.turns") == 1
    calls = ours(telemetry.spans(), "chat")
    assert len(calls) == 1 and attr(calls[0], "gen_ai.request.stream") is True
    assert fake.request_count == 1 and fake.requests[0].stream


async def test_iter_and_async_run_nest_inside_an_explicit_run(
    fake: FakeProvider, instrument: Callable[..., None], telemetry: Telemetry
) -> None:
    instrument(run_budget=spendfuse.Budget(turns=3))
    fake.responder = runaway
    agent = openai_agent(fake)

    async with spendfuse.run("outer", user_id="bob") as outer:
        async with agent.iter("hi") as agent_run:
            node = agent_run.next_node
            for _ in range(2):  # the first model request and its tool call
                node = await agent_run.next(node)
        with pytest.raises(spendfuse.TurnLimitExceeded):
            await agent.run("again")  # the outer run's turns=3 applies to its nested runs

    assert outer.spent.turns == 3
    assert fake.request_count == 3
    runs = ours(telemetry.spans(), "invoke_agent")
    assert sorted(s.name for s in runs) == ["invoke_agent agent", "invoke_agent weather", "invoke_agent weather"]
    nested = [s for s in runs if s.name == "invoke_agent weather"]
    assert {attr(s, "spendfuse.run.parent_id") for s in nested} == {"outer"}
    assert {attr(s, "user.id") for s in nested} == {"bob"}
    assert one_trace(runs) == {outer.span.get_span_context().trace_id}  # type: ignore[union-attr]


def test_anthropic_model_and_streaming_sync(
    fake: FakeProvider, instrument: Callable[..., None], telemetry: Telemetry
) -> None:
    instrument(run_budget=spendfuse.Budget(turns=2))
    provider = AnthropicProvider(anthropic_client=fake.async_anthropic_client())
    model = AnthropicModel("claude-sonnet-4-6", provider=provider)
    agent: Agent[None, str] = Agent(model, name="claude-agent")

    result = agent.run_sync("hi")
    with agent.run_stream_sync("hi again") as stream:
        text = "".join(stream.stream_text(delta=True))

    assert result.output == text == "Hello from the fake provider."
    runs = ours(telemetry.spans(), "invoke_agent")
    assert [s.name for s in runs] == ["invoke_agent claude-agent"] * 2
    assert fake.request_count == 2
    assert len(ours(telemetry.spans(), "chat claude-sonnet-4-6")) == 2


def test_disabled_adapter_opens_no_run_but_calls_stay_traced(
    fake: FakeProvider, instrument: Callable[..., None], telemetry: Telemetry
) -> None:
    instrument(disable_frameworks="pydantic_ai", run_budget=spendfuse.Budget(turns=1))
    openai_agent(fake).run_sync("hi")
    openai_agent(fake).run_sync("hi")  # no run: no run budget applies

    assert ours(telemetry.spans(), "invoke_agent") == []
    assert len(ours(telemetry.spans(), "chat")) == 2
    assert fake.request_count == 2


def test_an_adapter_failure_never_breaks_the_call(
    fake: FakeProvider, instrument: Callable[..., None], telemetry: Telemetry, monkeypatch: pytest.MonkeyPatch
) -> None:
    from spendfuse.frameworks import pydantic_ai as adapter

    def broken(*_args: Any) -> Any:
        raise RuntimeError("adapter bug")

    monkeypatch.setattr(adapter, "_identity", broken)
    monkeypatch.setattr(adapter, "_adopt", broken)
    instrument()

    assert openai_agent(fake).run_sync("hi").output == "Hello from the fake provider."
    assert ours(telemetry.spans(), "invoke_agent") == []  # no run, but the call went through
    assert len(ours(telemetry.spans(), "chat")) == 1


def test_uninstrument_removes_the_patch(fake: FakeProvider, instrument: Callable[..., None]) -> None:
    instrument()
    assert isinstance(Agent.__dict__["iter"], wrapt.FunctionWrapper)
    spendfuse.uninstrument()
    assert not isinstance(Agent.__dict__["iter"], wrapt.FunctionWrapper)
    openai_agent(fake).run_sync("hi")
    assert fake.request_count == 1


def test_framework_spans_do_not_double_count(
    fake: FakeProvider, instrument: Callable[..., None], telemetry: Telemetry
) -> None:
    from pydantic_ai.models.instrumented import InstrumentationSettings

    instrument()
    fake.enqueue(Reply.tool_call("search", {"q": "x"}), Reply.text("done"))
    settings = InstrumentationSettings(
        tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider
    )
    agent = openai_agent(fake, instrument=settings) if _takes_instrument() else openai_agent(fake)
    if not _takes_instrument():
        Agent.instrument_all(settings)
    try:
        agent.run_sync("weather?")
    finally:
        Agent.instrument_all(False)

    spans = telemetry.spans()
    theirs = [s for s in spans if s.instrumentation_scope and s.instrumentation_scope.name != "spendfuse"]
    their_calls = [s for s in theirs if attr(s, "gen_ai.operation.name") == "chat"]
    assert len(their_calls) == 2 and all(attr(s, DUPLICATE) is True for s in their_calls)
    assert all(attr(s, "gen_ai.usage.input_tokens") for s in their_calls)  # they do carry usage
    our_calls = ours(spans, "chat")
    assert len(our_calls) == 2 and not any(attr(s, DUPLICATE) for s in our_calls)

    true_input = sum(r.usage.input_tokens for r in fake.requests if r.usage is not None)
    true_output = sum(r.usage.output_tokens for r in fake.requests if r.usage is not None)
    counted = [s for s in spans if attr(s, "gen_ai.usage.input_tokens") is not None and not attr(s, DUPLICATE)]
    assert sum(attr(s, "gen_ai.usage.input_tokens") for s in counted) == true_input
    assert sum(attr(s, "gen_ai.usage.output_tokens") for s in counted) == true_output

    # Both meters record gen_ai.client.token.usage; the spendfuse scope alone is the true total.
    per_scope: dict[str, float] = {}
    data = telemetry.metrics_data()
    for resource_metrics in data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                if metric.name == "gen_ai.client.token.usage":
                    total = sum(point.sum for point in metric.data.data_points)
                    per_scope[scope_metrics.scope.name] = per_scope.get(scope_metrics.scope.name, 0) + total
    assert per_scope["spendfuse"] == true_input + true_output
    assert sum(per_scope.values()) == 2 * (true_input + true_output)


def _takes_instrument() -> bool:
    import inspect

    return "instrument" in inspect.signature(Agent.__init__).parameters


def test_two_concurrent_invocations_are_two_runs(
    fake: FakeProvider, instrument: Callable[..., None], telemetry: Telemetry
) -> None:
    instrument(run_budget=spendfuse.Budget(turns=1))
    agent = openai_agent(fake)

    async def both() -> list[Any]:
        return list(await asyncio.gather(agent.run("a"), agent.run("b")))

    results = asyncio.run(both())

    assert len(results) == 2 and fake.request_count == 2  # turns=1 each: separate budgets
    runs = ours(telemetry.spans(), "invoke_agent")
    assert len(runs) == 2 and len(one_trace(runs)) == 2
