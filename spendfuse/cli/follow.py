"""``spendfuse runs --follow``: a live tail of calls, trips and run ends, read from the ledger.

The ledger is the only thing read (no backend, no Grafana): every poll asks SQLite for the rows
inserted since the last one, by rowid, which only grows (rows are only ever appended; retention
deletes the oldest).
"""

from __future__ import annotations

import sqlite3
import sys
import time
from datetime import datetime

from rich.console import Console
from rich.text import Text

from spendfuse.cli import format as fmt
from spendfuse.cli import render
from spendfuse.ledger.rows import KIND_RUN, SpanRow
from spendfuse.ledger.schema import SPAN_COLUMNS

_SELECT = (
    f"SELECT rowid, {', '.join(SPAN_COLUMNS)} FROM spans "
    "WHERE rowid > ? AND kind IN ('call', 'run') {user} ORDER BY rowid"
)


def _clock(unix_ns: int) -> str:
    return datetime.fromtimestamp(unix_ns / fmt.NANOS).strftime("%H:%M:%S")


def follow_line(span: SpanRow) -> Text:
    """One line of the tail: a call (or its trip), or the end of a run."""
    who = f"{span.run_id or '-'}  {span.user_id or '-'}"
    if span.kind == KIND_RUN:
        line = Text(f"{_clock(span.end_ns)}  end   {who}  ")
        line.append_text(render.outcome(span.outcome or "?"))
        line.append(f"  {fmt.plural(span.spent_turns or 0, 'turn')}  {fmt.usd(span.spent_usd)}")
        return line
    model = span.response_model or span.request_model or "?"
    if span.tripped:
        limit = span.trip_limit
        scope = "user window" if span.trip_scope == "user" else "run"
        numbers = fmt.trip_numbers(
            limit, span.trip_spent, fmt.recorded_in_flight(span), span.trip_requested, span.trip_limit_value
        )
        return Text(f"{_clock(span.end_ns)}  TRIP  {who}  {model}  {scope} {limit}: {numbers}", style="bold red")
    cost = "cost unknown (no price)" if span.cost_unknown else fmt.usd(span.cost_usd)
    tokens = (span.input_tokens or 0) + (span.output_tokens or 0)
    line = Text(f"{_clock(span.end_ns)}  call  {who}  {model}  {fmt.tokens(tokens)} tokens  {cost}")
    if span.status == "error":
        line.append(f"  error {span.error_type or ''}".rstrip(), style="yellow")
    return line


def _poll(connection: sqlite3.Connection, after: int, user: str | None) -> list[tuple[int, SpanRow]]:
    sql = _SELECT.format(user="AND user_id = ?" if user else "")
    params: tuple[object, ...] = (after, user) if user else (after,)
    return [(row[0], SpanRow(*row[1:])) for row in connection.execute(sql, params)]


def follow(
    connection: sqlite3.Connection,
    console: Console,
    *,
    user: str | None = None,
    backlog: int = 10,
    interval: float = 1.0,
    max_seconds: float | None = None,
) -> int:
    """Print the last ``backlog`` entries, then new ones as they arrive, until interrupted or ``max_seconds``."""
    last = connection.execute("SELECT COALESCE(MAX(rowid), 0) FROM spans").fetchone()[0]
    start_from = 0 if backlog else last
    rows = _poll(connection, start_from, user)
    if backlog and rows:
        rows = rows[-backlog:]
    deadline = None if max_seconds is None else time.monotonic() + max_seconds
    while True:
        for rowid, span in rows:
            console.print(follow_line(span), soft_wrap=True)
            last = max(last, rowid)
        sys.stdout.flush()  # a pipe (`| grep`) sees each line as it happens
        if deadline is not None and time.monotonic() >= deadline:
            return 0
        time.sleep(interval if deadline is None else min(interval, max(0.0, deadline - time.monotonic())))
        rows = _poll(connection, last, user)


__all__ = ["follow", "follow_line"]
