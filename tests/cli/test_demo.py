"""`spendfuse demo` end to end, then the other commands on the ledger it wrote."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from ._helpers import REPO, Demo, clean_env, make_cli, parse_json


def _runs(demo: Demo) -> dict[str, dict[str, object]]:
    runs = parse_json(demo.cli("runs", "--json", "--limit", "0"))
    return {str(run["run_id"]).rsplit("-", 1)[0]: run for run in runs}


def test_demo_exits_zero_and_tells_the_story(demo: Demo) -> None:
    out = demo.result.stdout
    assert demo.result.returncode == 0, demo.result.stderr
    assert "Traceback" not in demo.result.stderr
    assert "✔ run trip-planner-" in out and "completed" in out
    assert "✖ run booking-watcher-" in out and "tripped" in out
    assert "✖ run report-summary-" in out
    assert "TRIPPED run repeats" in out
    assert "TRIPPED user window usd" in out
    assert "stuck in a loop" in out
    assert "What to change:" in out
    assert "budgets --reset --user carol --window 1d --yes --store STORE_URL" in " ".join(out.split())


def test_runs_json_has_the_demo_runs_and_outcomes(demo: Demo) -> None:
    runs = _runs(demo)
    assert runs["trip-planner"]["outcome"] == "completed"
    assert runs["trip-planner"]["user_id"] == "alice"
    assert runs["trip-planner"]["turns"] == 3
    assert runs["booking-watcher"]["outcome"] == "tripped"
    assert runs["report-summary"]["outcome"] == "tripped"
    assert runs["report-summary"]["user_id"] == "carol"
    assert all(isinstance(run["cost_usd"], float) and run["cost_usd"] > 0 for run in runs.values())


def test_runs_filters(demo: Demo) -> None:
    tripped = parse_json(demo.cli("runs", "--json", "--outcome", "tripped"))
    assert {run["user_id"] for run in tripped} == {"bob", "carol"}
    assert [run["user_id"] for run in parse_json(demo.cli("runs", "--json", "--user", "alice"))] == ["alice"]
    assert parse_json(demo.cli("runs", "--json", "--since", "1h", "--limit", "1"))


def test_runs_table(demo: Demo) -> None:
    result = demo.cli("runs")
    assert result.returncode == 0, result.stderr
    for column in ("Run ID", "User", "Started", "Duration", "Turns", "Tokens", "Cost", "Outcome"):
        assert column in result.stdout
    assert "booking-watcher-" in result.stdout


def test_show_draws_calls_and_tools(demo: Demo) -> None:
    run_id = str(_runs(demo)["booking-watcher"]["run_id"])
    result = demo.cli("show", run_id)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("chat claude-sonnet-4-6") == 5  # four answered, the fifth refused
    assert result.stdout.count("execute_tool check_booking") == 4
    assert "✖ TRIPPED run repeats: 4 used, limit 3" in result.stdout


def test_show_json_and_grafana_link(demo: Demo) -> None:
    run_id = str(_runs(demo)["trip-planner"]["run_id"])
    data = parse_json(demo.cli("show", run_id, "--json", SPENDFUSE_GRAFANA_URL="http://grafana:3000/"))
    calls = [span for span in data["spans"] if span["kind"] == "call"]
    assert len(calls) == 3
    assert all(call["input_tokens"] > 0 and call["cost_usd"] > 0 for call in calls)
    tools = [child["tool_name"] for span in data["spans"] for child in span["children"]] + [
        span.get("tool_name") for span in data["spans"]
    ]
    assert "get_weather" in tools and "search_flights" in tools
    assert data["grafana_url"].startswith(f"http://grafana:3000/d/spendfuse-run/spendfuse-run?var-run_id={run_id}")


def test_ledger_never_holds_message_content(demo: Demo) -> None:
    raw = b"".join(path.read_bytes() for path in demo.ledger.parent.iterdir() if path.name.startswith("ledger.db"))
    for text in ("Plan a weekend", "Lisbon looks sunny", "Revenue grew", "BK-1042"):
        assert text.encode() not in raw


def test_demo_loop_flushes_every_round_and_stops_cleanly(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.db"
    process = subprocess.Popen(  # --json: progress goes to stderr, the last round's runs to stdout
        [sys.executable, "-m", "spendfuse", "demo", "--loop", "--delay", "0.1", "--json"],
        env=clean_env(ledger, PYTHONUNBUFFERED="1"),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    try:
        for line in process.stderr:
            if line.startswith("round 2"):  # round 1 was flushed before round 2 starts
                break
        runs = parse_json(make_cli(ledger)("runs", "--json", "--limit", "0"))
    finally:
        process.send_signal(signal.SIGTERM)
        out, _err = process.communicate(timeout=30)
    assert process.returncode == 0, out
    assert len(runs) >= 3 and len({run["run_id"] for run in runs}) == len(runs)
    last_round = json.loads(out)["runs"]
    assert [run["outcome"] for run in last_round] == ["completed", "tripped", "tripped"]
    assert last_round[1]["stopped_by"] == {"scope": "run", "limit": "repeats"}


def test_demo_prints_each_agent_in_order_and_trips_with_spent_in_flight_and_worst_case(demo: Demo) -> None:
    lines = demo.result.stdout.splitlines()
    headers = [i for i, line in enumerate(lines) if line.startswith("▶ ")]
    assert [lines[i].split()[1] for i in headers] == ["alice", "bob", "carol"]
    ends = [i for i, line in enumerate(lines) if line.startswith(("✔ run ", "✖ run "))]
    assert len(ends) == 3
    for number, (header, end) in enumerate(zip(headers, ends, strict=True)):
        # Each agent's calls, tools and run end are printed before the next agent's header.
        following = headers[number + 1] if number + 1 < len(headers) else len(lines)
        assert header < end < following, (header, end, following)
        user = lines[header].split()[1]
        calls = [line for line in lines[header + 1 : end] if " chat claude-" in line]
        assert calls and all(line.split()[0] == user for line in calls), calls
    trip = " ".join(" ".join(lines[headers[2] : ends[2]]).split())
    assert "TRIPPED user window usd: spent $0.00037, in flight $0, this call up to $0.016, limit $0.01" in trip
