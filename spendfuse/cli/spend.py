"""``spendfuse spend --by user|model|provider|day|<scope>``: what the recorded model calls cost, grouped.

``--by team`` groups by the key each call's run gave the ``team`` scope (``run(scopes={"team": ...})``).
"""

from __future__ import annotations

import argparse

from spendfuse.cli import render
from spendfuse.cli.options import ledger, parse_since
from spendfuse.config.user_budgets import SCOPE_NAME
from spendfuse.ledger.queries import SPEND_KEYS, spend


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "spend",
        parents=[common],
        help="spend grouped by user, model, day or scope",
        description="Cost, calls and tokens of recorded model calls, grouped.",
    )
    parser.add_argument(
        "--by",
        type=_by,
        default="user",
        help=f"group by {', '.join(sorted(SPEND_KEYS))} or a scope name such as team (default: user)",
    )
    parser.add_argument("--since", default="7d", help="from when, e.g. 1h, 1d, 30d, 2025-01-31, all (default 7d)")
    parser.set_defaults(handler=run)


def _by(value: str) -> str:
    if value in SPEND_KEYS or SCOPE_NAME.match(value):
        return value
    raise argparse.ArgumentTypeError(
        f"{value!r}: accepted: {', '.join(sorted(SPEND_KEYS))} or a scope name (lowercase identifier, e.g. team)"
    )


def run(args: argparse.Namespace) -> int:
    since = parse_since(args.since)
    with ledger(args.ledger) as connection:
        rows = spend(connection, args.by, since_ns=since)
    if args.json:
        render.print_json([row.to_json() for row in rows])
        return 0
    console = render.make_console()
    if not rows:
        console.print(f"No model calls recorded since {args.since}.")
        return 0
    console.print(render.spend_table(rows, args.by, width=console.width))
    return 0
