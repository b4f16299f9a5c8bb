"""Record one run of every kind into the ledger named by argv[1]; print {kind: run_id} as JSON.

Runs in a subprocess (a real program using the public API and the fake provider). The program has
its own TracerProvider and only names the ledger (``ledger=``): instrument() adds the ledger's
processor to that provider, the path every application takes.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

from opentelemetry.sdk.trace import TracerProvider

import spendfuse
from spendfuse.testing import FakeProvider, RecordedRequest, Reply

MODEL = "claude-sonnet-4-6"
UNPRICED = "in-house-model-7"  # no price anywhere: its cost is unknown, never $0
PRICES = {MODEL: {"input": 3.0, "output": 15.0}}
TOOLS = [
    {
        "name": "step",
        "description": "Do one step.",
        "input_schema": {"type": "object", "properties": {"n": {"type": "integer"}}},
    }
]


@spendfuse.tool
def step(n: int, pause: float = 0.0) -> str:
    time.sleep(pause)
    return f"step {n} done " + "with a long and detailed result " * 20


def agent(client: Any, *, pause: float = 0.0, max_steps: int = 30, model: str = MODEL) -> str:
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Work through the steps."}]
    for _ in range(max_steps):
        response = client.messages.create(model=model, max_tokens=256, tools=TOOLS, messages=messages)
        messages.append({"role": "assistant", "content": response.content})
        if response.stop_reason != "tool_use":
            return "done"
        results = [
            {"type": "tool_result", "tool_use_id": b.id, "content": step(b.input.get("n", 0), pause)}
            for b in response.content
            if b.type == "tool_use"
        ]
        messages.append({"role": "user", "content": results})
    return "gave up"


def counting(request: RecordedRequest) -> Reply:
    return Reply.tool_call("step", {"n": request.index})  # new arguments every time: no repeats


def same(_request: RecordedRequest) -> Reply:
    return Reply.tool_call("step", {"n": 1})


def play(
    run_id: str,
    *,
    user: str | None = None,
    budget: spendfuse.Budget | None = None,
    script: tuple[Reply, ...] = (),
    responder: Any = None,
    pause: float = 0.0,
    model: str = MODEL,
) -> None:
    fake = FakeProvider(responder=responder)
    fake.enqueue(*script)
    client = fake.anthropic_client()
    try:
        with spendfuse.run(run_id, user_id=user, budget=budget, name="kinds"):
            agent(client, pause=pause, model=model)
    except Exception:
        pass  # every outcome is wanted here; the ledger records how each run ended
    finally:
        client.close()


def main() -> int:
    ledger, store = sys.argv[1], sys.argv[2]
    provider = TracerProvider()
    settings: dict[str, Any] = {
        "tracer_provider": provider,
        "ledger": ledger,
        "prices": PRICES,
        "store": store,
        "warn_at": 0.5,
        "user_budget": {"users": {"carol": {"usd": 0.01, "window": "1d"}}},
    }
    spendfuse.instrument(**settings)
    kinds = {
        "completed": "kind-completed",
        "usd": "kind-usd",
        "turns": "kind-turns",
        "tokens": "kind-tokens",
        "seconds": "kind-seconds",
        "repeats": "kind-repeats",
        "user": "kind-user",
        "error": "kind-error",
        "approved": "kind-approved",
        "nested": "kind-nested-child",
        "parent": "kind-nested",
        "unfinished": "kind-unfinished",
        "unpriced": "kind-unpriced",
    }
    play(
        kinds["completed"],
        user="alice",
        budget=spendfuse.Budget(usd=1),
        script=(Reply.tool_call("step", {"n": 1}), Reply.text("All done.")),
    )
    play(kinds["usd"], budget=spendfuse.Budget(usd=0.012), responder=counting)
    play(kinds["turns"], budget=spendfuse.Budget(turns=3), responder=counting)
    play(kinds["tokens"], budget=spendfuse.Budget(tokens=2500), responder=counting)
    play(kinds["seconds"], budget=spendfuse.Budget(seconds=0.3), responder=counting, pause=0.2)
    play(kinds["repeats"], budget=spendfuse.Budget(repeats=2), responder=same)
    play(kinds["user"], user="carol", responder=counting)
    play(kinds["error"], user="alice", script=(Reply.tool_call("step", {"n": 1}), Reply.error(500)))
    play(
        kinds["unpriced"], user="dave", model=UNPRICED, script=(Reply.tool_call("step", {"n": 1}), Reply.text("Done."))
    )
    try:
        with spendfuse.run(kinds["parent"], budget=spendfuse.Budget(turns=2), name="parent"):
            play(kinds["nested"], responder=counting)
    except spendfuse.BudgetExceeded:
        pass
    spendfuse.instrument(**settings, on_exceeded=lambda error: True)
    play(
        kinds["approved"],
        budget=spendfuse.Budget(turns=2),
        script=(Reply.tool_call("step", {"n": 1}), Reply.tool_call("step", {"n": 2}), Reply.text("Done.")),
    )
    print(json.dumps(kinds), flush=True)
    # A process that dies mid-run: its calls reach the ledger, the end of its run never does.
    fake = FakeProvider(responder=counting)
    client = fake.anthropic_client()
    with spendfuse.run(kinds["unfinished"]):
        client.messages.create(model=MODEL, max_tokens=64, messages=[{"role": "user", "content": "x"}])
        provider.force_flush()
        os._exit(0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
