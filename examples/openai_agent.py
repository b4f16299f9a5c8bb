"""A real OpenAI tool-using agent, made observable and spend-safe by one import.

    OPENAI_API_KEY=sk-... python examples/openai_agent.py

Without a key it says so and exits 0 (try ``spendfuse demo`` for a keyless tour). Afterwards,
``spendfuse runs`` and ``spendfuse show RUN_ID`` read the run back from the local ledger (or it is in
your collector when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set).
"""

import os
import sys
from datetime import datetime, timezone
from typing import Any

import spendfuse.auto  # the one line: instruments the SDKs, sets up telemetry, flushes at exit

MODEL = os.environ.get("OPENAI_MODEL", "gpt-4o-mini")
TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "utc_time",
            "description": "The current date and time in UTC, ISO 8601.",
            "parameters": {"type": "object", "properties": {}},
        },
    }
]


@spendfuse.tool
def utc_time() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def ask(client: Any, question: str) -> str:
    messages: list[dict[str, Any]] = [{"role": "user", "content": question}]
    while True:
        response = client.chat.completions.create(
            model=MODEL, max_completion_tokens=300, tools=TOOLS, messages=messages
        )
        message = response.choices[0].message
        messages.append(message.model_dump(exclude_none=True))
        if not message.tool_calls:
            return message.content or ""
        for call in message.tool_calls:
            messages.append({"role": "tool", "tool_call_id": call.id, "content": utc_time()})


def main() -> int:
    if not os.environ.get("OPENAI_API_KEY"):
        print("OPENAI_API_KEY is not set, so this example (which calls the real OpenAI API) does nothing.")
        print("Set it to run the agent, or run `spendfuse demo` for a tour that needs no key.")
        return 0
    import openai

    client = openai.OpenAI()
    budget = spendfuse.Budget(usd=0.02, turns=6, repeats=2)
    try:
        with spendfuse.run(user_id=os.environ.get("USER", "example"), name="openai-example", budget=budget) as run:
            print(ask(client, "What day of the week is it in UTC right now? Use the tool."))
    except spendfuse.BudgetExceeded as error:
        print(f"stopped by a budget: {error}")
    print(f"run {run.run_id}: ${run.spent.usd:.4f}, {run.spent.turns} turns, {run.spent.tokens} tokens")
    print(f"see it with: spendfuse show {run.run_id}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
