"""budgets.settlement: the one place that decides what a finished call cost, over plain data."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider

import spendfuse
from spendfuse.budgets.breaker import Admission, Breaker, CallRequest
from spendfuse.budgets.pricing import PriceBook
from spendfuse.budgets.settlement import Answer, settle, settled_usage
from spendfuse.budgets.usage import TokenUsage
from spendfuse.config.settings import load_settings
from spendfuse.runs.run import Run
from spendfuse.telemetry.instruments import Instruments

SONNET = "claude-sonnet-4-5"  # $3 / $15 per MTok
REQUEST = CallRequest(provider="anthropic", api="messages", model=SONNET,
                      body={"model": SONNET, "max_tokens": 100, "messages": []}, max_tokens=100)  # fmt: skip


def _admission(prices: PriceBook, max_output: int = 100, input_estimate: int = 50, run: Run | None = None) -> Admission:
    rates = prices.rates("anthropic", SONNET)
    return Admission(run, rates, input_estimate, max_output, reserved_usd=0, reserved_tokens=0)


@pytest.fixture
def prices() -> PriceBook:
    return PriceBook(None)


@pytest.fixture
def breaker(prices: PriceBook) -> Breaker:
    return Breaker(load_settings({}), prices, Instruments(MeterProvider().get_meter("test")))


def test_reported_usage_is_priced_and_settled_once(prices: PriceBook, breaker: Breaker) -> None:
    run = _run("settled")
    admission = _admission(prices, run=run)
    reported = TokenUsage(input_tokens=1000, output_tokens=20)
    result = settle(breaker, prices, REQUEST, admission, Answer(True, reported, 7, True, "complete"))
    assert (result.usage, result.cost, result.estimated, result.reason) == (reported, 1000 * 3 + 20 * 15, False,
                                                                              "complete")  # fmt: skip
    assert (run.spent.usd_micros, run.spent.turns, run.spent.output_tokens) == (3300, 1, 20)
    settle(breaker, prices, REQUEST, admission, Answer(True, reported, 7, True, "complete"))
    assert (run.spent.usd_micros, run.spent.turns) == (3300, 1)  # the breaker settles an admission once


def test_a_cut_stream_is_charged_for_what_it_received_capped_at_the_reserved_output(prices: PriceBook) -> None:
    admission = _admission(prices, max_output=100, input_estimate=50)
    usage, estimated = settled_usage(REQUEST, admission, Answer(True, None, 250, False, "abandoned"), None)
    assert (usage, estimated) == (TokenUsage(input_tokens=50, output_tokens=100), True)
    partial = TokenUsage(input_tokens=40, output_tokens=3)
    usage, estimated = settled_usage(REQUEST, admission, Answer(True, partial, 30, False, "closed"), None)
    assert (usage, estimated) == (TokenUsage(input_tokens=40, output_tokens=30), True)
    assert partial.output_tokens == 3  # the reported record is not modified


def test_errors_and_unreadable_bodies(prices: PriceBook, breaker: Breaker) -> None:
    failed = settle(breaker, prices, REQUEST, _admission(prices), Answer(False, None, 0, False, "error"))
    assert (failed.usage, failed.cost, failed.estimated) == (None, 0, False)
    unreadable = settle(breaker, prices, REQUEST, _admission(prices), Answer(False, None, 0, False, "unreadable"))
    # A body that could not be read may have been billed in full: the worst case is charged.
    assert unreadable.usage == TokenUsage(input_tokens=50, output_tokens=100)
    assert (unreadable.cost, unreadable.estimated) == (50 * 3 + 100 * 15, True)


def test_an_unpriced_model_has_an_unknown_cost_never_zero(prices: PriceBook, breaker: Breaker) -> None:
    request = CallRequest(provider="anthropic", api="messages", model="no-such-model", body={}, max_tokens=10)
    result = settle(breaker, prices, request, None, Answer(True, TokenUsage(5, 5), 0, True, "complete"))
    assert (result.cost, result.estimated) == (None, False)


def _run(run_id: str, parent: Run | None = None) -> Run:
    return Run(run_id, user_id=None, name="agent", budget=None, parent=parent)


def test_run_methods_count_tool_calls_up_the_chain_and_trip_up_to_the_budget_owner() -> None:
    top = _run("top")
    middle = _run("middle", top)
    leaf = _run("leaf", middle)
    leaf.note_tool_calls(["search\x00{}", "search\x00{}"])
    assert (leaf.most_repeated(), middle.most_repeated(), top.most_repeated()) == (2, 2, 2)
    assert leaf.prefix_memo() is leaf.prefix_memo() and leaf.memo is not None

    error = spendfuse.TurnLimitExceeded("stop", scope="run", key="middle", limit="turns", limit_value=1, spent=1,
                                        requested=1)  # fmt: skip
    leaf.trip(error)
    assert (leaf.tripped, middle.tripped, top.tripped) == (error, error, None)


def test_a_user_scope_trip_stops_only_the_calling_run() -> None:
    top = _run("top")
    leaf = _run("leaf", top)
    error: Any = spendfuse.CostLimitExceeded("stop", scope="user", key="alice", limit="usd", limit_value=1, spent=1,
                                             requested=1)  # fmt: skip
    leaf.trip(error)
    assert (leaf.tripped, top.tripped) == (error, None)
