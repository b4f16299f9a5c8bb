"""The ``spendfuse`` command: argument parsing, dispatch, and one-line errors instead of tracebacks."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

from spendfuse.cli import budgets, demo, explain, runs, show, spend, stack
from spendfuse.cli.options import CliError, common_options
from spendfuse.errors import SpendfuseError

COMMANDS = (runs, show, explain, spend, budgets, demo, stack)


def build_parser() -> argparse.ArgumentParser:
    from spendfuse import __version__

    parser = argparse.ArgumentParser(
        prog="spendfuse",
        description="Inspect what your agents spent, from the local ledger; run the demo.",
        epilog="Try `spendfuse demo` first: it needs no API key, no network and no Docker.",
    )
    parser.add_argument("--version", action="version", version=f"spendfuse {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    common = common_options()
    for command in COMMANDS:
        command.add_parser(commands, common)
    return parser


def _fail(message: str, code: int) -> int:
    sys.stderr.write(f"spendfuse: error: {message}\n")
    return code


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        return handler(args)
    except CliError as error:
        return _fail(str(error), error.code)
    except SpendfuseError as error:  # a malformed setting, an unreachable budget store, ...
        return _fail(str(error), 1)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader (`| head`) went away: stop quietly, and keep Python from complaining at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
