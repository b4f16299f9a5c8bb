"""LangGraph end to end: a compiled StateGraph whose node calls a real ChatOpenAI / ChatAnthropic
over a loopback socket to the fake provider."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypedDict

import pytest

pytest.importorskip("langgraph")
pytest.importorskip("langchain_openai")

from langchain_openai import ChatOpenAI
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages

import spendfuse
from spendfuse.frameworks import is_budget_stop
from spendfuse.testing import FakeProvider, FakeServer, Reply
from tests.conftest import Telemetry

from ._helpers import attr, one_trace, ours, runaway


class State(TypedDict):
    messages: Annotated[list[Any], add_messages]


def looping_graph(llm: Any, name: str = "looper") -> Any:
    """model -> model while the model asks for a tool: a runaway loop if the model never stops."""

    def model(state: State) -> dict[str, Any]:
        return {"messages": [llm.invoke(state["messages"])]}

    graph = StateGraph(State)
    graph.add_node("model", model)
    graph.add_edge(START, "model")
    graph.add_conditional_edges("model", lambda state: "model" if state["messages"][-1].tool_calls else END)
    return graph.compile(name=name)


def chat(server: FakeServer) -> ChatOpenAI:
    return ChatOpenAI(model="gpt-4o", base_url=server.openai_base_url, api_key="test-key", max_retries=0)


CONFIG: dict[str, Any] = {"recursion_limit": 200, "configurable": {"thread_id": "thread-9", "user_id": "carol"}}


def test_invoke_runaway_loop_is_stopped_by_the_run_budget(
    fake: FakeProvider, server: FakeServer, instrument: Callable[..., None], telemetry: Telemetry
) -> None:
    instrument(run_budget=spendfuse.Budget(turns=3))
    fake.responder = runaway

    with pytest.raises(spendfuse.TurnLimitExceeded) as caught:
        looping_graph(chat(server)).invoke({"messages": [("user", "hi")]}, CONFIG)

    assert is_budget_stop(caught.value)
    assert fake.request_count == 3
    spans = telemetry.spans()
    runs = ours(spans, "invoke_agent")
    assert [s.name for s in runs] == ["invoke_agent looper"]  # invoke -> stream: one run
    assert attr(runs[0], "spendfuse.run.id") == "thread-9"
    assert attr(runs[0], "user.id") == "carol"
    assert attr(runs[0], "spendfuse.outcome") == "tripped"
    calls = ours(spans, "chat gpt-4o")
    assert len(calls) == 4
    assert one_trace(runs + calls) == {runs[0].context.trace_id}


def test_stream_keeps_the_run_open_until_exhausted(
    fake: FakeProvider, server: FakeServer, instrument: Callable[..., None], telemetry: Telemetry
) -> None:
    instrument(run_budget=spendfuse.Budget(turns=5))
    fake.enqueue(Reply.tool_call("search", {"q": "x"}), Reply.text("done"))

    stream = looping_graph(chat(server)).stream({"messages": [("user", "hi")]}, {"configurable": {"thread_id": "s"}})
    first = next(stream)
    assert "model" in first
    assert ours(telemetry.spans(), "invoke_agent") == []  # open while items remain
    rest = list(stream)

    assert len(rest) == 1
    runs = ours(telemetry.spans(), "invoke_agent")
    assert len(runs) == 1 and attr(runs[0], "spendfuse.outcome") == "completed"
    assert attr(runs[0], "spendfuse.spent.turns") == 2
    assert fake.request_count == 2
    assert spendfuse.current_run() is None


def test_stream_closed_early_ends_the_run(
    fake: FakeProvider, server: FakeServer, instrument: Callable[..., None], telemetry: Telemetry
) -> None:
    instrument(run_budget=spendfuse.Budget(turns=50))
    fake.responder = runaway

    stream = looping_graph(chat(server)).stream({"messages": [("user", "hi")]}, CONFIG)
    for index, _ in enumerate(stream):
        if index == 2:
            break
    stream.close()

    runs = ours(telemetry.spans(), "invoke_agent")
    assert len(runs) == 1 and attr(runs[0], "spendfuse.outcome") == "completed"
    assert fake.request_count == 3
    assert spendfuse.current_run() is None


async def test_ainvoke_and_astream(
    fake: FakeProvider, server: FakeServer, instrument: Callable[..., None], telemetry: Telemetry
) -> None:
    instrument(run_budget=spendfuse.Budget(turns=2))
    fake.responder = runaway
    graph = looping_graph(chat(server))

    with pytest.raises(spendfuse.TurnLimitExceeded):
        await graph.ainvoke({"messages": [("user", "hi")]}, CONFIG)
    assert fake.request_count == 2

    chunks = []
    with pytest.raises(spendfuse.TurnLimitExceeded):
        async for chunk in graph.astream({"messages": [("user", "hi")]}, CONFIG):
            chunks.append(chunk)
    assert len(chunks) == 2
    assert fake.request_count == 4

    runs = ours(telemetry.spans(), "invoke_agent")
    assert [attr(s, "spendfuse.outcome") for s in runs] == ["tripped", "tripped"]
    assert len(one_trace(runs)) == 2  # one trace per invocation


def test_subgraph_invoked_from_a_node_is_a_nested_run(
    fake: FakeProvider, server: FakeServer, instrument: Callable[..., None], telemetry: Telemetry
) -> None:
    instrument(run_budget=spendfuse.Budget(turns=3))
    inner = looping_graph(chat(server), name="inner")

    def delegate(state: State) -> dict[str, Any]:
        return {"messages": inner.invoke({"messages": state["messages"]})["messages"][-1:]}

    outer_graph = StateGraph(State)
    outer_graph.add_node("delegate", delegate)
    outer_graph.add_edge(START, "delegate")
    outer_graph.add_edge("delegate", END)
    outer = outer_graph.compile(name="outer")

    outer.invoke({"messages": [("user", "hi")]})

    runs = {s.name: s for s in ours(telemetry.spans(), "invoke_agent")}
    assert sorted(runs) == ["invoke_agent inner", "invoke_agent outer"]
    outer_id = attr(runs["invoke_agent outer"], "spendfuse.run.id")
    assert attr(runs["invoke_agent inner"], "spendfuse.run.parent_id") == outer_id
    assert attr(runs["invoke_agent outer"], "spendfuse.spent.turns") == 1
    assert fake.request_count == 1


def test_anthropic_chat_model_in_a_graph(
    fake: FakeProvider, server: FakeServer, instrument: Callable[..., None], telemetry: Telemetry
) -> None:
    langchain_anthropic = pytest.importorskip("langchain_anthropic")
    instrument(run_budget=spendfuse.Budget(turns=2))
    fake.responder = lambda _request: Reply.tool_call("search", {"q": "weather"})
    llm = langchain_anthropic.ChatAnthropic(
        model="claude-sonnet-4-6", base_url=server.anthropic_base_url, api_key="test-key", max_retries=0
    )

    with pytest.raises(spendfuse.TurnLimitExceeded):
        looping_graph(llm, name="claude-loop").invoke({"messages": [("user", "hi")]}, CONFIG)

    assert fake.request_count == 2
    assert [s.name for s in ours(telemetry.spans(), "invoke_agent")] == ["invoke_agent claude-loop"]
    assert len(ours(telemetry.spans(), "chat claude-sonnet-4-6")) == 3


async def test_token_streaming_through_astream_messages_mode(
    fake: FakeProvider, server: FakeServer, instrument: Callable[..., None], telemetry: Telemetry
) -> None:
    instrument(run_budget=spendfuse.Budget(turns=2))
    fake.enqueue(Reply.text("It is sunny in Paris."))
    llm = ChatOpenAI(model="gpt-4o", base_url=server.openai_base_url, api_key="test-key", max_retries=0, streaming=True)

    tokens = []
    async for message, _metadata in looping_graph(llm).astream(
        {"messages": [("user", "hi")]}, CONFIG, stream_mode="messages"
    ):
        tokens.append(message.content)

    assert "".join(tokens) == "It is sunny in Paris."
    assert fake.request_count == 1 and fake.requests[0].stream
    runs = ours(telemetry.spans(), "invoke_agent")
    assert len(runs) == 1 and attr(runs[0], "spendfuse.spent.turns") == 1
    calls = ours(telemetry.spans(), "chat gpt-4o")
    assert len(calls) == 1 and attr(calls[0], "gen_ai.request.stream") is True
    assert one_trace(runs + calls) == {runs[0].context.trace_id}
