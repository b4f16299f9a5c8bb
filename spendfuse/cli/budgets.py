"""``spendfuse budgets``: a scope's current window in the budget store, or what a run used.

``--scope team --key search`` reads that scope's current window from the store (``--store`` or the
``store`` setting) and the limits from the configured ``budgets`` (``--user U`` is ``--scope user
--key U``, limits from ``user_budget``); ``--reset`` clears that window (an admin action, logged at
WARNING). ``--run RUN_ID`` answers from the ledger instead.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import dataclass

from rich import box
from rich.table import Table

from spendfuse.budgets.budget import WINDOWS, Budget, scope_key, window_bounds
from spendfuse.budgets.stores import METRICS, USD, BudgetStore, ScopeUsage, open_store
from spendfuse.cli import format as fmt
from spendfuse.cli import render
from spendfuse.cli.options import CliError
from spendfuse.cli.run_usage import run_usage
from spendfuse.config.settings import Settings, load_settings
from spendfuse.errors import ConfigError

log = logging.getLogger("spendfuse")
MICROS = 1_000_000


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "budgets",
        parents=[common],
        help="a user's or scope's budget window (or a run's budget use)",
        description="Show a user's or a scope's (team, org, model, ...) current budget window from the "
        "budget store, reset it, or show what a run used from the ledger.",
    )
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", help="the user whose window to show or reset (--scope user --key USER)")
    who.add_argument("--scope", help="the scope whose window to show or reset: team, org, model, ... (with --key)")
    who.add_argument("--run", metavar="RUN_ID", help="show what this run used (from the ledger)")
    parser.add_argument("--key", help="the scope's key, e.g. --scope team --key search")
    parser.add_argument("--store", metavar="URL", help="budget store URL (default: the store setting)")
    parser.add_argument("--window", choices=list(WINDOWS), help="window to read (default: the user's budget)")
    parser.add_argument("--reset", action="store_true", help="clear the user's current window (admin)")
    parser.add_argument("--yes", action="store_true", help="confirm --reset without asking")
    parser.set_defaults(handler=run)


@dataclass(frozen=True, slots=True)
class Window:
    user: str  # the scope's key (a user id for the user scope)
    name: str | None
    start: int | None
    end: int | None
    scope: str = "user"

    @property
    def key(self) -> str:
        return scope_key(self.scope, self.user, self.name, self.start)

    @property
    def who(self) -> str:
        return f"user {self.user!r}" if self.scope == "user" else f"{self.scope} {self.user!r}"


def run(args: argparse.Namespace) -> int:
    if args.run is not None:
        if args.reset:
            raise CliError("--reset works on a user's window: use --user USER --reset")
        return run_usage(args)
    if args.scope is not None:
        if not args.key:
            raise CliError(f"--scope {args.scope} needs --key, e.g. --scope {args.scope} --key search")
        from spendfuse.config.user_budgets import check_scope_name

        try:
            check_scope_name(args.scope, "--scope")
        except ConfigError as error:
            raise CliError(str(error)) from None
    elif args.key is not None:
        raise CliError("--key goes with --scope, e.g. --scope team --key search")
    return _user_window(args)


def _settings() -> Settings:
    try:
        return load_settings()
    except ConfigError as error:
        raise CliError(str(error)) from None


def _user_budget(settings: Settings, user: str, scope: str = "user") -> Budget | None:
    resolver = settings.user_budget if scope == "user" else settings.budgets.get(scope)
    if resolver is None:
        return None
    try:
        return resolver(user)
    except Exception as error:
        setting = "user_budget" if scope == "user" else f"budgets.{scope}"
        raise CliError(f"the {setting} setting failed for {user!r}: {error}") from None


def _window(user: str, budget: Budget | None, chosen: str | None, now: float, scope: str = "user") -> Window:
    name = chosen or (budget.window if budget is not None else None)
    if budget is None and name is None:
        if scope == "user":
            where, setting = "SPENDFUSE_USER_BUDGET", "user_budget"
        else:
            where, setting = f"SPENDFUSE_BUDGETS_{scope.upper()}", f"[budgets.{scope}]"
        raise CliError(
            f"no {scope} budget for {user!r} in {where} or the SPENDFUSE_CONFIG file (the same "
            "settings the library reads; one set only in code is invisible here): name the window with "
            f"--window 1d, or configure {setting} there"
        )
    if name is None:
        return Window(user, None, None, None, scope)
    start, end = window_bounds(name, now)
    return Window(user, name, start, end, scope)


def _open(url: str, settings: Settings) -> BudgetStore:
    if url.split("://", 1)[0].lower() == "memory":
        raise CliError(
            "the budget store is memory://, which lives inside each program, so there is nothing to read "
            "from here; pass --store sqlite:///path or redis://host:6379/0 (or set SPENDFUSE_STORE)"
        )
    try:
        # A person is waiting, not a model call: allow the store longer than the hot-path timeout.
        return open_store(url, timeout=max(settings.store_timeout, 2.0))
    except ConfigError as error:
        raise CliError(str(error)) from None
    except Exception as error:
        raise CliError(f"cannot open the budget store {fmt.redact_url(url)}: {error}") from None


def _limits(budget: Budget | None) -> dict[str, int | None]:
    if budget is None:
        return dict.fromkeys(METRICS)
    return {"usd": budget.usd_micros, "turns": budget.turns, "tokens": budget.tokens}


def _shown(metric: str, value: int | None) -> float | int | None:
    if value is None:
        return None
    return value / MICROS if metric == USD else value


def _rows(usage: ScopeUsage, limits: dict[str, int | None]) -> dict[str, dict[str, float | int | None]]:
    rows: dict[str, dict[str, float | int | None]] = {}
    for metric in METRICS:
        limit = limits.get(metric)
        spent = usage.spent.get(metric, 0)
        flying = usage.in_flight.get(metric, 0)
        remaining = None if limit is None else max(0, limit - spent - flying)
        rows[metric] = {
            "limit": _shown(metric, limit),
            "spent": _shown(metric, spent),
            "in_flight": _shown(metric, flying),
            "remaining": _shown(metric, remaining),
        }
    return rows


def _confirm(window: Window, url: str) -> None:
    what = f"{window.name} window" if window.name else "lifetime budget"
    if not sys.stdin.isatty():
        raise CliError(f"--reset clears {window.who}'s {what}; add --yes to confirm")
    answer = input(f"Reset the current {what} of {window.who} in {fmt.redact_url(url)}? [y/N] ")
    if answer.strip().lower() not in ("y", "yes"):
        raise CliError("reset cancelled")


def _user_window(args: argparse.Namespace) -> int:
    settings = _settings()
    scope: str = args.scope or "user"
    user: str = args.key if args.scope is not None else args.user
    budget = _user_budget(settings, user, scope)
    now = time.time()
    window = _window(user, budget, args.window, now, scope)
    url: str = args.store or settings.store
    if args.reset and not args.yes:
        _confirm(window, url)
    store = _open(url, settings)
    try:
        usage = store.usage(window.key, now)
        if args.reset:
            store.reset(window.key)
    except Exception as error:
        raise CliError(f"the budget store {fmt.redact_url(url)} did not answer: {error}") from None
    finally:
        store.close()
    rows = _rows(usage, _limits(budget))
    if args.reset:
        log.warning(
            "spendfuse: reset budget window %s of %s in %s from the CLI (it had %s spent)",
            window.key,
            window.who,
            fmt.redact_url(url),
            fmt.usd(rows[USD]["spent"]),
        )
    data: dict[str, object] = {
        "scope": scope,
        "scope_key": user,
        "user": user if scope == "user" else None,
        "budget": budget.describe() if budget is not None else None,
        "window": window.name or "lifetime",
        "window_start": window.start,
        "window_end": window.end,
        "key": window.key,
        "store": fmt.redact_url(url),
        "leases": usage.leases,
        "limits": rows,
        "reset": bool(args.reset),
    }
    if args.json:
        render.print_json(data)
        return 0
    _print_window(data, window, rows)
    return 0


def _print_window(data: dict[str, object], window: Window, rows: dict[str, dict[str, float | int | None]]) -> None:
    console = render.make_console()
    span = "lifetime (no window)"
    if window.start is not None and window.end is not None:
        span = (
            f"{window.name}: {time.strftime('%Y-%m-%d %H:%M', time.gmtime(window.start))} → "
            f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime(window.end))} UTC"
        )
    console.print(
        f"{window.who[0].upper()}{window.who[1:]}  budget: {data['budget'] or 'none configured'}  window {span}"
    )
    console.print(f"Store {data['store']}  key {window.key}", style="dim")
    table = Table(header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("Limit", "Limit value", "Spent", "In flight", "Remaining"):
        table.add_column(column, justify="left" if column == "Limit" else "right")
    for metric, row in rows.items():

        def show(value: float | int | None, metric: str = metric) -> str:
            return "-" if value is None else fmt.limit_value(metric, float(value))

        remaining = row["remaining"]
        table.add_row(
            metric,
            show(row["limit"]),
            show(row["spent"]),
            show(row["in_flight"]),
            "unlimited" if remaining is None else show(remaining),
        )
    console.print(table)
    if data["reset"]:
        console.print(f"Reset: the window's spend above was cleared for {window.who}.", style="bold yellow")
