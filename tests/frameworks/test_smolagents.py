"""smolagents end to end: a real ToolCallingAgent on OpenAIServerModel over a loopback socket."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

pytest.importorskip("smolagents")

from smolagents import OpenAIServerModel, ToolCallingAgent, tool
from smolagents.utils import AgentGenerationError

import spendfuse
from spendfuse.frameworks import is_budget_stop
from spendfuse.testing import FakeProvider, FakeServer, Reply
from tests.conftest import Telemetry

from ._helpers import attr, one_trace, ours, runaway


@tool
def search(q: str) -> str:
    """Search the web.

    Args:
        q: the query
    """
    return "sunny"


def make_agent(server: FakeServer, **kwargs: Any) -> ToolCallingAgent:
    model = OpenAIServerModel(model_id="gpt-4o", api_base=server.openai_base_url, api_key="test-key")
    return ToolCallingAgent(tools=[search], model=model, max_steps=20, verbosity_level=0, **kwargs)


def test_runaway_loop_is_stopped_and_recognisable_through_agent_generation_error(
    fake: FakeProvider, server: FakeServer, instrument: Callable[..., None], telemetry: Telemetry
) -> None:
    instrument(run_budget=spendfuse.Budget(turns=3))
    fake.responder = runaway

    with pytest.raises(AgentGenerationError) as caught:
        make_agent(server, name="researcher").run("weather?")

    assert is_budget_stop(caught.value)
    assert fake.request_count == 3
    runs = ours(telemetry.spans(), "invoke_agent")
    assert [s.name for s in runs] == ["invoke_agent researcher"]
    assert attr(runs[0], "spendfuse.outcome") == "tripped"
    calls = ours(telemetry.spans(), "chat gpt-4o")
    assert len(calls) == 4
    assert one_trace(runs + calls) == {runs[0].context.trace_id}


def test_stream_keeps_the_run_open_until_the_steps_are_consumed(
    fake: FakeProvider, server: FakeServer, instrument: Callable[..., None], telemetry: Telemetry
) -> None:
    instrument(run_budget=spendfuse.Budget(turns=5))
    fake.enqueue(Reply.tool_call("search", {"q": "x"}), Reply.tool_call("final_answer", {"answer": "sunny"}))

    steps = make_agent(server).run("weather?", stream=True)
    first = next(steps)
    assert first is not None
    assert ours(telemetry.spans(), "invoke_agent") == []
    rest = list(steps)

    assert rest
    runs = ours(telemetry.spans(), "invoke_agent")
    assert [s.name for s in runs] == ["invoke_agent ToolCallingAgent"]
    assert attr(runs[0], "spendfuse.outcome") == "completed"
    assert fake.request_count == 2
