"""Run limits that are not reserved but checked: the run's wall clock and its repeated tool calls."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from spendfuse.runs.run import Run


@dataclass(frozen=True, slots=True)
class PastLimit:
    run_id: str
    limit: str  # "seconds" | "repeats"
    limit_value: float
    spent: float


def past_run_limit(chain: tuple[Run, ...]) -> PastLimit | None:
    """The first run of ``chain`` past its seconds or repeats limit. Both only ever grow, so a run
    past one stays past it: a hard stop."""
    for scope_run in chain:
        budget = scope_run.budget
        if budget is None:
            continue
        if budget.seconds is not None:
            elapsed = scope_run.elapsed
            if elapsed > budget.seconds:
                return PastLimit(scope_run.run_id, "seconds", budget.seconds, elapsed)
        if budget.repeats is not None and scope_run.tool_requests:
            worst = _most_repeated(scope_run)
            if worst > budget.repeats:
                return PastLimit(scope_run.run_id, "repeats", budget.repeats, worst)
    return None


def _most_repeated(scope_run: Run) -> int:
    # Without the run's lock: a settlement may run inside a garbage collection on this very thread
    # while it holds that lock. max() over int values runs in C without calling back into Python,
    # so it sees the dict in one state; a resize by another thread shows as RuntimeError: retry.
    for _attempt in range(8):
        try:
            return max(scope_run.tool_requests.values(), default=0)
        except RuntimeError:
            continue
    with scope_run.lock:
        return max(scope_run.tool_requests.values(), default=0)
