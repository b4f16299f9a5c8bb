"""``LedgerExporter``: a ``SpanExporter`` that appends spendfuse's spans to the local ledger.

Use it behind a ``BatchSpanProcessor`` so writes are batched on the processor's thread and never on
the application's hot path. It never raises: a failed batch returns ``FAILURE`` and is logged once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from spendfuse.ledger.paths import DEFAULT_RETENTION_DAYS
from spendfuse.ledger.retention import Retention
from spendfuse.ledger.rows import EventRow, SpanRow, to_rows
from spendfuse.ledger.store import LedgerWriter

log = logging.getLogger("spendfuse")


class LedgerExporter(SpanExporter):
    def __init__(self, path: str | Path, *, retention_days: float | None = DEFAULT_RETENTION_DAYS) -> None:
        self.path = Path(path)
        self._writer = LedgerWriter(self.path)
        self._retention = Retention(retention_days)
        self._logged: set[str] = set()
        self._closed = False

    def _log_once(self, what: str) -> None:
        if what in self._logged:
            return
        self._logged.add(what)
        log.warning("spendfuse: could not %s the ledger %s; continuing without it", what, self.path, exc_info=True)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._closed:
            return SpanExportResult.FAILURE
        rows: list[SpanRow] = []
        events: list[EventRow] = []
        for span in spans:
            try:
                converted = to_rows(span)
            except Exception:
                self._log_once("read a span for")
                continue
            if converted is not None:
                rows.append(converted[0])
                events.extend(converted[1])
        try:
            self._writer.write(rows, events)
        except Exception:
            self._log_once("write")
            return SpanExportResult.FAILURE
        try:
            cutoff = self._retention.due()
            if cutoff is not None:
                self._writer.prune(cutoff)
        except Exception:
            self._log_once("prune")
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self._closed = True
        try:
            self._writer.close()
        except Exception:
            self._log_once("close")

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True  # every export is committed before it returns
