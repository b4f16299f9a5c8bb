"""Rich renderings of ledger data: the runs table, a run's tree, spend tables, explanations."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Sequence

from rich import box
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from spendfuse.cli import format as fmt
from spendfuse.cli.reasons import Explanation
from spendfuse.ledger.queries import (
    OUTCOME_UNFINISHED,
    RunDetail,
    RunSummary,
    SpanNode,
    SpendRow,
    unknown_reason,
)
from spendfuse.ledger.rows import KIND_CALL, KIND_RUN, KIND_TOOL, SpanRow

PIPE_WIDTH = 140  # tables piped to a file or another program keep whole run ids on one line
OUTCOME_STYLES = {
    "completed": "green",
    "tripped": "bold red",
    "error": "yellow",
    OUTCOME_UNFINISHED: "dim",
}


def make_console(*, stderr: bool = False) -> Console:
    """A console that fits the screen; no escape codes at all under NO_COLOR or when not a terminal."""
    # NO_COLOR (no-color.org) set to anything non-empty; rich alone would still send bold and dim.
    plain = bool(os.environ.get("NO_COLOR"))
    console = Console(stderr=stderr, highlight=False, no_color=plain or None, color_system=None if plain else "auto")
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(
            stderr=stderr,
            highlight=False,
            width=PIPE_WIDTH,
            no_color=plain or None,
            color_system=None if plain else "auto",
        )
    return console


def print_json(data: object) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def outcome(value: str) -> Text:
    return Text(value, style=OUTCOME_STYLES.get(value, ""))


RUN_COLUMNS = ("Run ID", "User", "Started", "Duration", "Turns", "Tokens", "Cost", "Outcome")
# When the table is wider than the screen it gives way in this order, until it fits: the least
# needed columns go, then long user ids and run ids are cut to a readable length, then Started goes,
# then both ids are cut further. Ids are cut with an ellipsis, never folded one character per line;
# a cut run id still works, since `show` and `explain` accept any unique prefix of it.
FIT_STEPS: tuple[tuple[str, str, int], ...] = (
    ("drop", "Tokens", 0),
    ("drop", "Duration", 0),
    ("drop", "Turns", 0),
    ("cut", "User", 12),
    ("cut", "Run ID", 16),
    ("drop", "Started", 0),
    ("cut", "User", 5),
    ("cut", "Run ID", 10),
)
NUMERIC_RUN_COLUMNS = frozenset({"Duration", "Turns", "Tokens", "Cost"})
COLUMN_GAP = 3  # box.SIMPLE_HEAD: a blank separator with one space of padding either side


def _run_cells(run: RunSummary) -> list[str | Text]:
    return [
        run.run_id,
        run.user_id or "-",
        fmt.short_time(run.start_ns),
        fmt.duration(run.duration_s),
        str(run.turns),
        fmt.tokens(run.tokens),
        fmt.cost(run.cost_usd, run.unknown_cost_calls),
        outcome(run.outcome),
    ]


def _fit(natural: dict[str, int], width: int | None, steps: tuple[tuple[str, str, int], ...] = ()) -> dict[str, int]:
    """Column name -> width, following ``steps`` (FIT_STEPS for runs) until the table fits ``width``."""
    widths = dict(natural)

    def excess() -> int:
        return sum(widths.values()) + COLUMN_GAP * (len(widths) - 1) - (width or 0)

    if width is None:
        return widths
    steps = steps or FIT_STEPS
    for action, name, floor in steps:
        if excess() <= 0:
            break
        if action == "drop":
            del widths[name]
        else:
            widths[name] = max(min(floor, widths[name]), widths[name] - excess())
    # A later drop may have freed more room than needed: give it back to the cut columns, in the
    # order they were cut (run ids first), so nothing is cut that would fit.
    for name in dict.fromkeys(name for action, name, _ in steps if action == "cut"):
        if name in widths and excess() < 0:
            widths[name] = min(natural[name], widths[name] - excess())
    return widths


def runs_table(runs: Sequence[RunSummary], *, title: str | None = "Runs", width: int | None = None) -> Table:
    rows = [_run_cells(run) for run in runs]
    natural = {
        name: max([len(name)] + [len(str(row[index])) for row in rows]) for index, name in enumerate(RUN_COLUMNS)
    }
    widths = _fit(natural, width)
    shown = [index for index, name in enumerate(RUN_COLUMNS) if name in widths]
    table = Table(
        title=title, title_justify="left", header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False
    )
    for index in shown:
        name = RUN_COLUMNS[index]
        table.add_column(
            name,
            justify="right" if name in NUMERIC_RUN_COLUMNS else "left",
            no_wrap=True,
            overflow="ellipsis",
            width=widths[name],
        )
    for row in rows:
        table.add_row(*(row[index] for index in shown))
    if any(run.unknown_cost_calls for run in runs):
        table.caption = "? = cost unknown: a model without a price (see `spendfuse explain RUN_ID`)"
        table.caption_justify = "left"
    return table


def _elapsed(span: SpanRow) -> float:
    return max(0, span.end_ns - span.start_ns) / fmt.NANOS


def _call_label(span: SpanRow) -> Text:
    text = Text.assemble((span.name, "bold"), "  ", (span.provider or "", "dim"))
    if span.tripped:
        text.append("  ✖ TRIPPED ", style="bold red")
        scope = "user window" if span.trip_scope == "user" else "run"
        limit = span.trip_limit or "?"
        in_flight = fmt.recorded_in_flight(span)
        text.append(
            f"{scope} {limit}: "
            + fmt.trip_numbers(limit, span.trip_spent, in_flight, span.trip_requested, span.trip_limit_value),
            style="red",
        )
        text.append("  (refused, never sent)", style="dim")
        return text
    estimated = "~" if span.estimated else ""
    text.append(f"  {estimated}{fmt.tokens(span.input_tokens)} in / {estimated}{fmt.tokens(span.output_tokens)} out")
    if span.cache_read_tokens:
        text.append(f" ({fmt.tokens(span.cache_read_tokens)} cached)", style="dim")
    text.append(f"  {fmt.usd(span.cost_usd)}" if not span.cost_unknown else "  cost unknown (no price)", style="cyan")
    text.append(f"  {fmt.duration(_elapsed(span))}", style="dim")
    if span.approved:
        text.append("  ⚠ approved overrun", style="yellow")
    if span.status == "error":
        text.append(f"  ✖ {span.error_type or 'error'}", style="yellow")
    return text


def span_label(span: SpanRow) -> Text:
    if span.kind == KIND_CALL:
        return _call_label(span)
    text = Text(span.name, style="bold" if span.kind == KIND_RUN else "")
    if span.kind == KIND_RUN and span.outcome:
        text.append("  ")
        text.append_text(outcome(span.outcome))
        text.append(f"  {fmt.usd(span.spent_usd)}", style="cyan")
    text.append(f"  {fmt.duration(_elapsed(span))}", style="dim")
    if span.status == "error" and span.kind in (KIND_TOOL, "other"):
        text.append(f"  ✖ {span.error_type or 'error'}", style="yellow")
    return text


def _grow(tree: Tree, nodes: Iterable[SpanNode]) -> None:
    for node in nodes:
        _grow(tree.add(span_label(node.span)), node.children)


def run_tree(detail: RunDetail) -> Tree:
    summary = detail.summary
    label = Text.assemble(
        ("run ", "bold"),
        (summary.run_id, "bold"),
        f"  user {summary.user_id or '-'}  ",
        outcome(summary.outcome),
        f"  {fmt.plural(summary.turns, 'turn')}  {fmt.tokens(summary.tokens)} tokens  ",
        (fmt.total_cost(summary.cost_usd, summary.unknown_cost_calls), "cyan"),
        f"  {fmt.duration(summary.duration_s)}",
    )
    tree = Tree(label)
    _grow(tree, detail.tree)
    return tree


def run_facts(detail: RunDetail) -> Table:
    summary = detail.summary
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")  # a URL or trace id cut with "…" is useless
    rows = [
        ("Run", summary.run_id),
        ("Name", summary.name or "-"),
        ("User", summary.user_id or "-"),
        ("Started", fmt.local_time(summary.start_ns)),
        ("Trace", summary.trace_id),
    ]
    if summary.parent_run_id:
        rows.append(("Parent run", summary.parent_run_id))
    if detail.root is not None and detail.root.budget_usd is not None:
        rows.append(("Run budget", fmt.usd(detail.root.budget_usd)))
    for name, value in rows:
        table.add_row(name, value)
    table.add_row("Outcome", outcome(summary.outcome))
    return table


SPEND_COLUMNS = ("Key", "Cost", "Calls", "Refused", "Runs", "Input tokens", "Output tokens", "Cached")
# The spend table gives way like the runs table: detail columns first, then the key is cut with "…".
SPEND_FIT_STEPS: tuple[tuple[str, str, int], ...] = (
    ("drop", "Cached", 0),
    ("drop", "Refused", 0),
    ("drop", "Runs", 0),
    ("drop", "Output tokens", 0),
    ("cut", "Key", 16),
    ("drop", "Input tokens", 0),
    ("cut", "Key", 8),
)


def spend_table(rows: Sequence[SpendRow], by: str, *, width: int | None = None) -> Table:
    cells: list[list[str | Text]] = [
        [
            row.key,
            fmt.cost(row.cost_usd, row.unknown_cost_calls),
            str(row.calls),
            str(row.refused),
            str(row.runs),
            fmt.tokens(row.input_tokens),
            fmt.tokens(row.output_tokens),
            fmt.tokens(row.cache_read_tokens),
        ]
        for row in rows
    ]
    if len(rows) > 1:
        cells.append(
            [
                Text("total", style="bold"),
                fmt.total_cost(sum(r.cost_usd for r in rows), sum(r.unknown_cost_calls for r in rows)),
                str(sum(r.calls for r in rows)),
                str(sum(r.refused for r in rows)),
                "",
                fmt.tokens(sum(r.input_tokens for r in rows)),
                fmt.tokens(sum(r.output_tokens for r in rows)),
                fmt.tokens(sum(r.cache_read_tokens for r in rows)),
            ]
        )
    headers = (by.capitalize(), *SPEND_COLUMNS[1:])
    natural = {
        name: max([len(headers[index])] + [len(str(row[index])) for row in cells])
        for index, name in enumerate(SPEND_COLUMNS)
    }
    widths = _fit(natural, width, SPEND_FIT_STEPS)
    shown = [index for index, name in enumerate(SPEND_COLUMNS) if name in widths]
    table = Table(
        title=f"Spend by {by}",
        title_justify="left",
        header_style="bold",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        show_edge=False,
    )
    for index in shown:
        name = SPEND_COLUMNS[index]
        table.add_column(
            headers[index],
            justify="left" if name == "Key" else "right",
            no_wrap=True,
            overflow="ellipsis",
            width=widths[name],
        )
    for number, row in enumerate(cells):
        if len(rows) > 1 and number == len(rows):
            table.add_section()
        table.add_row(*(row[index] for index in shown))
    unknown = [r for r in rows if r.unknown_cost_calls]
    if unknown:
        reasons = "; ".join(unknown_reason(r.unknown_cost_calls, r.unpriced_models) for r in unknown[:3])
        table.caption = f"? = cost unknown: {reasons}"
        table.caption_justify = "left"
    return table


def explanation(expl: Explanation) -> RenderableType:
    parts: list[RenderableType] = [Text(expl.headline, style="bold")]
    for line in expl.details:
        parts.append(Text("  " + line))
    if expl.message:
        parts.append(Text(f"  The error said: {expl.message}", style="dim"))
    if expl.advice:
        parts.append(Text("What to change:", style="bold"))
        for line in expl.advice:
            parts.append(Text("  • " + line))
    return Group(*parts)
