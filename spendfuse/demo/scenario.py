"""The scripted demo: three users, three agent runs, against the built-in fake provider.

* alice (pro) plans a trip: two tools, then an answer -- completes within budget.
* bob (pro) waits for a booking that never confirms: the model re-checks it with the same arguments
  until the run's ``repeats`` breaker trips.
* carol (free tier, $0.01 a day) summarizes a long report: the second call would break her daily
  budget, so it is refused before it is sent.

No API key, no network: the fake answers the real Anthropic SDK through a mock transport.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import FrameType

from rich.console import Console
from rich.text import Text

import spendfuse
from spendfuse.cli import render
from spendfuse.cli.reasons import explain
from spendfuse.demo.agent import MODEL, run_agent
from spendfuse.demo.progress import ConsoleLogHandler
from spendfuse.demo.telemetry import DemoTelemetry, setup
from spendfuse.ledger.queries import find_run, list_runs, run_detail
from spendfuse.ledger.store import connect
from spendfuse.testing import FakeProvider, RecordedRequest, Reply

LATENCY_SECONDS = 0.03
PRICES = {MODEL: {"input": 3.0, "output": 15.0, "cache_read": 0.3, "cache_write": 3.75}}  # USD per MTok
RUN_BUDGET = spendfuse.Budget(usd=0.25, turns=12, repeats=3)
USER_BUDGET = {
    "tiers": {"free": {"usd": 0.01, "window": "1d"}, "pro": {"usd": 50, "window": "1d"}},
    "users": {"alice": "pro", "bob": "pro"},
    "default": "free",
}


@dataclass(frozen=True)
class AgentRun:
    user: str
    tier: str
    slug: str
    task: str
    script: tuple[Reply, ...] = ()
    responder: Callable[[RecordedRequest], Reply] | None = None


@dataclass
class RunResult:
    spec: AgentRun
    run_id: str
    answer: str | None = None
    stopped: spendfuse.BudgetExceeded | None = None


@dataclass
class RoundResult:
    results: list[RunResult] = field(default_factory=list)

    @property
    def run_ids(self) -> list[str]:
        return [result.run_id for result in self.results]


def _keep_checking(_request: RecordedRequest) -> Reply:
    return Reply.tool_call("check_booking", {"booking_id": "BK-1042"}, text="Let me check the booking again.")


AGENT_RUNS = (
    AgentRun(
        "alice",
        "pro",
        "trip-planner",
        "Plan a weekend in Lisbon: check the weather and find flights from Berlin.",
        script=(
            Reply.tool_call("get_weather", {"city": "Lisbon"}, text="First, the weather in Lisbon."),
            Reply.tool_call(
                "search_flights",
                {"origin": "Berlin", "destination": "Lisbon"},
                text="Sunny. Now the flights from Berlin.",
            ),
            Reply.text(
                "Lisbon looks sunny at 21°C. Take the Saturday 07:40 flight (EUR 98) and return Sunday 20:15 (EUR 115)."
            ),
        ),
    ),
    AgentRun(
        "bob",
        "pro",
        "booking-watcher",
        "Tell me when booking BK-1042 is confirmed.",
        responder=_keep_checking,
    ),
    AgentRun(
        "carol",
        "free",
        "report-summary",
        "Summarize the Q3 report for the board in three bullet points.",
        script=(
            Reply.tool_call("fetch_document", {"doc_id": "Q3-report"}, text="Fetching the report."),
            Reply.text("Revenue up in all regions; support costs down; pricing test needs a refund review."),
        ),
    ),
)


def _play(spec: AgentRun, console: Console, *, verbose: bool) -> RunResult:
    fake = FakeProvider(latency=LATENCY_SECONDS, responder=spec.responder)
    fake.enqueue(*spec.script)
    client = fake.anthropic_client()
    result = RunResult(spec, f"{spec.slug}-{uuid.uuid4().hex[:6]}")
    if verbose:
        console.print(Text.assemble(("▶ ", "bold"), (spec.user, "bold"), f" ({spec.tier}) ", (spec.task, "italic")))
    try:
        with spendfuse.run(result.run_id, user_id=spec.user, name=spec.slug):
            result.answer = run_agent(client, spec.task)
    except spendfuse.BudgetExceeded as error:
        result.stopped = error  # the agent's caller decides what a refused run means
    finally:
        client.close()
        # Spans may still be on their way to the progress printer: let this agent's lines all print
        # before the next agent's header.
        spendfuse.flush()
    return result


def play_round(console: Console, *, verbose: bool = True) -> RoundResult:
    outcome = RoundResult()
    for spec in AGENT_RUNS:
        outcome.results.append(_play(spec, console, verbose=verbose))
    return outcome


def print_summary(console: Console, telemetry: DemoTelemetry, outcome: RoundResult) -> None:
    tripped = [r for r in outcome.results if r.stopped is not None]
    connection = connect(telemetry.ledger_path, create=False)
    try:
        runs = list_runs(connection, run_ids=outcome.run_ids, limit=None)
        console.rule("Runs (spendfuse runs)")
        console.print(render.runs_table(runs, title=None, width=console.width))
        for number, result in enumerate(tripped):
            summary = find_run(connection, result.run_id)
            if summary is None:
                continue
            detail = run_detail(connection, summary)
            if number == 0:
                console.rule(f"spendfuse show {result.run_id}")
                console.print(render.run_tree(detail))
            console.rule(f"spendfuse explain {result.run_id}")
            console.print(render.explanation(explain(detail)))
    finally:
        connection.close()
    flag = f" --ledger {telemetry.ledger_path}" if telemetry.temporary else ""
    console.rule()
    if telemetry.temporary and not telemetry.keep:
        console.print(
            "The demo's temporary ledger is removed when it exits; to explore these runs, run "
            "`spendfuse demo --keep-ledger` and then:",
            soft_wrap=True,
        )
        flag = " --ledger PATH"
    else:
        console.print(f"Ledger: {telemetry.ledger_path}")
        console.print("Explore it:")
    shown = tripped[0].run_id if tripped else ""
    for command in ("runs", f"show {shown}", "spend --by user"):
        console.print(f"  spendfuse {command}{flag}", soft_wrap=True)


@contextlib.contextmanager
def _library_logs_on(console: Console) -> Iterator[None]:
    logger = logging.getLogger("spendfuse")
    handler = ConsoleLogHandler(console)
    logger.addHandler(handler)
    propagate, logger.propagate = logger.propagate, False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


@contextlib.contextmanager
def _stop_on_sigterm() -> Iterator[None]:
    def stop(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt  # `docker stop`: leave the loop through the same flush as Ctrl-C

    try:
        previous = signal.signal(signal.SIGTERM, stop)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _round(console: Console, telemetry: DemoTelemetry, *, loop: bool) -> RoundResult | None:
    try:
        return play_round(console, verbose=telemetry.progress.verbose)
    except Exception as error:
        if not loop:
            raise
        # A loop feeding dashboards outlives a bad round (say, the budget store restarting).
        console.print(Text(f"round failed: {type(error).__name__}: {error}", style="yellow"))
        return None


def run_demo(
    *,
    loop: bool = False,
    delay: float = 5.0,
    ledger: str | None = None,
    console: Console | None = None,
    summary: bool = True,
    keep_ledger: bool = True,
) -> tuple[DemoTelemetry, RoundResult]:
    """Play the scenario once (or forever with ``loop``); returns the telemetry and the last round.

    A temporary ledger (none was named) is removed at the end unless ``keep_ledger``.
    """
    console = console or render.make_console()
    telemetry = setup(console, ledger, loop=loop)
    telemetry.keep = keep_ledger
    outcome = RoundResult()
    number = 0
    try:
        spendfuse.instrument(
            tracer_provider=telemetry.tracer_provider,
            meter_provider=telemetry.meter_provider,
            prices=PRICES,
            run_budget=RUN_BUDGET,
            user_budget=USER_BUDGET,
            ledger=str(telemetry.ledger_path),
        )
        with _library_logs_on(console), _stop_on_sigterm():
            while True:
                number += 1
                if loop:
                    console.print(Text(f"round {number}", style="bold"))
                played = _round(console, telemetry, loop=loop)
                telemetry.flush_ledger()
                if played is not None:
                    if number == 1 and summary:
                        print_summary(console, telemetry, played)
                    outcome = played
                telemetry.flush()  # every round reaches the collector, even if the loop is killed
                if not loop:
                    break
                telemetry.progress.verbose = False  # later rounds: one line per run
                time.sleep(delay)
    except KeyboardInterrupt:
        console.print("stopped")
    finally:
        spendfuse.uninstrument()
        telemetry.shutdown()
        if telemetry.temporary and not keep_ledger:
            shutil.rmtree(telemetry.ledger_path.parent, ignore_errors=True)
    return telemetry, outcome
