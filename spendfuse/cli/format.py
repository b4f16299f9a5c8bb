"""Plain-text formatting of money, tokens, durations and times, shared by tables and sentences."""

from __future__ import annotations

from datetime import datetime

from spendfuse.budgets.stores import redacted_url

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


def limit_value(limit: str | None, value: float | None) -> str:
    """A number in its limit's unit: dollars, seconds, or a count."""
    if value is None:
        return "?"
    if limit == "usd":
        return usd(value)
    if limit == "seconds":
        return f"{value:.1f}s" if value < 100 else duration(value)
    return f"{round(value):,}"


def redact_url(url: str) -> str:
    """A store URL without its password, for printing."""
    return redacted_url(url)
