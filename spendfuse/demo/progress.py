"""Live progress of the demo: one line per model call, tool and run, as each span ends.

It reads the same rows the ledger stores, so what scrolls by is exactly what gets recorded.
"""

from __future__ import annotations

import logging

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from rich.console import Console
from rich.text import Text

from spendfuse.cli import format as fmt
from spendfuse.cli import render
from spendfuse.ledger.rows import KIND_CALL, KIND_RUN, KIND_TOOL, to_rows


class ProgressPrinter(SpanProcessor):
    """``verbose``: every call and tool; otherwise only the end of each run (long --loop sessions)."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.verbose = True

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        return None

    def on_end(self, span: ReadableSpan) -> None:
        try:
            converted = to_rows(span)
        except Exception:
            return
        if converted is None:
            return
        row = converted[0]
        if not self.verbose and row.kind != KIND_RUN:
            return
        if row.kind == KIND_CALL:
            line = Text(f"  {row.user_id or '-':<6} {row.run_id or '-':<22} ", style="dim")
            line.append_text(render.span_label(row))
        elif row.kind == KIND_TOOL:
            line = Text(
                f"  {'':<6} {'':<22}   ↳ {row.tool_name or row.name}  "
                f"{fmt.duration(max(0, row.end_ns - row.start_ns) / fmt.NANOS)}",
                style="dim",
            )
        elif row.kind == KIND_RUN:
            mark = "✔" if row.outcome == "completed" else "✖"
            line = Text(f"{mark} run {row.run_id} ")
            line.append_text(render.outcome(row.outcome or "?"))
            line.append(f"  {fmt.plural(row.spent_turns or 0, 'turn')}  {fmt.tokens(row.spent_tokens)} tokens  ")
            line.append(fmt.usd(row.spent_usd), style="cyan")
            if self.verbose:
                line.append("\n")
        else:
            return
        self.console.print(line)

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class ConsoleLogHandler(logging.Handler):
    """Shows spendfuse's own log lines (trips, warnings, store trouble) among the progress lines."""

    def __init__(self, console: Console) -> None:
        super().__init__(logging.WARNING)
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.console.print(Text(f"  log {record.levelname.lower()}: {record.getMessage()}", style="yellow dim"))
        except Exception:
            self.handleError(record)
