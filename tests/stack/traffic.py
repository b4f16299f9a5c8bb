"""Run real spendfuse traffic against the fake provider and serve its metrics for Prometheus.

    python tests/stack/traffic.py --port 9464

Sets up an OpenTelemetry MeterProvider whose PrometheusMetricReader is served on 127.0.0.1:PORT,
instruments spendfuse with it, then runs: Anthropic and OpenAI calls (plain and streaming), a run
whose turn budget trips the breaker, a failing call (HTTP 500), calls under a user budget (gauges),
a run crossing warn_at, and a call admitted fail-open while the budget store is down (store error
counter). Prints READY when done and serves the metrics until terminated. Used by the name
contract and real-Prometheus checks in tests/stack.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

import anthropic
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import start_http_server

import spendfuse
from spendfuse.testing import FakeProvider, Reply

ANTHROPIC_MODEL = "claude-sonnet-4-5"
OPENAI_MODEL = "gpt-4o-mini"
USER_BUDGET = spendfuse.Budget(usd=5.0, window="1d")
TEAM_BUDGET = spendfuse.Budget(usd=5.0, window="1d")
FOREIGN_TOKENS = 1_000_000  # recorded by "another instrumentation": never in a dashboard sum
# A loopback port nothing listens on: the budget store is "down".
DEAD_STORE = "redis://127.0.0.1:1/0"


def ask_anthropic(client: Any, text: str) -> None:
    client.messages.create(model=ANTHROPIC_MODEL, max_tokens=200, messages=[{"role": "user", "content": text}])


def ask_openai(client: Any, text: str) -> None:
    client.chat.completions.create(
        model=OPENAI_MODEL, max_completion_tokens=200, messages=[{"role": "user", "content": text}]
    )


def stream_openai(client: Any, text: str) -> None:
    stream = client.chat.completions.create(
        model=OPENAI_MODEL, max_completion_tokens=200, stream=True, messages=[{"role": "user", "content": text}]
    )
    for _chunk in stream:
        pass


def stream_anthropic(client: Any, text: str) -> None:
    with client.messages.stream(
        model=ANTHROPIC_MODEL, max_tokens=200, messages=[{"role": "user", "content": text}]
    ) as stream:
        for _text in stream.text_stream:
            pass


def expect(error: type[BaseException] | tuple[type[BaseException], ...], call: Callable[[], None]) -> None:
    try:
        call()
    except error:
        return
    raise SystemExit(f"traffic: expected {error} from {call}")


def run_traffic(meter_provider: MeterProvider, tracer_provider: TracerProvider) -> None:
    fake = FakeProvider()
    anthropic_client = fake.anthropic_client(max_retries=0)
    openai_client = fake.openai_client(max_retries=0)
    providers = {"meter_provider": meter_provider, "tracer_provider": tracer_provider}

    # 1. Store outage, fail-open: the call goes through and is counted in spendfuse.store.errors.
    spendfuse.instrument(**providers, store=DEAD_STORE, store_failure="open", user_budget=USER_BUDGET)
    with spendfuse.run("stack-run-outage", user_id="carol"):
        ask_openai(openai_client, "Is the store up?")

    # Everything else runs on the in-memory store.
    # The team scope is marked low-cardinality: its key labels the cost and the window gauges.
    spendfuse.instrument(
        **providers,
        store="memory://",
        store_failure="closed",
        user_budget=USER_BUDGET,
        budgets={"team": TEAM_BUDGET},
        metric_scopes=["team"],
    )

    # 2. A normal run with both providers, plain and streaming calls, in the search team's budget.
    with spendfuse.run(
        "stack-run-1", user_id="alice", budget=spendfuse.Budget(usd=1.0, turns=10), scopes={"team": "search"}
    ):
        ask_anthropic(anthropic_client, "Plan the trip.")
        ask_openai(openai_client, "Summarise the plan.")
        stream_openai(openai_client, "Stream the summary.")
        stream_anthropic(anthropic_client, "Stream the plan.")

    # 3. A run that crosses warn_at (4 of 5 turns) and then trips its turn budget.
    with spendfuse.run("stack-run-trip", user_id="bob", budget=spendfuse.Budget(turns=5)):
        for i in range(5):
            ask_openai(openai_client, f"Step {i}")
        expect(spendfuse.BudgetExceeded, lambda: ask_anthropic(anthropic_client, "One step too many."))

    # 4. A failing call: the provider answers HTTP 500, and the run ends with the error.
    fake.enqueue(Reply.error(500))

    def failing_run() -> None:
        with spendfuse.run("stack-run-error", user_id="alice"):
            ask_anthropic(anthropic_client, "Fail, please.")

    expect(anthropic.InternalServerError, failing_run)

    # 5. A framework's own GenAI instrumentation records gen_ai.client.token.usage too, under its
    # own meter: the dashboards must count spendfuse's measurement only (otel_scope_name).
    foreign = meter_provider.get_meter("opentelemetry.instrumentation.someframework")
    histogram = foreign.create_histogram("gen_ai.client.token.usage", unit="{token}")
    histogram.record(
        FOREIGN_TOKENS,
        {
            "gen_ai.token.type": "input",
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "anthropic",
            "gen_ai.request.model": ANTHROPIC_MODEL,
        },
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True, help="serve /metrics on 127.0.0.1:PORT")
    args = parser.parse_args(argv)

    resource = Resource.create({"service.name": "spendfuse-stack-traffic"})
    reader = PrometheusMetricReader()
    meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
    tracer_provider = TracerProvider(resource=resource)  # spans are made (and dropped): no exporter
    start_http_server(args.port, addr="127.0.0.1")

    run_traffic(meter_provider, tracer_provider)
    spendfuse.flush()  # push out what the batch span processor and the metric reader still hold
    print("READY", flush=True)

    stop = False

    def on_term(_signum: int, _frame: Any) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    while not stop:
        time.sleep(0.2)
    spendfuse.uninstrument()
    meter_provider.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
