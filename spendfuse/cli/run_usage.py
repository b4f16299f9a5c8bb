"""``spendfuse budgets --run RUN_ID``: what the ledger knows about one run's budget use."""

from __future__ import annotations

import argparse

from rich.table import Table

from spendfuse.cli import format as fmt
from spendfuse.cli import render
from spendfuse.cli.options import ledger, lookup_run
from spendfuse.ledger.queries import run_detail
from spendfuse.telemetry import names


def run_usage(args: argparse.Namespace) -> int:
    with ledger(args.ledger) as connection:
        detail = run_detail(connection, lookup_run(connection, args.run))
    summary = detail.summary
    calls = detail.calls
    reserved = [c.reserved_usd for c in calls if c.reserved_usd is not None]
    trip = next((c for c in calls if c.tripped), None)
    warnings = [e for e in detail.events if e.name == names.EVENT_BUDGET_WARNING]
    data: dict[str, object] = {
        "run_id": summary.run_id,
        "user_id": summary.user_id,
        "outcome": summary.outcome,
        "budget_usd": detail.root.budget_usd if detail.root is not None else None,
        "spent_usd": summary.cost_usd if summary.cost_known else None,
        "spent_known_usd": summary.cost_usd or 0.0,
        "turns": summary.turns,
        "tokens": summary.tokens,
        "calls": len(calls),
        "reserved_usd_max": max(reserved) if reserved else None,
        "unknown_cost_calls": sum(c.cost_unknown for c in calls),
        "unknown_cost_reason": summary.unknown_cost_reason,
        "trip": None
        if trip is None
        else {
            "scope": trip.trip_scope,
            "limit": trip.trip_limit,
            "limit_value": trip.trip_limit_value,
            "spent": trip.trip_spent,
            "in_flight": fmt.recorded_in_flight(trip),
            "requested": trip.trip_requested,
        },
        "warnings": [
            # in_flight null: recorded by a breaker that counted reservations in flight into "spent".
            {
                "scope": e.scope,
                "limit": e.limit_name,
                "limit_value": e.limit_value,
                "spent": e.spent,
                "in_flight": e.in_flight,
            }
            for e in warnings
        ],
        "approved_overruns": sum(1 for e in detail.events if e.name == names.EVENT_BREAKER_APPROVED),
    }
    if args.json:
        render.print_json(data)
        return 0
    console = render.make_console()
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    budget_usd = data["budget_usd"]
    table.add_row("Run", summary.run_id)
    table.add_row("User", summary.user_id or "-")
    table.add_row("Outcome", render.outcome(summary.outcome))
    table.add_row("USD budget", fmt.usd(budget_usd) if isinstance(budget_usd, float) else "not recorded")
    spent = fmt.total_cost(summary.cost_usd, summary.unknown_cost_calls)
    table.add_row("Spent", f"{spent}, {summary.turns} turns, {fmt.tokens(summary.tokens)} tokens")
    if summary.unknown_cost_reason:
        table.add_row("Unknown cost", summary.unknown_cost_reason)
    if reserved:
        table.add_row("Largest reservation", fmt.usd(max(reserved)) + " (worst case of one call)")
    if trip is not None:
        limit = trip.trip_limit
        in_flight = fmt.recorded_in_flight(trip)
        table.add_row(
            "Tripped",
            f"{trip.trip_scope} {limit}: "
            + fmt.trip_numbers(limit, trip.trip_spent, in_flight, trip.trip_requested, trip.trip_limit_value),
        )
    for warning in warnings:
        limit = warning.limit_name
        table.add_row(
            "Warning",
            f"{warning.scope} {limit}: "
            + fmt.warning_numbers(limit, warning.spent, warning.in_flight, warning.limit_value),
        )
    console.print(table)
    console.print("Only the USD budget is recorded on runs; `spendfuse explain` tells why it stopped.", style="dim")
    return 0
