"""A small tool-using agent, written the way people write agents with the Anthropic SDK.

Nothing in it knows about budgets: a plain loop over ``client.messages.create`` with tools, each
requested tool run through a ``@spendfuse.tool`` function and answered with a ``tool_result``.
spendfuse sees every call because it patches the SDK, and refuses the ones that would break a
budget by raising ``spendfuse.BudgetExceeded`` out of ``messages.create``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import spendfuse

MODEL = "claude-sonnet-4-6"
MAX_TOKENS = 256
SYSTEM = "You are a concise travel and operations assistant. Use the tools when they help."

TOOLS: list[dict[str, Any]] = [
    {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
    {
        "name": "search_flights",
        "description": "Direct flights between two cities this weekend.",
        "input_schema": {
            "type": "object",
            "properties": {"origin": {"type": "string"}, "destination": {"type": "string"}},
            "required": ["origin", "destination"],
        },
    },
    {
        "name": "check_booking",
        "description": "Status of a booking by id.",
        "input_schema": {
            "type": "object",
            "properties": {"booking_id": {"type": "string"}},
            "required": ["booking_id"],
        },
    },
    {
        "name": "fetch_document",
        "description": "The full text of an internal document.",
        "input_schema": {"type": "object", "properties": {"doc_id": {"type": "string"}}, "required": ["doc_id"]},
    },
]

_REPORT_PARAGRAPH = (
    "Revenue grew in every region this quarter, led by the enterprise segment, while support costs "
    "fell after the new triage process. Churn in the self-serve tier stayed flat; the pricing test "
    "in two markets lifted conversion slightly but raised refund requests. "
)


@spendfuse.tool
def get_weather(city: str) -> str:
    return f"{city}: 21°C, clear skies, light wind from the north-west."


@spendfuse.tool
def search_flights(origin: str, destination: str) -> str:
    return f"{origin} -> {destination}: Fri 18:05 (EUR 129), Sat 07:40 (EUR 98); return Sun 20:15 (EUR 115)."


@spendfuse.tool
def check_booking(booking_id: str) -> str:
    # The tool never says anything new: the kind of result a model keeps re-checking forever.
    return f"Booking {booking_id}: status PENDING. Check again later."


@spendfuse.tool
def fetch_document(doc_id: str) -> str:
    return f"[{doc_id}]\n" + _REPORT_PARAGRAPH * 45


TOOL_FUNCTIONS: dict[str, Callable[..., str]] = {
    "get_weather": get_weather,
    "search_flights": search_flights,
    "check_booking": check_booking,
    "fetch_document": fetch_document,
}


def run_agent(client: Any, task: str, *, model: str = MODEL, max_steps: int = 25) -> str:
    """Ask the model, run the tools it requests, repeat until it answers in plain text."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": task}]
    for _step in range(max_steps):
        response = client.messages.create(
            model=model, max_tokens=MAX_TOKENS, system=SYSTEM, tools=TOOLS, messages=messages
        )
        messages.append({"role": "assistant", "content": response.content})
        if response.stop_reason != "tool_use":
            return "".join(block.text for block in response.content if block.type == "text")
        results = []
        for block in response.content:
            if block.type == "tool_use":
                output = TOOL_FUNCTIONS[block.name](**block.input)
                results.append({"type": "tool_result", "tool_use_id": block.id, "content": output})
        messages.append({"role": "user", "content": results})
    return "(stopped after max_steps)"
