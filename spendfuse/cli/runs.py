"""``spendfuse runs``: the latest runs, newest first."""

from __future__ import annotations

import argparse
import sys
import time

from spendfuse.cli import render
from spendfuse.cli.follow import follow
from spendfuse.cli.options import CliError, ledger, ledger_path, parse_since
from spendfuse.ledger.queries import list_runs

OUTCOMES = ("completed", "tripped", "error", "unfinished")


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "runs", parents=[common], help="list recent runs", description="List recent runs, newest first."
    )
    parser.add_argument("--user", help="only this user's runs")
    parser.add_argument("--since", help="only runs started since, e.g. 1h, 1d, 7d, 2025-01-31 (default: all)")
    parser.add_argument("--outcome", help=f"only runs that ended so: {', '.join(OUTCOMES)}")
    parser.add_argument("--limit", type=int, default=20, help="how many runs (default 20; 0 for all)")
    parser.add_argument(
        "--follow",
        "-f",
        action="store_true",
        help="keep printing calls, trips and run ends as they reach the ledger (Ctrl-C stops)",
    )
    parser.add_argument(
        "--interval",
        type=float,
        default=1.0,
        metavar="S",
        help="with --follow: seconds between looks at the ledger (default 1)",
    )
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=None,
        metavar="S",
        help="with --follow: stop after S seconds (default: never)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.outcome is not None and args.outcome not in OUTCOMES:
        raise CliError(f"--outcome {args.outcome!r} is not an outcome; accepted: {', '.join(OUTCOMES)}")
    if args.limit < 0:
        raise CliError("--limit must be 0 (all) or more")
    since = parse_since(args.since)
    if args.follow:
        if args.json or args.outcome or args.since:
            raise CliError("--follow takes --user only (not --json, --outcome or --since)")
        if args.interval <= 0 or (args.max_seconds is not None and args.max_seconds < 0):
            raise CliError("--interval must be more than 0 and --max-seconds 0 or more")
        started = time.monotonic()
        path = ledger_path(args.ledger)
        if not path.is_file():
            # Like `tail -F`: the program that will write the ledger may not have started yet.
            sys.stderr.write(f"spendfuse: waiting for the ledger at {path} ...\n")
            sys.stderr.flush()
            while not path.is_file():
                if args.max_seconds is not None and time.monotonic() - started >= args.max_seconds:
                    return 0
                time.sleep(args.interval)
        left = None if args.max_seconds is None else max(0.0, args.max_seconds - (time.monotonic() - started))
        with ledger(str(path)) as connection:
            return follow(connection, render.make_console(), user=args.user, interval=args.interval, max_seconds=left)
    with ledger(args.ledger) as connection:
        runs = list_runs(connection, user=args.user, since_ns=since, outcome=args.outcome, limit=args.limit or None)
    if args.json:
        render.print_json([summary.to_json() for summary in runs])
        return 0
    console = render.make_console()
    if not runs:
        console.print("No runs match." if (args.user or since or args.outcome) else "No runs recorded yet.")
        return 0
    console.print(render.runs_table(runs, width=console.width))
    return 0
