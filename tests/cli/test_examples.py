"""The real-API examples: a clear no-op without a key, and a working agent against the fake server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from spendfuse.testing import FakeProvider, FakeServer, Reply

from ._helpers import REPO, clean_env, make_cli, parse_json, run_python


@pytest.fixture
def server() -> Iterator[FakeServer]:
    fake = FakeProvider()
    fake.enqueue(Reply.tool_call("utc_time", {}), Reply.text("It is Sunday in UTC."))
    with FakeServer(fake) as running:
        yield running


@pytest.mark.parametrize("name", ["anthropic", "openai"])
def test_examples_without_a_key_say_so(name: str, tmp_path: Path) -> None:
    result = run_python(str(REPO / "examples" / f"{name}_agent.py"), env=clean_env(tmp_path / "l.db"))
    assert result.returncode == 0, result.stderr
    assert f"{name.upper()}_API_KEY is not set" in result.stdout


@pytest.mark.parametrize("name", ["anthropic", "openai"])
def test_examples_record_their_run(name: str, server: FakeServer, tmp_path: Path) -> None:
    # No SPENDFUSE_LEDGER: `import spendfuse.auto` records to the per-user default ledger.
    home = tmp_path / "home"
    base_url = server.anthropic_base_url if name == "anthropic" else server.openai_base_url
    env = clean_env(
        HOME=str(home),
        XDG_DATA_HOME=str(home / "data"),
        **{f"{name.upper()}_API_KEY": "test-key", f"{name.upper()}_BASE_URL": base_url},
    )
    result = run_python(str(REPO / "examples" / f"{name}_agent.py"), env=env)
    assert result.returncode == 0, result.stderr
    assert "It is Sunday in UTC." in result.stdout
    runs = parse_json(make_cli(home / "data" / "spendfuse" / "ledger.db")("runs", "--json"))
    assert [(run["name"], run["calls"], run["outcome"]) for run in runs] == [(f"{name}-example", 2, "completed")]
