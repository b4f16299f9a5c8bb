"""warn_at: README 'emits a span event, a metric and a log record once per scope when 80% is used';
DESIGN 'once per scope and window'. Attacks: a run id used again (a retried job), and memory over
many runs in a long-lived process."""

from __future__ import annotations

import gc
import tracemalloc
from typing import Any

import pytest

import spendfuse
from spendfuse.testing import FakeProvider, FakeUsage

SONNET = "claude-sonnet-4-5"
MESSAGES = [{"role": "user", "content": "hi"}]


def _warned_run(client: Any, run_id: str) -> None:
    with spendfuse.run(run_id, budget=spendfuse.Budget(turns=2)):
        client.messages.create(model=SONNET, max_tokens=5, messages=MESSAGES)
        client.messages.create(model=SONNET, max_tokens=5, messages=MESSAGES)  # 2 of 2 turns: past 80%


@pytest.mark.xfail(
    strict=True,
    reason="warnings.py:_warn remembers (run_id, metric) for the life of the process: a second run "
    "with the same run id (a retried job, 'ticket-4711' again) never warns",
)
def test_a_new_run_with_a_reused_run_id_warns_again(instrument: Any, telemetry: Any) -> None:
    instrument(warn_at=0.8)
    client = FakeProvider(usage=FakeUsage(10, 5)).anthropic_client()
    _warned_run(client, "ticket-4711")
    _warned_run(client, "ticket-4711")
    assert telemetry.metric_sum("spendfuse.budget.warnings") == 2


@pytest.mark.xfail(
    strict=True,
    reason="warnings.py keeps every warned (run_id, metric) in a set and every user window key in "
    "_user_checked, never pruned: memory grows with every run that crosses warn_at",
)
def test_warnings_state_does_not_grow_with_the_number_of_runs(instrument: Any) -> None:
    instrument(warn_at=0.5)
    client = FakeProvider(usage=FakeUsage(10, 5)).anthropic_client()

    def many(count: int, offset: int) -> None:
        for index in range(count):
            with spendfuse.run(
                f"job-{offset + index:08d}-with-a-realistic-length-id", budget=spendfuse.Budget(turns=1)
            ):
                client.messages.create(model=SONNET, max_tokens=5, messages=MESSAGES)

    many(200, 0)  # warm every cache
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        many(1000, 1_000_000)
        gc.collect()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    only = [tracemalloc.Filter(True, "*spendfuse/budgets/breaker/warnings.py")]
    grown = sum(stat.size_diff for stat in after.filter_traces(only).compare_to(before.filter_traces(only), "filename"))
    assert grown < 16_384, f"{grown} bytes retained by warnings.py over 1000 finished runs"
