"""Read the ledger back: runs, one run's spans and breaker events, spend aggregates.

A run is identified by its run id *and* trace: users may reuse a run id ("ticket-4711" retried),
and each attempt is its own trace. A run whose ``invoke_agent`` span never arrived (still going, or
its process died) is still listed, from its call spans, with the outcome ``unfinished``.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field

from spendfuse.ledger.rows import KIND_CALL, EventRow, SpanRow
from spendfuse.ledger.schema import EVENT_COLUMNS, SPAN_COLUMNS

OUTCOME_UNFINISHED = "unfinished"
NANOS = 1_000_000_000

# Finished runs come from their run span; the call count is one indexed lookup per listed run.
_FINISHED = """
    SELECT r.run_id, r.trace_id, r.span_id, r.user_id, r.run_name, r.parent_run_id, r.start_ns, r.end_ns,
           COALESCE(r.spent_turns, 0), COALESCE(r.spent_tokens, 0), r.spent_usd,
           COALESCE(r.outcome, 'OUTCOME'),
           (SELECT COUNT(*) FROM spans c
            WHERE c.run_id = r.run_id AND c.trace_id = r.trace_id AND c.kind = 'call'),
           (SELECT COUNT(*) FROM spans c
            WHERE c.run_id = r.run_id AND c.trace_id = r.trace_id AND c.kind = 'call' AND c.cost_unknown = 1),
           (SELECT GROUP_CONCAT(DISTINCT COALESCE(c.response_model, c.request_model)) FROM spans c
            WHERE c.run_id = r.run_id AND c.trace_id = r.trace_id AND c.kind = 'call' AND c.cost_unknown = 1)
    FROM spans r
    WHERE r.kind = 'run' AND r.run_id IS NOT NULL {where}
    ORDER BY r.start_ns DESC {limit}
""".replace("OUTCOME", OUTCOME_UNFINISHED)

# Unfinished runs: calls whose run span never arrived, summed from the calls themselves.
_UNFINISHED = """
    SELECT c.run_id, c.trace_id, NULL, MAX(c.user_id), NULL, NULL, MIN(c.start_ns), MAX(c.end_ns),
           SUM(CASE WHEN c.tripped = 0 THEN 1 ELSE 0 END),
           SUM(COALESCE(c.input_tokens, 0) + COALESCE(c.output_tokens, 0)),
           SUM(c.cost_usd), 'OUTCOME', COUNT(*), SUM(c.cost_unknown),
           GROUP_CONCAT(DISTINCT CASE WHEN c.cost_unknown = 1 THEN COALESCE(c.response_model, c.request_model) END)
    FROM spans c
    WHERE c.kind = 'call' AND c.run_id IS NOT NULL {where}
      AND NOT EXISTS (
          SELECT 1 FROM spans r WHERE r.run_id = c.run_id AND r.trace_id = c.trace_id AND r.kind = 'run'
      )
    GROUP BY c.run_id, c.trace_id
""".replace("OUTCOME", OUTCOME_UNFINISHED)

SPEND_KEYS = {
    "user": "COALESCE(user_id, '-')",
    "model": "COALESCE(request_model, response_model, '-')",
    "day": "strftime('%Y-%m-%d', start_ns / 1000000000, 'unixepoch')",
    "provider": "COALESCE(provider, '-')",
}


def unknown_reason(calls: int, models: str | None) -> str:
    found = sorted(set((models or "").split(",")) - {""})
    noun = "call" if calls == 1 else "calls"
    verb = "have" if len(found) > 1 else "has"
    models = ", ".join(found) or "an unnamed model"
    return f"{calls} {noun} to {models}, which {verb} no known price (add it with prices=...)"


class AmbiguousRunError(Exception):
    """A run id prefix matched several runs."""

    def __init__(self, prefix: str, matches: list[str]) -> None:
        super().__init__(prefix)
        self.prefix = prefix
        self.matches = matches


@dataclass(frozen=True, slots=True)
class RunSummary:
    run_id: str
    trace_id: str
    span_id: str | None
    user_id: str | None
    name: str | None
    parent_run_id: str | None
    start_ns: int
    end_ns: int
    turns: int
    tokens: int
    cost_usd: float | None
    outcome: str
    calls: int
    unknown_cost_calls: int = 0
    unpriced_models: str | None = None

    @property
    def cost_known(self) -> bool:
        return not self.unknown_cost_calls

    @property
    def unknown_cost_reason(self) -> str | None:
        """Why the cost is not known, in words; None when it is known."""
        if not self.unknown_cost_calls:
            return None
        return unknown_reason(self.unknown_cost_calls, self.unpriced_models)

    @property
    def duration_s(self) -> float:
        return max(0, self.end_ns - self.start_ns) / NANOS

    @property
    def started(self) -> float:
        return self.start_ns / NANOS

    def to_json(self) -> dict[str, object]:
        return {
            "run_id": self.run_id,
            "trace_id": self.trace_id,
            "user_id": self.user_id,
            "name": self.name,
            "parent_run_id": self.parent_run_id,
            "start": self.started,
            "duration_s": round(self.duration_s, 6),
            "turns": self.turns,
            "tokens": self.tokens,
            "calls": self.calls,
            # null, never 0, when a call's cost is unknown: the known part is cost_known_usd.
            "cost_usd": self.cost_usd if self.cost_known else None,
            "cost_known_usd": self.cost_usd or 0.0,
            "unknown_cost_calls": self.unknown_cost_calls,
            "unknown_cost_reason": self.unknown_cost_reason,
            "outcome": self.outcome,
        }


@dataclass(slots=True)
class SpanNode:
    span: SpanRow
    children: list[SpanNode] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class RunDetail:
    """A run with every span of its subtree (``root`` is None for an unfinished run)."""

    summary: RunSummary
    root: SpanRow | None
    tree: list[SpanNode]
    spans: list[SpanRow]
    events: list[EventRow]

    @property
    def calls(self) -> list[SpanRow]:
        return [span for span in self.spans if span.kind == KIND_CALL]


@dataclass(frozen=True, slots=True)
class SpendRow:
    key: str
    calls: int
    refused: int
    runs: int
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    cost_usd: float
    unknown_cost_calls: int
    unpriced_models: str | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "key": self.key,
            "calls": self.calls,
            "refused": self.refused,
            "runs": self.runs,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_read_tokens": self.cache_read_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "cost_usd": None if self.unknown_cost_calls else round(self.cost_usd, 9),
            "cost_known_usd": round(self.cost_usd, 9),
            "unknown_cost_calls": self.unknown_cost_calls,
            "unknown_cost_reason": (
                unknown_reason(self.unknown_cost_calls, self.unpriced_models) if self.unknown_cost_calls else None
            ),
        }


def _summary(row: tuple[object, ...]) -> RunSummary:
    return RunSummary(*row)  # type: ignore[arg-type]


@dataclass
class _Filter:
    clauses: list[str] = field(default_factory=list)
    params: list[object] = field(default_factory=list)

    def add(self, clause: str, *params: object) -> None:
        self.clauses.append(clause)
        self.params.extend(params)

    def sql(self, alias: str) -> str:
        return "".join(f" AND {clause.format(t=alias)}" for clause in self.clauses)


def _select_runs(
    connection: sqlite3.Connection, runs: _Filter, outcome: str | None, limit: int | None
) -> list[RunSummary]:
    found: list[RunSummary] = []
    if outcome != OUTCOME_UNFINISHED:
        finished = _Filter(list(runs.clauses), list(runs.params))
        if outcome is not None:
            finished.add("{t}.outcome = ?", outcome)
        sql = _FINISHED.format(where=finished.sql("r"), limit="LIMIT ?" if limit is not None else "")
        params = finished.params + ([limit] if limit is not None else [])
        found.extend(_summary(row) for row in connection.execute(sql, params))
    if outcome in (None, OUTCOME_UNFINISHED):
        sql = _UNFINISHED.format(where=runs.sql("c"))
        found.extend(_summary(row) for row in connection.execute(sql, runs.params))
    found.sort(key=lambda run: run.start_ns, reverse=True)
    return found if limit is None else found[:limit]


def list_runs(
    connection: sqlite3.Connection,
    *,
    user: str | None = None,
    since_ns: int | None = None,
    outcome: str | None = None,
    limit: int | None = 50,
    run_ids: list[str] | None = None,
) -> list[RunSummary]:
    """Newest first."""
    where = _Filter()
    if user is not None:
        where.add("{t}.user_id = ?", user)
    if since_ns is not None:
        where.add("{t}.start_ns >= ?", since_ns)
    if run_ids is not None:
        where.add(f"{{t}}.run_id IN ({', '.join('?' for _ in run_ids)})", *run_ids)
    return _select_runs(connection, where, outcome, limit)


def find_run(connection: sqlite3.Connection, run_id: str) -> RunSummary | None:
    """The latest run with this id; else the run whose id starts with it, when only one does."""
    exact = _Filter()
    exact.add("{t}.run_id = ?", run_id)
    found = _select_runs(connection, exact, None, 1)
    if found:
        return found[0]
    prefix = _Filter()
    # A range on the indexed column instead of LIKE, which is case-insensitive and cannot use it.
    prefix.add("{t}.run_id >= ? AND {t}.run_id < ?", run_id, run_id + "\U0010ffff")
    matches = _select_runs(connection, prefix, None, 11)
    ids = sorted({match.run_id for match in matches})
    if len(ids) > 1:
        raise AmbiguousRunError(run_id, ids)
    return matches[0] if matches else None


def count_attempts(connection: sqlite3.Connection, run_id: str) -> int:
    """How many runs (traces) used this run id."""
    row = connection.execute("SELECT COUNT(DISTINCT trace_id) FROM spans WHERE run_id = ?", (run_id,)).fetchone()
    return int(row[0]) if row else 0


def _subtree(spans: list[SpanRow], root: SpanRow | None, run_id: str) -> list[SpanNode]:
    nodes = {span.span_id: SpanNode(span) for span in spans}
    top: list[SpanNode] = []
    for span in sorted(spans, key=lambda s: (s.start_ns, s.end_ns)):
        if root is not None and span.span_id == root.span_id:
            continue
        node = nodes[span.span_id]
        parent = nodes.get(span.parent_span_id) if span.parent_span_id else None
        if parent is not None:
            parent.children.append(node)
        elif span.run_id == run_id:
            top.append(node)  # its parent was not recorded: hang it under the run
    if root is None:
        return top
    reachable = nodes[root.span_id].children + top
    return reachable


def _flatten(nodes: list[SpanNode]) -> list[SpanRow]:
    out: list[SpanRow] = []
    stack = list(reversed(nodes))
    while stack:
        node = stack.pop()
        out.append(node.span)
        stack.extend(reversed(node.children))
    return out


def run_detail(connection: sqlite3.Connection, summary: RunSummary) -> RunDetail:
    rows = connection.execute(
        f"SELECT {', '.join(SPAN_COLUMNS)} FROM spans WHERE trace_id = ?", (summary.trace_id,)
    ).fetchall()
    spans = [SpanRow(*row) for row in rows]
    root = next((s for s in spans if s.span_id == summary.span_id), None) if summary.span_id else None
    tree = _subtree(spans, root, summary.run_id)
    members = _flatten(tree)
    member_ids = {span.span_id for span in members}
    if root is not None:
        member_ids.add(root.span_id)
    event_rows = connection.execute(
        f"SELECT {', '.join(EVENT_COLUMNS)} FROM events WHERE trace_id = ? ORDER BY time_ns", (summary.trace_id,)
    ).fetchall()
    events = [event for event in (EventRow(*row) for row in event_rows) if event.span_id in member_ids]
    return RunDetail(summary=summary, root=root, tree=tree, spans=members, events=events)


def spend(connection: sqlite3.Connection, by: str, *, since_ns: int | None = None) -> list[SpendRow]:
    """Dispatched calls' cost and tokens grouped by user, model, provider, UTC day or a scope's key.

    Any other ``by`` is a scope name (``team``): calls group by the key their run gave that scope
    (``-`` for calls outside it).
    """
    params: list[object] = []
    key = SPEND_KEYS.get(by)
    if key is None:
        # Bound, not spliced: the scope name reaches SQL only as a JSON path parameter.
        key = "COALESCE(json_extract(scopes, ?), '-')"
        params.append(f'$."{by}"')
    where = "kind = 'call'"
    if since_ns is not None:
        where += " AND start_ns >= ?"
        params.append(since_ns)
    order = "key ASC" if by == "day" else "cost_usd DESC, key ASC"
    sql = f"""
        SELECT {key} AS key,
               SUM(CASE WHEN tripped = 0 THEN 1 ELSE 0 END),
               SUM(tripped),
               COUNT(DISTINCT run_id),
               COALESCE(SUM(input_tokens), 0),
               COALESCE(SUM(output_tokens), 0),
               COALESCE(SUM(cache_read_tokens), 0),
               COALESCE(SUM(cache_write_tokens), 0),
               COALESCE(SUM(cost_usd), 0.0) AS cost_usd,
               SUM(cost_unknown),
               GROUP_CONCAT(DISTINCT CASE WHEN cost_unknown = 1 THEN COALESCE(response_model, request_model) END)
        FROM spans WHERE {where}
        GROUP BY key ORDER BY {order}
    """
    return [SpendRow(*row) for row in connection.execute(sql, params)]
