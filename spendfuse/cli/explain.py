"""``spendfuse explain RUN_ID``: why a run stopped, in plain words, and what to change."""

from __future__ import annotations

import argparse

from spendfuse.cli import render
from spendfuse.cli.options import ledger, lookup_run
from spendfuse.cli.reasons import explain
from spendfuse.ledger.queries import run_detail


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "explain",
        parents=[common],
        help="why a run stopped and what to change",
        description="Explain in plain words why a run stopped and what to change.",
    )
    parser.add_argument("run_id", metavar="RUN_ID", help="the run id (or an unambiguous prefix of it)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    with ledger(args.ledger) as connection:
        detail = run_detail(connection, lookup_run(connection, args.run_id))
    result = explain(detail)
    if args.json:
        render.print_json(result.to_json())
        return 0
    render.make_console().print(render.explanation(result))
    return 0
