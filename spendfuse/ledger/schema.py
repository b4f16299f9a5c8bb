"""The ledger's SQLite schema.

One row per span (``spans``) and one per breaker event (``events``: trips, warnings, approved
overruns). Rows are only ever inserted; retention deletes whole old rows. No column can hold
message content: rows are built from an allow-list of attributes (see ``rows.py``).
"""

from __future__ import annotations

SCHEMA_VERSION = 3

SPAN_COLUMNS: tuple[str, ...] = (
    "trace_id",
    "span_id",
    "parent_span_id",
    "run_id",
    "parent_run_id",
    "run_name",
    "user_id",
    "name",
    "kind",
    "start_ns",
    "end_ns",
    "status",
    "status_message",
    "service",
    "provider",
    "request_model",
    "response_model",
    "tool_name",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cost_usd",
    "cost_unknown",
    "reserved_usd",
    "estimated",
    "outcome",
    "spent_usd",
    "spent_turns",
    "spent_tokens",
    "budget_usd",
    "tripped",
    "approved",
    "trip_scope",
    "trip_key",
    "trip_limit",
    "trip_limit_value",
    "trip_spent",
    "trip_requested",
    "error_type",
    "trip_in_flight",
    "scopes",
)

EVENT_COLUMNS: tuple[str, ...] = (
    "trace_id",
    "span_id",
    "run_id",
    "user_id",
    "name",
    "time_ns",
    "scope",
    "key",
    "limit_name",
    "limit_value",
    "spent",
    "requested",
    "in_flight",
)

# Columns added after version 1, per table: a ledger written by an older spendfuse gets them on open
# (ALTER TABLE ... ADD COLUMN keeps every row; old rows read NULL, "not recorded").
ADDED_COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    "spans": (("trip_in_flight", "REAL"), ("scopes", "TEXT")),
    "events": (("in_flight", "REAL"),),
}

DDL = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS spans (
    trace_id           TEXT NOT NULL,
    span_id            TEXT NOT NULL,
    parent_span_id     TEXT,
    run_id             TEXT,
    parent_run_id      TEXT,
    run_name           TEXT,
    user_id            TEXT,
    name               TEXT NOT NULL,
    kind               TEXT NOT NULL,          -- run | call | tool | other
    start_ns           INTEGER NOT NULL,       -- unix epoch nanoseconds
    end_ns             INTEGER NOT NULL,
    status             TEXT NOT NULL,          -- unset | ok | error
    status_message     TEXT,
    service            TEXT,
    provider           TEXT,
    request_model      TEXT,
    response_model     TEXT,
    tool_name          TEXT,
    input_tokens       INTEGER,
    output_tokens      INTEGER,
    cache_read_tokens  INTEGER,
    cache_write_tokens INTEGER,
    cost_usd           REAL,                   -- NULL when unknown (unpriced model) or not billed
    cost_unknown       INTEGER NOT NULL DEFAULT 0,
    reserved_usd       REAL,
    estimated          INTEGER NOT NULL DEFAULT 0,
    outcome            TEXT,                   -- run spans: completed | tripped | error
    spent_usd          REAL,
    spent_turns        INTEGER,
    spent_tokens       INTEGER,
    budget_usd         REAL,
    tripped            INTEGER NOT NULL DEFAULT 0,
    approved           INTEGER NOT NULL DEFAULT 0,
    trip_scope         TEXT,                   -- run | user | any keyed scope (team, org, model, ...)
    trip_key           TEXT,
    trip_limit         TEXT,                   -- usd | turns | tokens | seconds | repeats
    trip_limit_value   REAL,
    trip_spent         REAL,
    trip_requested     REAL,
    error_type         TEXT,
    trip_in_flight     REAL,                   -- what other calls had reserved at the trip (v2)
    scopes             TEXT,                   -- the run's keyed scopes, JSON {"team": "search"} (v3)
    PRIMARY KEY (trace_id, span_id)
);
CREATE INDEX IF NOT EXISTS spans_run ON spans (run_id, trace_id, kind);
CREATE INDEX IF NOT EXISTS spans_start ON spans (start_ns);
CREATE INDEX IF NOT EXISTS spans_kind_start ON spans (kind, start_ns);
CREATE TABLE IF NOT EXISTS events (
    trace_id    TEXT NOT NULL,
    span_id     TEXT NOT NULL,
    run_id      TEXT,
    user_id     TEXT,
    name        TEXT NOT NULL,                 -- spendfuse.breaker.tripped | .approved | spendfuse.budget.warning
    time_ns     INTEGER NOT NULL,
    scope       TEXT,
    key         TEXT,
    limit_name  TEXT,
    limit_value REAL,
    spent       REAL,
    requested   REAL,
    in_flight   REAL,                          -- reserved by calls in flight, apart from spent (v2)
    UNIQUE (trace_id, span_id, name, time_ns, limit_name)
);
CREATE INDEX IF NOT EXISTS events_run ON events (run_id);
CREATE INDEX IF NOT EXISTS events_time ON events (time_ns);
"""
