"""Bad input: a non-zero exit code and one line that says what to do, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from spendfuse.cli.options import CliError, parse_since

from ._helpers import Demo, clean_env, make_cli, run_python


def _one_line_error(result: object, expected: str) -> None:
    stderr = result.stderr  # type: ignore[attr-defined]
    assert result.returncode == 1, stderr  # type: ignore[attr-defined]
    assert "Traceback" not in stderr
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert stderr.startswith("spendfuse: error: ") and expected in stderr, stderr


def test_unknown_run_id(demo: Demo) -> None:
    _one_line_error(demo.cli("show", "no-such-run"), "no run 'no-such-run'")
    _one_line_error(demo.cli("explain", "no-such-run"), "spendfuse runs")


def test_missing_ledger(tmp_path: Path) -> None:
    cli = make_cli(tmp_path / "absent.db")
    for command in (["runs"], ["explain", "x"]):
        _one_line_error(cli(*command), "no ledger at")
    assert not (tmp_path / "absent.db").exists()  # reading never creates a ledger


def test_missing_default_ledger(tmp_path: Path) -> None:
    env = clean_env(HOME=str(tmp_path), XDG_DATA_HOME=str(tmp_path / "data"))
    result = run_python("-m", "spendfuse", "runs", env=env)
    _one_line_error(result, str(tmp_path / "data" / "spendfuse" / "ledger.db"))


def test_bad_since_and_outcome(demo: Demo) -> None:
    _one_line_error(demo.cli("spend", "--since", "yesterday-ish"), "--since 'yesterday-ish'")
    _one_line_error(demo.cli("runs", "--outcome", "exploded"), "--outcome 'exploded'")


def test_since_forms() -> None:
    now = 1_000_000.0
    assert parse_since("all") is None and parse_since(None) is None
    assert parse_since("30m", now=now) == int((now - 1800) * 1e9)
    assert parse_since("2w", now=now) == int((now - 14 * 86400) * 1e9)
    assert parse_since("2025-01-31T00:00:00+00:00") == 1738281600 * 10**9
    for bad in ("3 fortnights", "-1d", "soon", ""):
        with pytest.raises(CliError, match="accepted"):
            parse_since(bad, now=now)


def test_not_a_ledger(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    _one_line_error(make_cli(junk)("runs"), "cannot read the ledger")


def test_no_command_prints_help() -> None:
    result = run_python("-m", "spendfuse", env=clean_env())
    assert result.returncode == 2 and "demo" in result.stdout
