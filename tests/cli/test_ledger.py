"""The ledger: concurrent writers, no message content, failures that never reach the app."""

from __future__ import annotations

import logging
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult

from spendfuse.ledger import LedgerExporter
from spendfuse.ledger.paths import default_ledger_path, resolve_ledger_path, retention_days
from spendfuse.ledger.retention import Retention
from spendfuse.ledger.rows import to_rows
from spendfuse.ledger.store import LedgerWriter, connect
from spendfuse.telemetry import names

from ._helpers import HERE, REPO, clean_env, make_cli, parse_json, run_python

WRITERS = 4
RUNS_EACH = 50


def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.db"
    processes = [
        subprocess.Popen(
            [sys.executable, str(HERE / "_writer.py"), str(ledger), str(worker), str(RUNS_EACH)],
            env=clean_env(),
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for worker in range(WRITERS)
    ]
    outputs = [process.communicate(timeout=120) for process in processes]
    for process, (_out, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, err
        assert "locked" not in err and "could not" not in err, err
    runs = parse_json(make_cli(ledger)("runs", "--json", "--limit", "0"))
    assert len(runs) == WRITERS * RUNS_EACH
    assert {run["outcome"] for run in runs} == {"completed"}
    tools = connect(ledger, create=False).execute("SELECT COUNT(*) FROM spans WHERE kind = 'tool'").fetchone()
    assert tools == (WRITERS * RUNS_EACH * 2,)


def _span(provider: TracerProvider, **attributes: object) -> None:
    tracer = provider.get_tracer("spendfuse")
    with tracer.start_as_current_span("chat m", attributes=attributes) as span:  # type: ignore[arg-type]
        span.add_event(names.EVENT_BREAKER_TRIPPED, {names.BREAKER_LIMIT: "usd", names.BREAKER_SPENT: 0.5})


def test_rows_keep_no_message_content(tmp_path: Path) -> None:
    seen = []

    class Keep(SimpleSpanProcessor):
        def on_end(self, span):  # type: ignore[no-untyped-def]
            seen.append(span)

    provider = TracerProvider()
    provider.add_span_processor(Keep(LedgerExporter(tmp_path / "l.db")))
    _span(
        provider,
        **{
            names.GEN_AI_OPERATION_NAME: "chat",
            names.RUN_ID: "r",
            names.COST_USD: 0.25,
            names.GEN_AI_INPUT_MESSAGES: "SECRET-IN",
            names.GEN_AI_OUTPUT_MESSAGES: "SECRET-OUT",
            names.GEN_AI_SYSTEM_INSTRUCTIONS: "SECRET-SYS",
        },
    )
    converted = to_rows(seen[0])
    assert converted is not None
    row, events = converted
    assert row.kind == "call" and row.cost_usd == 0.25 and row.tripped == 1
    assert row.trip_limit == "usd" and row.trip_spent == 0.5 and len(events) == 1
    assert not any("SECRET" in str(value) for value in row.values())


def test_cost_unknown_is_null(tmp_path: Path) -> None:
    seen = []

    class Keep(SimpleSpanProcessor):
        def on_end(self, span):  # type: ignore[no-untyped-def]
            seen.append(span)

    provider = TracerProvider()
    provider.add_span_processor(Keep(LedgerExporter(tmp_path / "l.db")))
    _span(provider, **{names.GEN_AI_OPERATION_NAME: "chat", names.COST_UNKNOWN: True, names.COST_USD: 0.0})
    converted = to_rows(seen[0])
    assert converted is not None and converted[0].cost_usd is None and converted[0].cost_unknown == 1


def test_foreign_spans_outside_runs_are_skipped(tmp_path: Path) -> None:
    ledger = tmp_path / "l.db"
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(LedgerExporter(ledger)))
    with provider.get_tracer("httpx").start_as_current_span("GET /"):
        pass
    with provider.get_tracer("httpx").start_as_current_span("GET /in-run", attributes={names.RUN_ID: "r"}):
        pass
    rows = connect(ledger, create=False).execute("SELECT name, kind FROM spans").fetchall()
    assert rows == [("GET /in-run", "other")]


def test_export_failure_returns_failure_and_logs_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    exporter = LedgerExporter(blocker / "ledger.db")  # its parent is a file: every write fails
    provider = TracerProvider()
    spans = []

    class Keep(SimpleSpanProcessor):
        def on_end(self, span):  # type: ignore[no-untyped-def]
            spans.append(span)

    provider.add_span_processor(Keep(exporter))
    _span(provider, **{names.GEN_AI_OPERATION_NAME: "chat"})
    with caplog.at_level(logging.WARNING, logger="spendfuse"):
        assert exporter.export(spans) is SpanExportResult.FAILURE
        assert exporter.export(spans) is SpanExportResult.FAILURE
    assert len([r for r in caplog.records if "could not write the ledger" in r.getMessage()]) == 1


def test_retention_prunes_old_rows(tmp_path: Path) -> None:
    ledger = tmp_path / "l.db"
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(LedgerExporter(ledger)))
    _span(provider, **{names.GEN_AI_OPERATION_NAME: "chat", names.RUN_ID: "r"})
    writer = LedgerWriter(ledger)
    writer.prune(older_than_ns=2**62)
    writer.close()
    connection = sqlite3.connect(ledger)
    assert connection.execute("SELECT COUNT(*) FROM spans").fetchone() == (0,)
    assert connection.execute("SELECT COUNT(*) FROM events").fetchone() == (0,)
    clock = iter([1000.0, 1001.0, 1000.0 + 3601])
    retention = Retention(1.0, clock=lambda: next(clock))
    assert retention.due() == int((1000.0 - 86400) * 1e9)
    assert retention.due() is None
    assert retention.due() is not None
    assert Retention(None).due() is None


def test_paths_and_settings(tmp_path: Path) -> None:
    assert default_ledger_path({"HOME": "/h"}, "linux") == Path("/h/.local/share/spendfuse/ledger.db")
    assert default_ledger_path({"HOME": "/h", "XDG_DATA_HOME": "/x"}, "linux") == Path("/x/spendfuse/ledger.db")
    assert default_ledger_path({"HOME": "/h", "XDG_DATA_HOME": "rel"}, "linux").parts[:2] == ("/", "h")
    assert default_ledger_path({"HOME": "/h"}, "darwin") == Path("/h/Library/Application Support/spendfuse/ledger.db")
    assert default_ledger_path({"HOME": "/h", "LOCALAPPDATA": "/l"}, "win32") == Path("/l/spendfuse/ledger.db")
    assert resolve_ledger_path(None, {"SPENDFUSE_LEDGER": "off"}) is None
    assert resolve_ledger_path(None, {"SPENDFUSE_LEDGER": str(tmp_path / "x.db")}) == tmp_path / "x.db"
    assert resolve_ledger_path("/set.db", {"SPENDFUSE_LEDGER": "/env.db"}) == Path("/set.db")
    assert retention_days({}) == 30.0
    assert retention_days({"SPENDFUSE_LEDGER_RETENTION_DAYS": "0"}) is None
    with pytest.raises(ValueError, match="SPENDFUSE_LEDGER_RETENTION_DAYS"):
        retention_days({"SPENDFUSE_LEDGER_RETENTION_DAYS": "soon"})


def test_spendfuse_auto_without_ledger_when_turned_off(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = clean_env(HOME=str(home), XDG_DATA_HOME=str(home / "data"), SPENDFUSE_LEDGER="off")
    result = run_python("-c", "import spendfuse.auto, spendfuse\nwith spendfuse.run('r'):\n    pass", env=env)
    assert result.returncode == 0, result.stderr
    assert not (home / "data").exists()


def test_a_version_1_ledger_gains_the_in_flight_columns_and_keeps_its_rows(tmp_path: Path) -> None:
    import sqlite3

    from spendfuse.ledger.schema import DDL
    from spendfuse.ledger.store import connect

    path = tmp_path / "old.db"
    old = sqlite3.connect(path)
    # The version 1 schema: today's DDL without the lines of the columns added in version 2.
    v1 = "\n".join(line for line in DDL.splitlines() if "(v2)" not in line)
    old.executescript(v1)
    old.execute(
        "INSERT INTO spans (trace_id, span_id, name, kind, start_ns, end_ns, status) "
        "VALUES ('t', 's', 'chat m', 'call', 1, 2, 'ok')"
    )
    old.commit()
    assert "trip_in_flight" not in {row[1] for row in old.execute("PRAGMA table_info(spans)")}
    old.close()
    upgraded = connect(path, create=False)
    try:
        assert "trip_in_flight" in {row[1] for row in upgraded.execute("PRAGMA table_info(spans)")}
        assert "in_flight" in {row[1] for row in upgraded.execute("PRAGMA table_info(events)")}
        assert upgraded.execute("SELECT name, trip_in_flight FROM spans").fetchall() == [("chat m", None)]
        assert upgraded.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == ("3",)
    finally:
        upgraded.close()


def test_a_recorded_in_flight_amount_is_used_and_shown_apart() -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from spendfuse.cli import format as fmt
    from spendfuse.ledger.rows import BREAKER_IN_FLIGHT, to_rows
    from spendfuse.telemetry import names

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("spendfuse").start_as_current_span(
        "chat m", attributes={names.GEN_AI_OPERATION_NAME: names.OPERATION_CHAT, names.RUN_ID: "r"}
    ) as span:
        span.add_event(
            names.EVENT_BREAKER_TRIPPED,
            {
                names.BREAKER_SCOPE: "user",
                names.BREAKER_LIMIT: "usd",
                names.BREAKER_LIMIT_VALUE: 0.01,
                names.BREAKER_SPENT: 0.00018,
                names.BREAKER_REQUESTED: 0.0016,
                BREAKER_IN_FLIGHT: 0.0081,
            },
        )
    converted = to_rows(exporter.get_finished_spans()[0])
    assert converted is not None
    row, events = converted
    assert row.trip_in_flight == 0.0081 and events[0].in_flight == 0.0081
    assert fmt.recorded_in_flight(row) == 0.0081
