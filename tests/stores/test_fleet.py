"""A fleet: processes x threads of instrumented agents share one user's budget through a store.

End to end through the real SDK client and the fake provider with latency: what reached the
provider never exceeds the user's limit, and the breaker does not block while a call still fits.
"""

from __future__ import annotations

import multiprocessing
from typing import Any

import pytest

from spendfuse.budgets.pricing import PriceBook
from spendfuse.budgets.usage import TokenUsage

from . import _fleet

pytestmark = pytest.mark.slow
SPAWN = multiprocessing.get_context("spawn")


def run_fleet(store_url: str, budget: dict[str, Any], processes: int, threads: int, calls: int) -> list[Any]:
    barrier = SPAWN.Barrier(processes * threads)
    results = SPAWN.Queue()
    workers = [
        SPAWN.Process(target=_fleet.agent_process, args=(store_url, budget, threads, calls, barrier, results))
        for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    reports = [results.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)
        assert worker.exitcode == 0
    return reports


def test_fleet_never_overspends_a_user_usd_budget(shared_store_url: str) -> None:
    prices = PriceBook()
    rates = prices.rates("anthropic", _fleet.MODEL)
    assert rates is not None
    limit_usd = 0.02
    reports = run_fleet(shared_store_url, {"usd": limit_usd, "window": "1d"}, processes=4, threads=32, calls=20)
    costs = [prices.cost_micros(rates, TokenUsage(i, o)) for report in reports for i, o in report["tokens"]]
    spent = sum(costs)
    worst_case = max(report["worst_case"] for report in reports)
    assert sum(report["requests"] for report in reports) == len(costs) > 0
    assert spent <= limit_usd * 1_000_000  # zero overshoot
    assert spent >= limit_usd * 1_000_000 - worst_case  # no false blocks
    assert all(limit == "usd" for report in reports for limit in report["refused"])


def test_fleet_turns_limit_admits_exactly_t_requests(shared_store_url: str) -> None:
    # Each agent may call more often (38) than the whole budget allows (37), so every agent ends
    # refused however unfairly the store's lock serves them: with 5 calls each, one agent could
    # finish its 5 before the 37th turn was taken and end unrefused on a loaded machine.
    reports = run_fleet(shared_store_url, {"turns": 37, "window": "1d"}, processes=2, threads=16, calls=38)
    assert sum(report["requests"] for report in reports) == 37
    # 32 agents want far more than 37 turns: every agent ends refused, on turns.
    refused = [limit for report in reports for limit in report["refused"]]
    assert refused == ["turns"] * 32
