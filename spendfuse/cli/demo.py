"""``spendfuse demo``: the scripted scenario against the built-in fake provider (no key, no network)."""

from __future__ import annotations

import argparse

from spendfuse.cli import render
from spendfuse.cli.options import CliError


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "demo",
        parents=[common],
        help="run the demo agents against a fake provider",
        description="Run three small agents against the built-in fake provider: one completes, one loops "
        "until its repeats breaker trips, one hits its user's daily budget. Records to a "
        "temporary ledger (removed at exit unless --keep-ledger) unless SPENDFUSE_LEDGER or --ledger "
        "names one; sends telemetry to "
        "the collector when OTEL_EXPORTER_OTLP_ENDPOINT is set.",
    )
    parser.add_argument("--loop", action="store_true", help="repeat forever with fresh run ids (for dashboards)")
    parser.add_argument(
        "--delay", type=float, default=5.0, metavar="S", help="seconds between rounds with --loop (default 5)"
    )
    parser.add_argument(
        "--keep-ledger",
        action="store_true",
        help="keep the demo's temporary ledger at exit (it is removed otherwise) to explore it",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.delay < 0:
        raise CliError("--delay must be 0 or more seconds")
    try:
        import anthropic  # noqa: F401
    except ImportError:
        raise CliError(
            "the demo drives the real Anthropic SDK against a built-in fake endpoint; install it with "
            "pip install anthropic"
        ) from None
    from spendfuse.demo.scenario import run_demo

    console = render.make_console(stderr=args.json)
    telemetry, outcome = run_demo(
        loop=args.loop,
        delay=args.delay,
        ledger=args.ledger,
        console=console,
        summary=not args.json,
        keep_ledger=args.keep_ledger,
    )
    if args.json:
        render.print_json(
            {
                "ledger": str(telemetry.ledger_path) if telemetry.keep or not telemetry.temporary else None,
                "runs": [
                    {
                        "run_id": result.run_id,
                        "user_id": result.spec.user,
                        "outcome": "tripped" if result.stopped is not None else "completed",
                        "stopped_by": None
                        if result.stopped is None
                        else {
                            "scope": result.stopped.scope,
                            "limit": result.stopped.limit,
                        },
                    }
                    for result in outcome.results
                ],
            }
        )
    return 0
