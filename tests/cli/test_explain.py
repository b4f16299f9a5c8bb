"""`spendfuse explain` for every way a run can end, on runs a real program recorded."""

from __future__ import annotations

import pytest

from ._helpers import Kinds, parse_json

TRIPS = {
    "usd": (
        "run",
        [
            "stopped by the usd limit of the run",
            "could have cost up to",
            "Raise the run's USD budget",
            "lower max_tokens",
        ],
    ),
    "turns": ("run", ["stopped by the turns limit of the run", "turns (model calls)", "stop condition"]),
    "tokens": ("run", ["stopped by the tokens limit of the run", "tokens were already used", "Trim the conversation"]),
    "seconds": ("run", ["stopped by the seconds limit of the run", "wall-clock limit", "slowest tool was step"]),
    "repeats": (
        "run",
        [
            "stopped by the repeats limit of the run",
            "stuck in a loop",
            "same tool with the same arguments",
            "what step returns",
        ],
    ),
    "user": (
        "user",
        [
            "stopped by the usd limit of a user window",
            "daily budget of user 'carol'",
            "window resets",
            "spendfuse budgets --reset --user carol --window 1d --yes --store STORE_URL",
        ],
    ),
}


@pytest.mark.parametrize("kind", sorted(TRIPS))
def test_explain_each_trip(kinds: Kinds, kind: str) -> None:
    run_id = kinds.run_ids[kind]
    scope, phrases = TRIPS[kind]
    data = parse_json(kinds.cli("explain", run_id, "--json"))
    assert data["outcome"] == "tripped"
    limit = "usd" if kind == "user" else kind
    assert data["trip"]["limit"] == limit
    assert data["trip"]["scope"] == scope
    assert data["trip"]["limit_value"] is not None
    assert data["advice"]
    text = " ".join([data["headline"], *data["details"], *data["advice"], data["message"]])
    for phrase in phrases:
        assert phrase in text, (phrase, text)


def test_explain_prints_the_same_words(kinds: Kinds) -> None:
    result = kinds.cli("explain", kinds.run_ids["repeats"])
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())  # rich wraps long sentences
    data = parse_json(kinds.cli("explain", kinds.run_ids["repeats"], "--json"))
    for line in [data["headline"], *data["details"], *data["advice"]]:
        assert " ".join(line.split()) in text
    assert "What to change:" in text and "The error said:" in text


def test_explain_completed_run(kinds: Kinds) -> None:
    data = parse_json(kinds.cli("explain", kinds.run_ids["completed"], "--json"))
    assert data["outcome"] == "completed"
    assert "completed normally" in data["headline"]
    assert "No breaker tripped" in data["headline"]
    assert data["trip"] is None


def test_explain_error_run(kinds: Kinds) -> None:
    data = parse_json(kinds.cli("explain", kinds.run_ids["error"], "--json"))
    assert data["outcome"] == "error"
    assert "ended with an error (InternalServerError)" in data["headline"]
    assert "no budget stopped it" in data["headline"]


def test_explain_approved_overrun(kinds: Kinds) -> None:
    data = parse_json(kinds.cli("explain", kinds.run_ids["approved"], "--json"))
    assert data["outcome"] == "completed"
    assert any("Approved overrun" in line and "turns" in line for line in data["details"])


def test_show_marks_the_refused_call(kinds: Kinds) -> None:
    result = kinds.cli("show", kinds.run_ids["user"])
    assert result.returncode == 0, result.stderr
    assert "TRIPPED user window usd" in result.stdout
    assert "spendfuse explain kind-user" in result.stdout


def test_explain_a_trip_on_the_parent_budget(kinds: Kinds) -> None:
    data = parse_json(kinds.cli("explain", kinds.run_ids["nested"], "--json"))
    assert data["trip"]["key"] == kinds.run_ids["parent"] and data["trip"]["limit"] == "turns"
    assert any("parent run 'kind-nested'" in line for line in data["details"])
    parent = kinds.cli("show", kinds.run_ids["parent"])
    assert parent.returncode == 0, parent.stderr
    assert "invoke_agent kinds" in parent.stdout and "TRIPPED run turns" in parent.stdout


def test_explain_an_unfinished_run(kinds: Kinds) -> None:
    runs = parse_json(kinds.cli("runs", "--json", "--outcome", "unfinished"))
    assert [(run["run_id"], run["calls"]) for run in runs] == [(kinds.run_ids["unfinished"], 1)]
    data = parse_json(kinds.cli("explain", kinds.run_ids["unfinished"], "--json"))
    assert data["outcome"] == "unfinished" and "no recorded end" in data["headline"]
