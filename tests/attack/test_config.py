# ruff: noqa: SIM105, SIM117
"""Bad input: README 'A malformed value fails at start-up, naming the key and the form it accepts'."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

import spendfuse
from spendfuse.config.settings import load_settings
from spendfuse.testing import FakeProvider

SONNET = "claude-sonnet-4-5"
MESSAGES = [{"role": "user", "content": "hi"}]


def test_an_absurd_price_never_turns_the_breaker_off(instrument: Any, caplog: Any) -> None:
    fake = FakeProvider()
    try:
        instrument(prices={SONNET: {"input": "1e400", "output": 1}})
    except spendfuse.ConfigError:
        return  # refused at start-up, naming the key: fine
    with caplog.at_level(logging.CRITICAL, logger="spendfuse"):
        with spendfuse.run("absurd", budget=spendfuse.Budget(usd=1)):
            try:
                fake.anthropic_client().messages.create(model=SONNET, max_tokens=5, messages=MESSAGES)
            except spendfuse.BudgetExceeded:
                pass
    assert fake.request_count == 0


def test_huge_prices_are_refused_at_start_up_naming_the_key() -> None:
    """1e300 $/MTok is a typo, not a price: a ConfigError naming the model's key, at start-up."""
    with pytest.raises(spendfuse.ConfigError, match=SONNET):
        spendfuse.instrument(prices={SONNET: {"input": 1e300, "output": 1}})


def test_an_unparseable_redis_url_is_a_config_error_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPENDFUSE_STORE", "redis://[::1")
    with pytest.raises(spendfuse.ConfigError, match="SPENDFUSE_STORE"):
        spendfuse.instrument()


def test_a_sqlite_store_that_is_a_directory_fails_at_start_up(tmp_path: Path) -> None:
    with pytest.raises(spendfuse.ConfigError, match="SPENDFUSE_STORE"):
        load_settings(None, {"SPENDFUSE_STORE": f"sqlite:///{tmp_path}"})


def test_the_readme_documents_no_telemetry_thread_or_setting_that_is_gone() -> None:
    """The background telemetry thread and its setting were removed (telemetry is delivered with
    the call): the README must not document them."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert "background_telemetry" not in readme and "spendfuse-telemetry" not in readme
    with pytest.raises(spendfuse.ConfigError, match="background_telemetry"):
        load_settings({"background_telemetry": False}, {})


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("SPENDFUSE_RUN_BUDGET", "usd=nan"),
        ("SPENDFUSE_RUN_BUDGET", "usd=1e400"),
        ("SPENDFUSE_RUN_BUDGET", "turns=1.5"),
        ("SPENDFUSE_USER_BUDGET", "usd=1,window=2d"),
        ("SPENDFUSE_USER_BUDGET", "usd=1;turns=2"),
        ("SPENDFUSE_LEASE_SECONDS", "inf"),
        ("SPENDFUSE_STORE_TIMEOUT", "nan"),
        ("SPENDFUSE_DEFAULT_MAX_OUTPUT_TOKENS", "9" * 400),
        ("SPENDFUSE_STORE", "redis://h:notaport/0"),
        ("SPENDFUSE_STORE", "sqlite://relative.db"),
        ("SPENDFUSE_WARN_AT", "80%"),
    ],
)
def test_malformed_values_are_one_line_config_errors_naming_the_variable(
    variable: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Held: each is a one-line ConfigError that names the variable, at start-up."""
    monkeypatch.setenv(variable, value)
    with pytest.raises(spendfuse.ConfigError) as caught:
        spendfuse.instrument()
    message = str(caught.value)
    assert variable in message and "\n" not in message


@pytest.fixture(autouse=True)
def _uninstrument() -> Any:
    yield
    spendfuse.uninstrument()


def test_an_internal_error_while_admitting_a_budgeted_call_refuses_it(
    instrument: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug in the breaker must not become a silent budget bypass: with a budget that applies and
    store_failure='closed' (the default), the unchecked call is refused; with 'open' it goes through."""
    from spendfuse.budgets.breaker.core import Breaker

    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(Breaker, "admit", broken)
    fake = FakeProvider()
    instrument()
    with spendfuse.run("bugged", budget=spendfuse.Budget(usd=1)), pytest.raises(spendfuse.BudgetStoreUnavailable):
        fake.anthropic_client().messages.create(model=SONNET, max_tokens=5, messages=MESSAGES)
    assert fake.request_count == 0
    with spendfuse.run("unbudgeted"):  # no budget applies: telemetry only, the call goes through
        fake.anthropic_client().messages.create(model=SONNET, max_tokens=5, messages=MESSAGES)
    assert fake.request_count == 1
    instrument(store_failure="open")
    with spendfuse.run("open", budget=spendfuse.Budget(usd=1)):
        fake.anthropic_client().messages.create(model=SONNET, max_tokens=5, messages=MESSAGES)
    assert fake.request_count == 2
