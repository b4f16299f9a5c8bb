"""Issue #17: tables that fit, unknown costs shown as unknown, every run in the ledger, one-line errors."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ._helpers import REPO, Kinds, clean_env, parse_json, run_python

ELLIPSIS = "…"


def _table_lines(stdout: str) -> list[str]:
    lines = stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("Run ID"))
    body: list[str] = []
    for line in lines[header + 2 :]:
        if line.startswith("? ="):  # the caption, wrapped over one or more lines, ends the table
            break
        if line.strip():
            body.append(line)
    return [lines[header], *body]


@pytest.mark.parametrize("columns", [60, 80, 120])
def test_runs_table_fits_without_breaking_ids(kinds: Kinds, columns: int) -> None:
    result = kinds.cli("runs", "--limit", "0", COLUMNS=str(columns))
    assert result.returncode == 0, result.stderr
    assert all(len(line) <= columns for line in result.stdout.splitlines()), result.stdout
    header, *rows = _table_lines(result.stdout)
    for name in ("Run ID", "User", "Cost", "Outcome"):
        assert name in header
    if columns >= 80:
        assert "Started" in header
    if columns >= 120:
        assert all(name in header for name in ("Duration", "Turns", "Tokens"))
    assert len(rows) == len(kinds.run_ids)
    shown_ids = [row.split()[0] for row in rows]
    for shown in shown_ids:
        # Whole, or cut with an ellipsis: never a fragment folded onto the next line.
        full = [
            run_id
            for run_id in kinds.run_ids.values()
            if run_id == shown.rstrip(ELLIPSIS) or (shown.endswith(ELLIPSIS) and run_id.startswith(shown[:-1]))
        ]
        assert full, (shown, result.stdout)
    assert sorted(r for r in shown_ids if not r.endswith(ELLIPSIS)) == sorted(
        r for r in kinds.run_ids.values() if r in shown_ids
    )
    # The kinds' ids are at most 17 characters: from 60 columns on they fit, so none may be cut.
    assert not any(shown.endswith(ELLIPSIS) for shown in shown_ids), result.stdout
    outcomes = [row.split()[-1] for row in rows]
    assert outcomes.count("tripped") >= 6 and "completed" in outcomes and "error" in outcomes
    unpriced = next(row for row in rows if row.startswith("kind-unp"))
    assert re.search(r"\s\?\s", unpriced) and "$0 " not in unpriced + " "


def test_a_cut_run_id_still_finds_the_run(kinds: Kinds) -> None:
    result = kinds.cli("runs", "--limit", "0", COLUMNS="40")
    cut = [row.split()[0] for row in _table_lines(result.stdout)[1:] if row.split()[0].endswith(ELLIPSIS)]
    assert cut, result.stdout
    prefix = next(c[:-1] for c in cut if sum(r.startswith(c[:-1]) for r in kinds.run_ids.values()) == 1)
    shown = kinds.cli("show", prefix)
    assert shown.returncode == 0, shown.stderr


def test_no_color_and_pipes_get_no_escape_codes(kinds: Kinds) -> None:
    colored = kinds.cli("runs", FORCE_COLOR="1")
    assert "\x1b[" in colored.stdout  # the check below can fail
    plain = kinds.cli("runs", FORCE_COLOR="1", NO_COLOR="1")
    assert plain.returncode == 0 and "\x1b[" not in plain.stdout and "Run ID" in plain.stdout
    piped = kinds.cli("explain", kinds.run_ids["user"])
    assert "\x1b[" not in piped.stdout


def test_unknown_cost_is_unknown_everywhere(kinds: Kinds) -> None:
    run_id = kinds.run_ids["unpriced"]
    runs = parse_json(kinds.cli("runs", "--json", "--limit", "0"))
    row = next(r for r in runs if r["run_id"] == run_id)
    assert row["cost_usd"] is None and row["unknown_cost_calls"] == 2
    assert "in-house-model-7" in row["unknown_cost_reason"]
    priced = next(r for r in runs if r["run_id"] == kinds.run_ids["completed"])
    assert priced["cost_usd"] == priced["cost_known_usd"] > 0
    show = kinds.cli("show", run_id)
    assert "cost unknown (no price)" in show.stdout and "$0 " not in show.stdout
    explained = kinds.cli("explain", run_id)
    assert "unknown" in explained.stdout and "in-house-model-7" in explained.stdout
    usage = parse_json(kinds.cli("budgets", "--run", run_id, "--json"))
    assert usage["spent_usd"] is None and usage["unknown_cost_calls"] == 2
    spend = kinds.cli("spend", "--by", "user")
    total = next(line for line in spend.stdout.splitlines() if line.strip().startswith("total"))
    assert "+ unknown" in total


def _program(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "agent.py"
    path.write_text(
        textwrap.dedent("""
        import spendfuse
        from spendfuse.testing import FakeProvider, Reply

        def one_run(run_id):
            fake = FakeProvider()
            fake.enqueue(Reply.text("hi"))
            client = fake.anthropic_client()
            with spendfuse.run(run_id, user_id="ann"):
                client.messages.create(model="claude-sonnet-4-6", max_tokens=64,
                                       messages=[{"role": "user", "content": "x"}])
            client.close()
    """)
        + textwrap.dedent(body)
    )
    return path


def _rows(ledger: Path, run_id: str) -> list[tuple[str, str]]:
    with sqlite3.connect(ledger) as connection:
        return connection.execute("SELECT kind, span_id FROM spans WHERE run_id = ?", (run_id,)).fetchall()


def test_instrument_without_a_provider_records_to_the_ledger(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.db"
    program = _program(
        tmp_path,
        """
        spendfuse.instrument()
        spendfuse.instrument()  # twice: still one ledger processor
        one_run("plain-instrument")
    """,
    )
    result = run_python(str(program), env=clean_env(ledger))
    assert result.returncode == 0, result.stderr
    assert sorted(kind for kind, _ in _rows(ledger, "plain-instrument")) == ["call", "run"]
    assert os.stat(ledger).st_mode & 0o777 == 0o600


def test_the_apps_own_provider_keeps_its_exporter_and_gains_the_ledger(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.db"
    program = _program(
        tmp_path,
        """
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        spendfuse.instrument()
        spendfuse.instrument(run_budget=spendfuse.Budget(usd=1))
        one_run("own-provider")
        spendfuse.flush()
        print(sorted(s.name for s in exporter.get_finished_spans()))
    """,
    )
    result = run_python(str(program), env=clean_env(ledger))
    assert result.returncode == 0, result.stderr
    assert "'chat claude-sonnet-4-6'" in result.stdout and "invoke_agent" in result.stdout
    rows = _rows(ledger, "own-provider")
    assert sorted(kind for kind, _ in rows) == ["call", "run"]


def test_instrument_again_and_again_keeps_one_ledger_writer(tmp_path: Path) -> None:
    """Each instrument() re-applies settings; without an SDK provider it must not start another
    batch span processor (a thread each) writing the same ledger."""
    ledger = tmp_path / "ledger.db"
    program = _program(
        tmp_path,
        """
        import threading
        for budget in (0.5, 1.0, 2.0, 3.0, 4.0):
            spendfuse.instrument(run_budget=spendfuse.Budget(usd=budget))
        one_run("again")
        print(sum(1 for t in threading.enumerate() if t.name.startswith("OtelBatchSpan")))
    """,
    )
    result = run_python(str(program), env=clean_env(ledger))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["1"]
    assert sorted(kind for kind, _ in _rows(ledger, "again")) == ["call", "run"]


def test_an_app_that_configures_opentelemetry_after_instrument_keeps_its_provider(tmp_path: Path) -> None:
    """instrument() before the app's own OpenTelemetry setup: the app's set_tracer_provider is
    honoured (spendfuse never claims the global provider), its exporter sees spendfuse's spans from
    then on, and the ledger records runs before and after."""
    ledger = tmp_path / "ledger.db"
    program = _program(
        tmp_path,
        """
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        spendfuse.instrument()
        one_run("before-setup")
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        print("global is the app's:", trace.get_tracer_provider() is provider)
        one_run("after-setup")
        spendfuse.flush()
        print(sorted({s.attributes.get("spendfuse.run.id") for s in exporter.get_finished_spans()}))
    """,
    )
    result = run_python(str(program), env=clean_env(ledger))
    assert result.returncode == 0, result.stderr
    assert "Overriding of current TracerProvider is not allowed" not in result.stderr
    assert result.stdout.splitlines() == ["global is the app's: True", "['after-setup']"]
    assert sorted(kind for kind, _ in _rows(ledger, "before-setup")) == ["call", "run"]
    assert sorted(kind for kind, _ in _rows(ledger, "after-setup")) == ["call", "run"]


def test_opentelemetry_instrument_records_to_the_ledger(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.db"
    program = _program(
        tmp_path,
        """
        one_run("otel-entry-point")
    """,
    )
    launcher = Path(sys.executable).with_name("opentelemetry-instrument")
    if not launcher.exists():
        pytest.skip("opentelemetry-instrument is not installed next to this Python")
    env = clean_env(ledger, OTEL_TRACES_EXPORTER="none", OTEL_METRICS_EXPORTER="none", OTEL_LOGS_EXPORTER="none")
    result = subprocess.run(
        [str(launcher), sys.executable, str(program)], capture_output=True, text=True, env=env, cwd=REPO, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert sorted(kind for kind, _ in _rows(ledger, "otel-entry-point")) == ["call", "run"]


def test_ledger_off_records_nothing(tmp_path: Path) -> None:
    program = _program(
        tmp_path,
        """
        spendfuse.instrument()
        one_run("ledger-off")
    """,
    )
    env = clean_env(None, SPENDFUSE_LEDGER="off", HOME=str(tmp_path), XDG_DATA_HOME=str(tmp_path / "xdg"))
    result = run_python(str(program), env=env)
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "xdg").exists() and not (tmp_path / ".local").exists()


def test_default_ledger_is_created_owner_only(tmp_path: Path) -> None:
    program = _program(
        tmp_path,
        """
        import spendfuse.auto
        one_run("default-place")
    """,
    )
    env = clean_env(None, HOME=str(tmp_path), XDG_DATA_HOME=str(tmp_path / "xdg"))
    result = run_python(str(program), env=env)
    assert result.returncode == 0, result.stderr
    ledger = tmp_path / "xdg" / "spendfuse" / "ledger.db"
    assert sorted(kind for kind, _ in _rows(ledger, "default-place")) == ["call", "run"]
    assert os.stat(ledger.parent).st_mode & 0o777 == 0o700 and os.stat(ledger).st_mode & 0o777 == 0o600


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("SPENDFUSE_STORE", "postgres://db/1", "SPENDFUSE_STORE: unknown scheme 'postgres'"),
        ("SPENDFUSE_LEDGER", "/no/such/folder/ledger.db", "SPENDFUSE_LEDGER: the folder '/no/such/folder'"),
        ("SPENDFUSE_RUN_BUDGET", "usd=lots", "SPENDFUSE_RUN_BUDGET"),
        ("SPENDFUSE_STORE", "sqlite:////no/such/folder/b.db", "SPENDFUSE_STORE: the folder '/no/such/folder'"),
        ("SPENDFUSE_STORE", "sqlite:///b.db?fast=yes", "SPENDFUSE_STORE: unknown option 'fast'"),
    ],
)
def test_config_errors_name_the_variable(tmp_path: Path, variable: str, value: str, expected: str) -> None:
    env = clean_env(tmp_path / "ledger.db", **{variable: value})
    cli = run_python("-m", "spendfuse", "budgets", "--user", "alice", env=env)
    assert cli.returncode == 1
    assert cli.stderr.count("\n") == 1 and cli.stderr.startswith(f"spendfuse: error: {expected}"), cli.stderr
    auto = run_python("-c", "import spendfuse.auto", env=env)
    assert auto.returncode == 1
    last = auto.stderr.strip().splitlines()[-1]
    assert last.startswith(f"spendfuse.errors.ConfigError: {expected}"), auto.stderr
    # The traceback stops at the user's import line and spendfuse/auto.py, not deep in our internals.
    assert len(auto.stderr.strip().splitlines()) <= 8, auto.stderr


def test_demo_removes_its_temporary_ledger_unless_kept(tmp_path: Path) -> None:
    env = clean_env(None, TMPDIR=str(tmp_path))
    gone = run_python("-m", "spendfuse", "demo", "--json", env=env, timeout=120)
    assert gone.returncode == 0, gone.stderr
    assert json.loads(gone.stdout)["ledger"] is None and not list(tmp_path.glob("spendfuse-demo-*"))
    kept = run_python("-m", "spendfuse", "demo", "--json", "--keep-ledger", env=env, timeout=120)
    path = Path(json.loads(kept.stdout)["ledger"])
    assert path.is_file() and path.parent.parent == tmp_path


def test_the_reset_command_explain_suggests_runs_and_clears_the_window(kinds: Kinds, tmp_path: Path) -> None:
    import shutil

    source = Path(kinds.store.removeprefix("sqlite:///"))
    for suffix in ("", "-wal", "-shm"):  # a copy: the session's store stays as other tests expect it
        if Path(f"{source}{suffix}").exists():
            shutil.copyfile(f"{source}{suffix}", tmp_path / f"budgets.db{suffix}")
    store = f"sqlite:///{tmp_path / 'budgets.db'}"
    explained = kinds.cli("explain", kinds.run_ids["user"])
    found = re.search(r"(spendfuse budgets --reset [^(]*?--store STORE_URL)", " ".join(explained.stdout.split()))
    assert found, explained.stdout
    args = found.group(1).replace("STORE_URL", store).split()[1:]
    # (test_commands may already have reset carol's window in the session store, so spent may be 0.)
    before = parse_json(kinds.cli("budgets", "--user", "carol", "--window", "1d", "--store", store, "--json"))
    reset = kinds.cli(*args)
    assert reset.returncode == 0, reset.stderr
    assert "Reset" in reset.stdout
    after = parse_json(kinds.cli("budgets", "--user", "carol", "--window", "1d", "--store", store, "--json"))
    assert after["limits"]["usd"]["spent"] == 0 and after["key"] == before["key"]


def test_budgets_reads_the_same_env_and_toml_as_the_library(kinds: Kinds, tmp_path: Path) -> None:
    config = tmp_path / "spendfuse.toml"
    config.write_text(f'store = "{kinds.store}"\n[user_budget.users]\ncarol = {{ usd = 0.01, window = "1d" }}\n')
    from_toml = parse_json(kinds.cli("budgets", "--user", "carol", "--json", SPENDFUSE_CONFIG=str(config)))
    from_env = parse_json(
        kinds.cli(
            "budgets",
            "--user",
            "carol",
            "--json",
            SPENDFUSE_STORE=kinds.store,
            SPENDFUSE_USER_BUDGET="usd=0.01,window=1d",
        )
    )
    assert from_toml["key"] == from_env["key"] and from_toml["limits"]["usd"]["limit"] == 0.01
    assert from_toml["limits"]["usd"]["spent"] == from_env["limits"]["usd"]["spent"]
    assert from_toml["budget"] == from_env["budget"] is not None
    nothing = kinds.cli("budgets", "--user", "carol", "--store", kinds.store)
    assert nothing.returncode == 1 and "--window 1d" in nothing.stderr and nothing.stderr.count("\n") == 1


def test_the_commands_the_demo_prints_run_on_the_kept_ledger(tmp_path: Path) -> None:
    env = clean_env(None, TMPDIR=str(tmp_path), COLUMNS="200")
    demo = run_python("-m", "spendfuse", "demo", "--keep-ledger", env=env, timeout=120)
    assert demo.returncode == 0, demo.stderr
    commands = [line.split()[1:] for line in demo.stdout.splitlines() if line.startswith("  spendfuse ")]
    assert [c[0] for c in commands] == ["runs", "show", "spend"], demo.stdout
    for command in commands:
        ledger = Path(command[command.index("--ledger") + 1])
        assert ledger.parent.parent == tmp_path
        result = run_python("-m", "spendfuse", *command, env=env)
        assert result.returncode == 0, (command, result.stderr)
    shown = run_python("-m", "spendfuse", *commands[1], env=env)
    assert "TRIPPED run repeats" in shown.stdout


def test_in_flight_is_read_from_the_breaker_message() -> None:
    from spendfuse.budgets.messages import budget_error
    from spendfuse.cli import format as fmt

    error = budget_error(
        scope="user",
        key="carol",
        limit="usd",
        limit_value=10_000,
        spent=180,
        in_flight=9_819,
        requested=16_400,
        model="m",
        max_tokens=256,
        run_id="r",
        user_id="carol",
        window="1d",
    )
    assert fmt.in_flight_from_message("usd", str(error)) == 0.0098
    assert fmt.trip_numbers("usd", 0.00018, 0.0098, 0.0164, 0.01) == (
        "spent $0.00018, in flight $0.0098, this call up to $0.016, limit $0.01"
    )
    turns = budget_error(
        scope="run",
        key="r",
        limit="turns",
        limit_value=5,
        spent=3,
        in_flight=2,
        requested=1,
        model="m",
        max_tokens=256,
        run_id="r",
        user_id=None,
    )
    assert fmt.in_flight_from_message("turns", str(turns)) == 2
    assert fmt.in_flight_from_message("usd", "no such text") == 0.0


@pytest.mark.parametrize("columns", [60, 80, 120])
def test_spend_table_fits_and_keeps_key_cost_and_calls(kinds: Kinds, columns: int) -> None:
    result = kinds.cli("spend", "--by", "user", COLUMNS=str(columns))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert all(len(line) <= columns for line in lines), result.stdout
    header = next(line for line in lines if line.startswith("User"))
    assert header.split()[:3] == ["User", "Cost", "Calls"]
    if columns >= 120:
        assert header.endswith("Cached")
    rows = {line.split()[0]: line for line in lines[lines.index(header) + 2 :] if line.strip()}
    assert {"alice", "carol", "dave", "-", "total"} <= set(rows)
    assert rows["dave"].split()[1] == "?"
    assert "+ unknown" in rows["total"] and "…" not in rows["total"]
    assert all(re.match(r"^\$[\d.]+$", rows[user].split()[1]) for user in ("alice", "carol", "-"))


def test_a_toml_error_names_the_file_and_key(tmp_path: Path) -> None:
    config = tmp_path / "spendfuse.toml"
    config.write_text('store = "postgres://db/1"\n')
    env = clean_env(tmp_path / "ledger.db", SPENDFUSE_CONFIG=str(config))
    cli = run_python("-m", "spendfuse", "budgets", "--user", "alice", env=env)
    assert cli.returncode == 1 and cli.stderr.count("\n") == 1
    assert cli.stderr.startswith(f"spendfuse: error: {config}: store: unknown scheme 'postgres'"), cli.stderr


def test_stack_init_from_the_checkout_writes_the_root_files(tmp_path: Path) -> None:
    target = tmp_path / "stack"
    env = clean_env(None)
    result = run_python("-m", "spendfuse", "stack", "init", str(target), env=env)
    assert result.returncode == 0, result.stderr
    assert "docker compose up" in result.stdout
    for name in ("docker-compose.yml", "prometheus/rules/spendfuse.rules.yml", "grafana/dashboards/run-view.json"):
        assert (target / name).read_bytes() == (REPO / name).read_bytes(), name
    assert oct(os.stat(target / "docker-compose.yml").st_mode & 0o777) == "0o644"
    again = run_python("-m", "spendfuse", "stack", "init", str(target), env=env)
    assert again.returncode == 1 and "--force" in again.stderr and again.stderr.count("\n") == 1
    forced = run_python("-m", "spendfuse", "stack", "init", str(target), "--force", env=env)
    assert forced.returncode == 0, forced.stderr
    orphan = run_python("-m", "spendfuse", "stack", "init", str(tmp_path / "no" / "such"), env=env)
    assert orphan.returncode == 1 and "does not exist" in orphan.stderr and orphan.stderr.count("\n") == 1


def test_an_unwritable_default_folder_leaves_the_program_running(tmp_path: Path) -> None:
    program = _program(
        tmp_path,
        """
        spendfuse.instrument()
        one_run("no-ledger-folder")
        print("ran")
    """,
    )
    home = tmp_path / "home"
    home.write_text("")  # HOME is a file: ~/.local/share/spendfuse cannot be made, even by root
    env = clean_env(None, HOME=str(home), XDG_DATA_HOME="")
    result = run_python(str(program), env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ran" and "cannot create the ledger folder" in result.stderr
