"""OpenAI Agents SDK end to end: real Runner and Agent, real AsyncOpenAI client, the fake provider."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

pytest.importorskip("agents")

from agents import Agent, OpenAIChatCompletionsModel, OpenAIResponsesModel, RunConfig, Runner, function_tool
from agents.exceptions import MaxTurnsExceeded

import spendfuse
from spendfuse.frameworks import is_budget_stop
from spendfuse.testing import FakeProvider, Reply
from tests.conftest import Telemetry

from ._helpers import attr, one_trace, ours, runaway


@function_tool
def search(q: str) -> str:
    """Search the web."""
    return "sunny"


def make_agent(fake: FakeProvider, *, responses: bool = False, **kwargs: Any) -> Agent[Any]:
    client = fake.async_openai_client()
    model: Any = (
        OpenAIResponsesModel(model="gpt-4o", openai_client=client)
        if responses
        else OpenAIChatCompletionsModel(model="gpt-4o", openai_client=client)
    )
    return Agent(name="triage", instructions="Be brief.", model=model, tools=[search], **kwargs)


def test_run_sync_runaway_loop_is_stopped_by_the_run_budget(
    fake: FakeProvider, instrument: Callable[..., None], telemetry: Telemetry
) -> None:
    instrument(run_budget=spendfuse.Budget(turns=4))
    fake.responder = runaway

    with pytest.raises(Exception) as caught:
        Runner.run_sync(make_agent(fake), "weather?", max_turns=50)

    assert not isinstance(caught.value, MaxTurnsExceeded)
    assert is_budget_stop(caught.value)
    assert fake.request_count == 4
    spans = telemetry.spans()
    runs = ours(spans, "invoke_agent")
    assert [s.name for s in runs] == ["invoke_agent triage"]  # run_sync -> run: one run
    assert attr(runs[0], "spendfuse.outcome") == "tripped"
    calls = ours(spans, "chat gpt-4o")
    assert len(calls) == 5
    assert one_trace(runs + calls) == {runs[0].context.trace_id}


async def test_run_takes_the_trace_id_and_user_from_run_config(
    fake: FakeProvider, instrument: Callable[..., None], telemetry: Telemetry
) -> None:
    instrument()
    config = RunConfig(trace_id="trace_0123456789abcdef0123456789abcdef", trace_metadata={"user_id": "alice"})

    result = await Runner.run(make_agent(fake), "hi", run_config=config)

    assert result.final_output == "Hello from the fake provider."
    runs = ours(telemetry.spans(), "invoke_agent")
    assert len(runs) == 1
    assert attr(runs[0], "spendfuse.run.id") == "trace_0123456789abcdef0123456789abcdef"
    assert attr(runs[0], "user.id") == "alice"
    assert fake.request_count == 1


async def test_run_streamed_keeps_the_run_open_until_the_agent_loop_ends(
    fake: FakeProvider, instrument: Callable[..., None], telemetry: Telemetry
) -> None:
    instrument(run_budget=spendfuse.Budget(turns=3))
    fake.enqueue(Reply.tool_call("search", {"q": "x"}), Reply.text("It is sunny."))

    result = Runner.run_streamed(make_agent(fake, responses=True), "weather?")
    assert spendfuse.current_run() is None  # the caller's context is left as it was
    assert ours(telemetry.spans(), "invoke_agent") == []
    events = [event async for event in result.stream_events()]
    await result.run_loop_task  # type: ignore[misc]

    assert result.final_output == "It is sunny."
    assert events
    runs = ours(telemetry.spans(), "invoke_agent")
    assert len(runs) == 1 and attr(runs[0], "spendfuse.outcome") == "completed"
    assert attr(runs[0], "spendfuse.spent.turns") == 2
    calls = ours(telemetry.spans(), "chat gpt-4o")
    assert len(calls) == 2 and all(attr(s, "gen_ai.request.stream") for s in calls)
    assert one_trace(runs + calls) == {runs[0].context.trace_id}
    assert fake.request_count == 2


async def test_run_streamed_budget_stop_surfaces_from_stream_events(
    fake: FakeProvider, instrument: Callable[..., None], telemetry: Telemetry
) -> None:
    instrument(run_budget=spendfuse.Budget(turns=2))
    fake.responder = runaway

    result = Runner.run_streamed(make_agent(fake), "weather?", max_turns=50)
    with pytest.raises(Exception) as caught:
        async for _ in result.stream_events():
            pass

    assert is_budget_stop(caught.value)
    assert fake.request_count == 2
    runs = ours(telemetry.spans(), "invoke_agent")
    assert len(runs) == 1 and attr(runs[0], "spendfuse.outcome") == "tripped"


async def test_agent_as_tool_opens_a_nested_run(
    fake: FakeProvider, instrument: Callable[..., None], telemetry: Telemetry
) -> None:
    instrument(run_budget=spendfuse.Budget(turns=10))
    helper = make_agent(fake)
    helper.name = "helper"
    manager = Agent(
        name="manager",
        model=OpenAIChatCompletionsModel(model="gpt-4o", openai_client=fake.async_openai_client()),
        tools=[helper.as_tool(tool_name="ask_helper", tool_description="Ask the helper.")],
    )
    fake.enqueue(Reply.tool_call("ask_helper", {"input": "weather?"}), Reply.text("sunny"), Reply.text("done"))

    result = await Runner.run(manager, "go")

    assert result.final_output == "done"
    assert fake.request_count == 3
    runs = ours(telemetry.spans(), "invoke_agent")
    by_name = {s.name: s for s in runs}
    assert sorted(by_name) == ["invoke_agent helper", "invoke_agent manager"]
    parent_id = attr(by_name["invoke_agent manager"], "spendfuse.run.id")
    assert attr(by_name["invoke_agent helper"], "spendfuse.run.parent_id") == parent_id
    assert attr(by_name["invoke_agent manager"], "spendfuse.spent.turns") == 3  # nested spend rolls up


def test_run_takes_the_id_of_an_enclosing_agents_trace(
    fake: FakeProvider, instrument: Callable[..., None], telemetry: Telemetry
) -> None:
    import agents

    instrument()
    agents.set_trace_processors([])  # tracing on, exported nowhere
    agents.set_tracing_disabled(False)
    try:
        with agents.trace("workflow", trace_id="trace_fedcba9876543210fedcba9876543210"):
            Runner.run_sync(make_agent(fake), "hi")
    finally:
        agents.set_tracing_disabled(True)

    runs = ours(telemetry.spans(), "invoke_agent")
    assert [attr(s, "spendfuse.run.id") for s in runs] == ["trace_fedcba9876543210fedcba9876543210"]
