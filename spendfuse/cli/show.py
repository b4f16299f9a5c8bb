"""``spendfuse show RUN_ID``: one run as a tree of its model calls and tools."""

from __future__ import annotations

import argparse

from spendfuse.cli import render
from spendfuse.cli.options import grafana_url, ledger, lookup_run
from spendfuse.cli.reasons import explain
from spendfuse.ledger.queries import RunDetail, SpanNode, count_attempts, run_detail
from spendfuse.ledger.rows import KIND_CALL, EventRow, SpanRow

NANOS = 1_000_000_000


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "show",
        parents=[common],
        help="show one run as a tree of calls and tools",
        description="Show one run: its model calls and tools as a tree.",
    )
    parser.add_argument("run_id", metavar="RUN_ID", help="the run id (or an unambiguous prefix of it)")
    parser.set_defaults(handler=run)


def span_json(span: SpanRow) -> dict[str, object]:
    data: dict[str, object] = {
        "name": span.name,
        "kind": span.kind,
        "span_id": span.span_id,
        "parent_span_id": span.parent_span_id,
        "run_id": span.run_id,
        "start": span.start_ns / NANOS,
        "duration_s": max(0, span.end_ns - span.start_ns) / NANOS,
        "status": span.status,
        "error_type": span.error_type,
    }
    if span.kind == KIND_CALL:
        data.update(
            provider=span.provider,
            request_model=span.request_model,
            response_model=span.response_model,
            input_tokens=span.input_tokens,
            output_tokens=span.output_tokens,
            cache_read_tokens=span.cache_read_tokens,
            cache_write_tokens=span.cache_write_tokens,
            cost_usd=span.cost_usd,
            cost_unknown=bool(span.cost_unknown),
            reserved_usd=span.reserved_usd,
            estimated=bool(span.estimated),
            approved=bool(span.approved),
            tripped=bool(span.tripped),
        )
        if span.tripped:
            data["trip"] = {
                "scope": span.trip_scope,
                "key": span.trip_key,
                "limit": span.trip_limit,
                "limit_value": span.trip_limit_value,
                "spent": span.trip_spent,
                "requested": span.trip_requested,
                "message": span.status_message,
            }
    elif span.tool_name:
        data["tool_name"] = span.tool_name
    return data


def _tree_json(nodes: list[SpanNode]) -> list[dict[str, object]]:
    return [{**span_json(node.span), "children": _tree_json(node.children)} for node in nodes]


def event_json(event: EventRow) -> dict[str, object]:
    return {
        "name": event.name,
        "span_id": event.span_id,
        "time": event.time_ns / NANOS,
        "scope": event.scope,
        "key": event.key,
        "limit": event.limit_name,
        "limit_value": event.limit_value,
        "spent": event.spent,
        "requested": event.requested,
    }


def detail_json(detail: RunDetail, url: str | None) -> dict[str, object]:
    return {
        "run": detail.summary.to_json(),
        "budget_usd": detail.root.budget_usd if detail.root is not None else None,
        "spans": _tree_json(detail.tree),
        "events": [event_json(event) for event in detail.events],
        "grafana_url": url,
    }


def run(args: argparse.Namespace) -> int:
    with ledger(args.ledger) as connection:
        summary = lookup_run(connection, args.run_id)
        detail = run_detail(connection, summary)
        attempts = count_attempts(connection, summary.run_id)
    url = grafana_url(summary)
    if args.json:
        render.print_json(detail_json(detail, url))
        return 0
    console = render.make_console()
    console.print(render.run_facts(detail))
    if url:
        # soft_wrap: the terminal wraps it, so it still copies (and clicks) as one URL.
        console.print(f"Grafana run view: {url}", soft_wrap=True)
    console.print()
    console.print(render.run_tree(detail))
    if summary.outcome != "completed":
        console.print()
        console.print(explain(detail).headline)
        console.print(f"`spendfuse explain {summary.run_id}` says why and what to change.", style="dim")
    if attempts > 1:
        console.print(f"This run id was used by {attempts} runs; this is the latest.", style="dim")
    return 0
