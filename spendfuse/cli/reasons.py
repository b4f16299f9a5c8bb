"""Why a run ended, in plain words, and what to change: the logic behind ``spendfuse explain``.

Everything is derived from the ledger: the run span's outcome, the refused call's
``spendfuse.breaker.tripped`` event (scope, limit, limit value, spent, requested) and its error
message, approvals and warnings.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from spendfuse.cli import format as fmt
from spendfuse.ledger.queries import OUTCOME_UNFINISHED, RunDetail
from spendfuse.ledger.rows import KIND_CALL, KIND_TOOL, EventRow, SpanRow
from spendfuse.telemetry import names

_WINDOW = re.compile(r"\((\w+) window\)")
_RESETS = re.compile(r"resets at (\d{4}-\d\d-\d\d \d\d:\d\d UTC)")
WINDOW_WORDS = {"1h": "hourly", "1d": "daily", "7d": "weekly", "30d": "30-day", "month": "monthly"}


@dataclass(frozen=True, slots=True)
class Trip:
    scope: str
    key: str
    limit: str
    limit_value: float | None
    spent: float | None
    requested: float | None
    model: str | None
    message: str | None
    call_number: int
    window: str | None
    resets_at: str | None
    in_flight: float = 0.0  # reserved by other calls at the trip, apart from spent

    def to_json(self) -> dict[str, object]:
        return {
            "scope": self.scope,
            "key": self.key,
            "limit": self.limit,
            "limit_value": self.limit_value,
            "spent": self.spent,
            "in_flight": self.in_flight,
            "requested": self.requested,
            "model": self.model,
            "message": self.message,
            "call_number": self.call_number,
            "window": self.window,
            "window_resets_at": self.resets_at,
        }


@dataclass(frozen=True, slots=True)
class Explanation:
    run_id: str
    outcome: str
    headline: str
    details: list[str] = field(default_factory=list)
    advice: list[str] = field(default_factory=list)
    trip: Trip | None = None
    message: str | None = None  # the error's own message, verbatim, as the program saw it

    def to_json(self) -> dict[str, object]:
        return {
            "run_id": self.run_id,
            "outcome": self.outcome,
            "headline": self.headline,
            "details": self.details,
            "advice": self.advice,
            "message": self.message,
            "trip": None if self.trip is None else self.trip.to_json(),
        }


def _ordinal(number: int) -> str:
    suffix = "th" if 10 <= number % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    return f"{number}{suffix}"


def _trip(detail: RunDetail) -> Trip | None:
    calls = detail.calls
    for number, call in enumerate(calls, start=1):
        if not call.tripped:
            continue
        message = call.status_message
        window = _WINDOW.search(message or "")
        resets = _RESETS.search(message or "")
        return Trip(
            scope=call.trip_scope or "run",
            key=call.trip_key or detail.summary.run_id,
            limit=call.trip_limit or "?",
            limit_value=call.trip_limit_value,
            spent=call.trip_spent,
            requested=call.trip_requested,
            model=call.request_model,
            message=message,
            call_number=number,
            window=window.group(1) if window else None,
            resets_at=resets.group(1) if resets else None,
            in_flight=fmt.recorded_in_flight(call),
        )
    return None


def _value(limit: str, value: float | None) -> str:
    return fmt.limit_value(limit, value)


def _whose(trip: Trip, run_id: str) -> str:
    if trip.scope == "user":
        period = WINDOW_WORDS.get(trip.window or "", "")
        return f"the {period + ' ' if period else ''}budget of user {trip.key!r}"
    if trip.key != run_id:
        return f"the budget of its parent run {trip.key!r} (nested runs count against their parents)"
    return "the run's own budget"


def _flying(trip: Trip) -> str:
    if not trip.in_flight:
        return ""
    return f" and {_value(trip.limit, trip.in_flight)} reserved by other calls in flight"


def _trip_sentence(trip: Trip, run_id: str) -> str:
    limit, spent, req, cap = trip.limit, trip.spent, trip.requested, trip.limit_value
    call = f"its {_ordinal(trip.call_number)} model call" + (f" ({trip.model})" if trip.model else "")
    whose = _whose(trip, run_id)
    if limit == "usd":
        return (
            f"The breaker refused {call} before it was sent: it could have cost up to {_value(limit, req)} "
            f"(the prompt estimate plus max_tokens of output at the output price), and with "
            f"{_value(limit, spent)} already spent{_flying(trip)} that would have gone over {whose} of "
            f"{_value(limit, cap)}."
        )
    if limit == "turns":
        return (
            f"The breaker refused {call}: {_value(limit, spent)} of the {_value(limit, cap)} turns "
            f"(model calls) allowed by {whose} were used up."
        )
    if limit == "tokens":
        return (
            f"The breaker refused {call}: {_value(limit, spent)} tokens were already used{_flying(trip)}, the "
            "call could "
            f"have used up to {_value(limit, req)} more (prompt estimate plus max_tokens), and "
            f"{whose} allows {_value(limit, cap)}."
        )
    if limit == "seconds":
        return (
            f"The breaker refused {call}: the run had been going for {_value(limit, spent)}, past the "
            f"{_value(limit, cap)} wall-clock limit of {whose}. Calls already in flight are never cut off; "
            "new ones are refused."
        )
    if limit == "repeats":
        return (
            f"The model was stuck in a loop: it asked for the same tool with the same arguments "
            f"{_value(limit, spent)} times, and {whose} allows {_value(limit, cap)} repeats, so the breaker "
            f"refused {call}."
        )
    return f"The breaker refused {call} on its {limit} limit ({whose})."


def reset_command(user: str, window: str | None) -> str:
    """The admin command that clears a user's current window; it must run as printed (tested)."""
    window_flag = f" --window {window}" if window else ""
    return f"spendfuse budgets --reset --user {user}{window_flag} --yes --store STORE_URL"


def _trip_advice(trip: Trip, detail: RunDetail) -> list[str]:
    limit, scope = trip.limit, trip.scope
    if scope == "user":
        user = trip.key
        when = f" at {trip.resets_at}" if trip.resets_at else ""
        return [
            f"Wait for the window to reset{when}: every run of {user!r} is refused until then.",
            f"Give {user!r} a bigger tier or an override in the user_budget setting "
            f'(its users table, e.g. {user} = "pro").',
            f"Or, as an admin, clear the current window in the budget store the program uses: "
            f"{reset_command(user, trip.window)} (with the default memory:// store the window lives "
            "inside the program and ends with it).",
        ]
    needed = None
    if trip.spent is not None and trip.requested is not None:
        needed = trip.spent + trip.requested
    if limit == "usd":
        hint = f" (this call needed at least {fmt.usd(needed)})" if needed is not None else ""
        return [
            f"Raise the run's USD budget{hint}: spendfuse.run(..., budget=spendfuse.Budget(usd=...)) or "
            "SPENDFUSE_RUN_BUDGET=usd=...",
            "Lower max_tokens: the worst case prices every max_tokens token at the output rate.",
            "Or turn on clamp (SPENDFUSE_CLAMP=true) to shrink max_tokens until the call fits.",
        ]
    if limit == "turns":
        return [
            "If the task needs more steps, raise turns: Budget(turns=...) or SPENDFUSE_RUN_BUDGET=turns=...",
            "If it should have finished, check the agent loop's stop condition: an agent that never gets "
            "a final answer keeps calling the model.",
        ]
    if limit == "tokens":
        return [
            "Raise tokens (Budget(tokens=...)) or lower max_tokens.",
            "Trim the conversation: every turn resends the whole history, so long loops grow quadratically.",
        ]
    if limit == "seconds":
        slowest = max((s for s in detail.spans if s.kind == KIND_TOOL), key=_elapsed, default=None)
        advice = ["Raise seconds (Budget(seconds=...)) or split the task into shorter runs."]
        if slowest is not None:
            advice.append(
                f"The slowest tool was {slowest.tool_name or slowest.name} "
                f"({fmt.duration(_elapsed(slowest))}): a slow or hanging tool uses up the clock."
            )
        return advice
    if limit == "repeats":
        tool = _most_repeated_tool(detail.spans)
        what = f"what {tool} returns" if tool else "what the repeated tool returns"
        return [
            f"Look at {what}: a model repeats a call when the result does not answer it (an error, an "
            "empty result, 'still pending').",
            "Make the tool's result say what to do next, or tell the model to stop after a failed attempt.",
            "Raise repeats (Budget(repeats=...)) only if repeating is legitimate, such as polling.",
        ]
    return []


def _elapsed(span: SpanRow) -> float:
    return max(0, span.end_ns - span.start_ns) / fmt.NANOS


def _most_repeated_tool(spans: list[SpanRow]) -> str | None:
    counts = Counter(s.tool_name or s.name for s in spans if s.kind == KIND_TOOL)
    if not counts:
        return None
    name, _count = counts.most_common(1)[0]
    return name


def _event_lines(events: list[EventRow], run_id: str) -> list[str]:
    lines = []
    for event in events:
        limit = event.limit_name or "?"
        scope = "user window" if event.scope == "user" else "run"
        if event.name == names.EVENT_BREAKER_APPROVED:
            lines.append(
                f"Approved overrun: a call would have broken the {scope} {limit} limit "
                f"({_value(limit, event.limit_value)}), and the on_exceeded hook let it through; its cost counted."
            )
        elif event.name == names.EVENT_BUDGET_WARNING:
            numbers = fmt.warning_numbers(limit, event.spent, event.in_flight, event.limit_value)
            lines.append(f"Warning: the {scope} {limit} budget had {numbers} (warn_at).")
    return lines


def _totals(detail: RunDetail) -> str:
    summary = detail.summary
    return (
        f"{fmt.plural(summary.turns, 'model call')}, {fmt.tokens(summary.tokens)} tokens, "
        f"{fmt.total_cost(summary.cost_usd, summary.unknown_cost_calls)} in {fmt.duration(summary.duration_s)}"
    )


def explain(detail: RunDetail) -> Explanation:
    summary = detail.summary
    run_id, outcome = summary.run_id, summary.outcome
    events = _event_lines(detail.events, run_id)
    if outcome == names.OUTCOME_TRIPPED:
        trip = _trip(detail)
        if trip is None:
            return Explanation(
                run_id,
                outcome,
                f"Run {run_id!r} was stopped by a budget breaker ({_totals(detail)}).",
                [*events, "The refused call was not recorded in this ledger, so the limit is unknown."],
                ["Run `spendfuse show` on it, or look for the BudgetExceeded message in the program's logs."],
            )
        where = "a user window" if trip.scope == "user" else "the run"
        headline = (
            f"Run {run_id!r} was stopped by the {trip.limit} limit of {where} on its "
            f"{_ordinal(trip.call_number)} model call, after {_totals(detail)}."
        )
        details = [_trip_sentence(trip, run_id), *events]
        return Explanation(run_id, outcome, headline, details, _trip_advice(trip, detail), trip, trip.message)
    if outcome == names.OUTCOME_ERROR:
        return _error(detail, events)
    if outcome == OUTCOME_UNFINISHED:
        return Explanation(
            run_id,
            outcome,
            f"Run {run_id!r} has no recorded end ({_totals(detail)} so far).",
            [
                "Either it is still running, or its process stopped before telemetry was flushed "
                "(a crash, a kill, or exiting without spendfuse.auto's flush at exit)."
            ],
            ["Run it again under `import spendfuse.auto`, which flushes at exit, or wait and look again."],
        )
    budget = detail.root.budget_usd if detail.root is not None else None
    used = f" of its {fmt.usd(budget)} budget" if budget else ""
    headline = f"Run {run_id!r} completed normally: {_totals(detail)}{used}. No breaker tripped."
    advice = ["Nothing to change."] if not events else ["Consider the budgets it came close to or overran."]
    reason = summary.unknown_cost_reason
    if reason is not None:
        events = [*events, f"Its cost is partly unknown: {reason}."]
        advice = [
            'Add the missing price so its cost counts: prices={"MODEL": {"input": ..., "output": ...}} '
            "(USD per million tokens) or a SPENDFUSE_PRICES file. Until then no USD limit can apply to it.",
        ]
    return Explanation(run_id, outcome, headline, events, advice)


def _error(detail: RunDetail, events: list[str]) -> Explanation:
    summary = detail.summary
    root = detail.root
    error_type = root.error_type if root is not None else None
    message = root.status_message if root is not None else None
    headline = (
        f"Run {summary.run_id!r} ended with an error"
        + (f" ({error_type})" if error_type else "")
        + f" after {_totals(detail)}; no budget stopped it."
    )
    details = list(events)
    failed = [s for s in detail.spans if s.status == "error" and not s.tripped]
    for span in failed[:3]:
        what = "model call" if span.kind == KIND_CALL else span.kind
        details.append(f"Failed {what}: {span.name} ({span.error_type or 'error'}).")
    advice = ["Fix the error above; spendfuse did not stop this run."]
    if any(s.kind == KIND_CALL for s in failed):
        advice.append("A failed model call still counts a turn; its reservation was released.")
    return Explanation(summary.run_id, summary.outcome, headline, details, advice, message=message)
