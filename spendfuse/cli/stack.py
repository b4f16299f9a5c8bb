"""``spendfuse stack init DIR``: write the shipped docker-compose stack, ready for ``docker compose up``."""

from __future__ import annotations

import argparse

from spendfuse.cli import render
from spendfuse.cli.options import CliError


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "stack",
        help="write the Grafana/Tempo/Prometheus/Alertmanager stack to a folder",
        description="The observability stack shipped with spendfuse: collector, Tempo, Prometheus with "
        "alert rules, Alertmanager, Grafana with dashboards, Redis and a demo agent.",
    )
    actions = parser.add_subparsers(dest="stack_command", metavar="ACTION", required=True)
    init = actions.add_parser(
        "init",
        help="write the stack's files into DIR",
        description="Write the stack into DIR (created if missing); then "
        "`cd DIR && docker compose up` and open http://localhost:3000.",
    )
    init.add_argument("dir", metavar="DIR", help="folder to write (its parent must exist)")
    init.add_argument("--force", action="store_true", help="overwrite stack files already in DIR")
    init.add_argument("--json", action="store_true", help="print the written files as JSON")
    init.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from spendfuse.stack import StackError, write_stack

    try:
        written = write_stack(args.dir, force=args.force)
    except StackError as error:
        raise CliError(str(error)) from None
    except OSError as error:
        raise CliError(f"cannot write the stack into {args.dir}: {error}") from None
    if args.json:
        render.print_json([str(path) for path in written])
        return 0
    console = render.make_console()
    console.print(f"Wrote {len(written)} files to {args.dir}. Start the stack with:")
    console.print(f"  cd {args.dir} && docker compose up", soft_wrap=True)
    console.print("then open http://localhost:3000 (Grafana, no login) and point your agent at the collector:")
    endpoint = "OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4317 OTEL_EXPORTER_OTLP_PROTOCOL=grpc"
    console.print(f"  {endpoint}", soft_wrap=True)
    return 0
