"""A real Anthropic tool-using agent, made observable and spend-safe by one import.

    ANTHROPIC_API_KEY=sk-ant-... python examples/anthropic_agent.py

Without a key it says so and exits 0 (try ``spendfuse demo`` for a keyless tour). Afterwards,
``spendfuse runs`` and ``spendfuse show RUN_ID`` read the run back from the local ledger (or it is in
your collector when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set).
"""

import os
import sys
from datetime import datetime, timezone
from typing import Any

import spendfuse.auto  # the one line: instruments the SDKs, sets up telemetry, flushes at exit

MODEL = os.environ.get("ANTHROPIC_MODEL", "claude-sonnet-4-6")
TOOLS: list[dict[str, Any]] = [
    {
        "name": "utc_time",
        "description": "The current date and time in UTC, ISO 8601.",
        "input_schema": {"type": "object", "properties": {}},
    }
]


@spendfuse.tool
def utc_time() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def ask(client: Any, question: str) -> str:
    messages: list[dict[str, Any]] = [{"role": "user", "content": question}]
    while True:
        response = client.messages.create(model=MODEL, max_tokens=300, tools=TOOLS, messages=messages)
        messages.append({"role": "assistant", "content": response.content})
        if response.stop_reason != "tool_use":
            return "".join(block.text for block in response.content if block.type == "text")
        results = [
            {"type": "tool_result", "tool_use_id": block.id, "content": utc_time()}
            for block in response.content
            if block.type == "tool_use"
        ]
        messages.append({"role": "user", "content": results})


def main() -> int:
    if not os.environ.get("ANTHROPIC_API_KEY"):
        print("ANTHROPIC_API_KEY is not set, so this example (which calls the real Anthropic API) does nothing.")
        print("Set it to run the agent, or run `spendfuse demo` for a tour that needs no key.")
        return 0
    import anthropic

    client = anthropic.Anthropic()
    budget = spendfuse.Budget(usd=0.05, turns=6, repeats=2)
    try:
        with spendfuse.run(user_id=os.environ.get("USER", "example"), name="anthropic-example", budget=budget) as run:
            print(ask(client, "What day of the week is it in UTC right now? Use the tool."))
    except spendfuse.BudgetExceeded as error:
        print(f"stopped by a budget: {error}")
    print(f"run {run.run_id}: ${run.spent.usd:.4f}, {run.spent.turns} turns, {run.spent.tokens} tokens")
    print(f"see it with: spendfuse show {run.run_id}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
