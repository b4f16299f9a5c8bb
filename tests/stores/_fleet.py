"""Child-process side of the fleet test: one instrumented agent process sharing a user budget."""

from __future__ import annotations

import contextvars
import threading
from typing import Any

REPLY = "a steady answer of exactly ten words for every single call"
PROMPT = [{"role": "user", "content": "Summarise the incident report in two sentences, please."}]
MODEL = "claude-sonnet-4-5"
MAX_TOKENS = 64


def agent_process(store_url: str, budget: dict[str, Any], threads: int, calls: int, barrier: Any, results: Any) -> None:
    """Start ``threads`` agents that call until refused; report what reached this process's fake."""
    import spendfuse
    from spendfuse.testing import FakeProvider, Reply

    # 4 x 32 agents poll one SQLite write lock, unfairly: on a loaded 2-core machine one of them can
    # wait past 5 s. The fleet tests admission, so the wait is generous (a refusal would be a false block).
    spendfuse.instrument(store=store_url, store_timeout=30.0, user_budget=budget, warn_at=None)
    fake = FakeProvider(latency=0.02, responder=lambda _request: Reply.text(REPLY))
    client = fake.anthropic_client()
    refused: list[str] = []
    reserved: list[int] = []
    lock = threading.Lock()

    def agent() -> None:
        with spendfuse.run(user_id="shared-user"):
            barrier.wait()
            for _ in range(calls):
                try:
                    client.messages.create(model=MODEL, max_tokens=MAX_TOKENS, messages=PROMPT)
                except spendfuse.BudgetExceeded as error:
                    with lock:
                        refused.append(error.limit)
                        reserved.append(round(error.requested * 1_000_000))
                    return

    workers = [threading.Thread(target=contextvars.copy_context().run, args=(agent,)) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    usages = [record.usage for record in fake.requests]
    results.put(
        {
            "requests": fake.request_count,
            "tokens": [(u.input_tokens, u.output_tokens) for u in usages if u is not None],
            "refused": refused,
            "worst_case": max(reserved, default=0),
        }
    )
