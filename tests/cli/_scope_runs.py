"""Runs of two teams in one org, recorded into the ledger argv[1] and the budget store argv[2]."""

from __future__ import annotations

import sys

from opentelemetry.sdk.trace import TracerProvider

import spendfuse
from spendfuse.testing import FakeProvider, FakeUsage

MODEL = "claude-sonnet-4-6"
PRICES = {MODEL: {"input": 3.0, "output": 15.0}}


def main() -> int:
    ledger, store = sys.argv[1], sys.argv[2]
    spendfuse.instrument(
        tracer_provider=TracerProvider(),
        ledger=ledger,
        prices=PRICES,
        store=store,
        warn_at=None,
        budgets={"team": {"search": {"usd": 1, "window": "1d"}, "*": {"usd": 5, "window": "1d"}}},
    )
    fake = FakeProvider(usage=FakeUsage(input_tokens=1000, output_tokens=200))  # $0.006 a call
    client = fake.anthropic_client()
    for team, calls in (("search", 3), ("ads", 2)):
        with spendfuse.run(f"run-{team}", scopes={"team": team, "org": "acme"}):
            for _ in range(calls):
                client.messages.create(model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "hi"}])
    with spendfuse.run("run-none"):
        client.messages.create(model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "hi"}])
    spendfuse.uninstrument()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
