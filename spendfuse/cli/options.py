"""What every command shares: errors, ``--since`` parsing, opening the ledger."""

from __future__ import annotations

import argparse
import re
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from spendfuse.errors import ConfigError
from spendfuse.ledger.paths import LEDGER_ENV, resolve_ledger_path
from spendfuse.ledger.queries import AmbiguousRunError, RunSummary, find_run
from spendfuse.ledger.store import LedgerMissingError, connect
from spendfuse.telemetry.links import run_view_url

SINCE_FORM = "a duration like 30m, 12h, 1d, 2w, a date like 2025-01-31, or 'all'"
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.IGNORECASE)
NANOS = 1_000_000_000


class CliError(Exception):
    """A problem the user can fix; printed as one line, exit code ``code``."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def common_options() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parent.add_argument(
        "--ledger", metavar="PATH", help=f"ledger file (default: ${LEDGER_ENV} or the per-user data file)"
    )
    return parent


def parse_since(text: str | None, *, now: float | None = None) -> int | None:
    """Unix nanoseconds of the earliest start to include; None for everything."""
    if text is None or text.strip().lower() == "all":
        return None
    now = time.time() if now is None else now
    match = _DURATION.match(text)
    if match:
        return int((now - float(match.group(1)) * _UNITS[match.group(2).lower()]) * NANOS)
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise CliError(f"--since {text!r} is not understood; accepted: {SINCE_FORM}") from None
    if moment.tzinfo is None:
        moment = moment.astimezone()  # a bare date or time means the user's local time
    return int(moment.astimezone(timezone.utc).timestamp() * NANOS)


def ledger_path(explicit: str | None) -> Path:
    if explicit:
        return Path(explicit).expanduser()
    try:
        from spendfuse.config.settings import load_settings

        configured = load_settings().ledger
    except ConfigError as error:
        raise CliError(str(error)) from None
    path = resolve_ledger_path(configured)
    if path is None:
        raise CliError(f"the ledger is turned off ({LEDGER_ENV}=off); name one with --ledger PATH")
    return path


def open_ledger(explicit: str | None) -> sqlite3.Connection:
    path = ledger_path(explicit)
    try:
        return connect(path, create=False)
    except LedgerMissingError:
        raise CliError(
            f"no ledger at {path}: nothing has been recorded yet. Run an instrumented program "
            f"(import spendfuse.auto) or `spendfuse demo`, or point --ledger / {LEDGER_ENV} at a ledger file"
        ) from None
    except sqlite3.Error as error:
        raise CliError(f"cannot read the ledger {path}: {error}") from None


@contextmanager
def ledger(explicit: str | None) -> Iterator[sqlite3.Connection]:
    """The ledger for reading, closed afterwards."""
    connection = open_ledger(explicit)
    try:
        yield connection
    except sqlite3.Error as error:
        raise CliError(f"cannot read the ledger: {error}") from None
    finally:
        connection.close()


def lookup_run(connection: sqlite3.Connection, run_id: str) -> RunSummary:
    """The run a user named on the command line, or a one-line error."""
    try:
        summary = find_run(connection, run_id)
    except AmbiguousRunError as error:
        shown = ", ".join(error.matches[:5]) + (", ..." if len(error.matches) > 5 else "")
        raise CliError(f"run id {run_id!r} is ambiguous: it starts {shown}; give more of it") from None
    if summary is None:
        raise CliError(f"no run {run_id!r} in the ledger; `spendfuse runs` lists the recorded runs")
    return summary


def grafana_url(summary: RunSummary) -> str | None:
    try:
        from spendfuse.config.settings import load_settings

        base = load_settings().grafana_url
    except ConfigError:
        base = None
    return run_view_url(summary.run_id, base, trace_id=summary.trace_id)
