"""Plain-text formatting of money, tokens, durations and times, shared by tables and sentences."""

from __future__ import annotations

import re
from datetime import datetime

from spendfuse.budgets.messages import people_dollars
from spendfuse.budgets.stores import redacted_url
from spendfuse.ledger.rows import SpanRow

NANOS = 1_000_000_000


def usd(value: float | None) -> str:
    if value is None:
        return "?"
    if value == 0:
        return "$0"
    if abs(value) >= 1:
        return f"${value:,.2f}"
    if abs(value) < 0.0000005:
        return "<$0.000001"
    # Agent calls cost fractions of a cent: keep them visible, without padding round limits ($0.01).
    text = f"{value:.4f}" if abs(value) >= 0.001 else f"{value:.6f}"
    whole, _, decimals = text.partition(".")
    decimals = decimals.rstrip("0").ljust(2, "0")
    return f"${whole}.{decimals}"


def cost(known: float | None, unknown_calls: int = 0) -> str:
    """A cost that may be partly unknown (unpriced models): never shown as $0 then."""
    if not unknown_calls:
        return usd(known)
    return "?" if not known else f"{usd(known)} + ?"


def total_cost(known: float | None, unknown_calls: int = 0) -> str:
    """A sum for sentences and total rows: says in words that part of it is unknown."""
    if not unknown_calls:
        return usd(known)
    return "unknown" if not known else f"{usd(known)} + unknown"


def people_usd(value: float | None) -> str:
    """Dollars rounded for people in sentences (unknown: ``?``)."""
    return "?" if value is None else people_dollars(value)


def tokens(value: int | float | None) -> str:
    return "-" if value is None else f"{int(value):,}"


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.2f}s"
    minutes, rest = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{rest:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def local_time(unix_ns: int) -> str:
    return datetime.fromtimestamp(unix_ns / NANOS).strftime("%Y-%m-%d %H:%M:%S")


def short_time(unix_ns: int) -> str:
    """Local time without the year when it is this year: tables stay narrow."""
    moment = datetime.fromtimestamp(unix_ns / NANOS)
    return moment.strftime("%m-%d %H:%M" if moment.year == datetime.now().year else "%Y-%m-%d")


def limit_value_text(limit: str | None, value: float | None) -> str:
    return limit_value(limit, value)


def limit_value(limit: str | None, value: float | None) -> str:
    """A number in its limit's unit: dollars, seconds, or a count."""
    if value is None:
        return "?"
    if limit == "usd":
        return usd(value)
    if limit == "seconds":
        return f"{value:.1f}s" if value < 100 else duration(value)
    return f"{round(value):,}"


# The BudgetExceeded message (the tripped span's status) is the one place the ledger holds what
# other calls had in flight at the trip; the breaker's event attributes carry spent and requested only.
_IN_FLIGHT = {
    "usd": re.compile(r"\(\+\$([\d,.]+) reserved by calls in flight\)"),
    "turns": re.compile(r"\(\+(\d+) in flight\)"),
    "tokens": re.compile(r"\(\+(\d+) reserved in flight\)"),
}


def in_flight_from_message(limit: str | None, message: str | None) -> float:
    pattern = _IN_FLIGHT.get(limit or "")
    found = pattern.search(message or "") if pattern is not None else None
    return float(found.group(1).replace(",", "")) if found else 0.0


def recorded_in_flight(span: SpanRow) -> float:
    """What other calls had in flight when this call tripped: recorded, else read from the message."""
    if span.trip_in_flight is not None:
        return span.trip_in_flight
    return in_flight_from_message(span.trip_limit, span.status_message)


def trip_numbers(
    limit: str | None, spent: float | None, in_flight: float, requested: float | None, limit_value: float | None
) -> str:
    """A trip for people: spent and in flight apart, the refused call's worst case, the limit."""

    def show(value: float | None) -> str:
        return people_usd(value) if limit == "usd" else limit_value_text(limit, value)

    if limit in ("seconds", "repeats"):
        return f"{show(spent)} used, limit {show(limit_value)}"
    return (
        f"spent {show(spent)}, in flight {show(in_flight)}, this call up to {show(requested)}, "
        f"limit {show(limit_value)}"
    )


def warning_numbers(limit: str | None, spent: float | None, in_flight: float | None, limit_value: float | None) -> str:
    """A warn_at warning for people; ``in_flight`` None means ``spent`` already includes it."""

    def show(value: float | None) -> str:
        return people_usd(value) if limit == "usd" else limit_value_text(limit, value)

    if in_flight is None:
        return f"{show(spent)} spent or reserved by calls in flight, of {show(limit_value)}"
    return f"spent {show(spent)}, in flight {show(in_flight)}, of {show(limit_value)}"


def redact_url(url: str) -> str:
    """A store URL without its password, for printing."""
    return redacted_url(url)
