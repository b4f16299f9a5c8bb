"""Fuzzed configuration: keyword settings, SPENDFUSE_* variables, budget strings, tier tables, prices.

Whatever the value, configuration either succeeds or raises ``spendfuse.ConfigError`` (a ValueError)
whose message names the key or variable at fault; never another exception type.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import spendfuse
from spendfuse.budgets.pricing import PriceBook
from spendfuse.config.settings import SETTING_NAMES, Settings, load_settings

FUZZ = settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

NAMES = sorted(SETTING_NAMES)
VARIABLES = sorted(f"SPENDFUSE_{name.upper()}" for name in SETTING_NAMES - {"on_exceeded"})

numbers = st.one_of(
    st.integers(min_value=-(10**400), max_value=10**400),
    st.integers(min_value=-5, max_value=100),
    st.floats(allow_nan=True, allow_infinity=True),
)
words = st.sampled_from([
    "", " ", "0", "1", "-1", "0.5", "1e400", "-1e400", "nan", "inf", "-inf", "true", "False", "yes", "off", "none",
    "closed", "open", "memory://", "sqlite:///x.db", "redis://h:1/0", "usd=0.5,turns=20", "usd=1,window=1d", "1_000",
    "\x00", "\u00e9\u4e2d\U0001f600", "1d", "month", "$5", "usd", "=", "a=b=c", ",,,", "0x10",
])  # fmt: skip
text = st.one_of(words, st.text(max_size=20))
scalar = st.one_of(st.none(), st.booleans(), numbers, text)
anything = st.recursive(
    scalar,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(st.one_of(text, st.integers(), st.none()), children, max_size=3),
        st.tuples(children),
        st.frozensets(st.integers(), max_size=2),
    ),
    max_leaves=8,
)


def budget_text() -> st.SearchStrategy[str]:
    key = st.one_of(st.sampled_from(["usd", "turns", "tokens", "seconds", "repeats", "window", "USD", " usd "]), text)
    value = st.one_of(text, numbers.map(str))
    pair = st.tuples(key, st.sampled_from(["=", "", "=="]), value).map(lambda t: f"{t[0]}{t[1]}{t[2]}")
    return st.one_of(text, st.lists(pair, max_size=4).map(",".join))


def assert_config_error_names(error: BaseException, *names: str) -> None:
    assert type(error) is spendfuse.ConfigError, repr(error)
    assert isinstance(error, ValueError)
    message = str(error)
    assert any(name in message for name in names), (names, message)


# -- load_settings -----------------------------------------------------------------------------------


@FUZZ
@given(name=st.sampled_from(NAMES), value=anything)
def test_one_keyword_setting(name: str, value: Any) -> None:
    try:
        result = load_settings({name: value}, environ={})
    except Exception as error:
        assert_config_error_names(error, name)
    else:
        assert isinstance(result, Settings)


@FUZZ
@given(variable=st.sampled_from(VARIABLES), value=st.one_of(budget_text(), text))
def test_one_environment_variable(variable: str, value: str) -> None:
    try:
        result = load_settings(environ={variable: value})
    except Exception as error:
        assert_config_error_names(error, variable)
    else:
        assert isinstance(result, Settings)


@FUZZ
@given(
    environ=st.dictionaries(st.sampled_from([*VARIABLES, "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT",
                                             "SPENDFUSE_NOT_A_SETTING"]), text, max_size=5),
    overrides=st.dictionaries(st.one_of(st.sampled_from(NAMES), text), anything, max_size=4),
)  # fmt: skip
def test_many_sources_at_once(environ: dict[str, str], overrides: dict[str, Any]) -> None:
    try:
        load_settings(overrides, environ)
    except Exception as error:
        assert_config_error_names(error, *environ, *map(str, overrides))


HUGE_VALUES = {"1e400": 10**400, "-1e400": -(10**400), "2**1024": 2**1024, "5000-digits": 10**5000,
               "inf": float("inf"), "nan": float("nan"), "'1e999'": "1e999"}  # fmt: skip


@pytest.mark.parametrize("value", list(HUGE_VALUES.values()), ids=list(HUGE_VALUES))
@pytest.mark.parametrize("name", ["store_timeout", "lease_seconds", "warn_at", "clamp_floor",
                                  "default_max_output_tokens"])  # fmt: skip
def test_out_of_range_numbers_name_the_setting(name: str, value: Any) -> None:
    with pytest.raises(spendfuse.ConfigError, match=name):
        load_settings({name: value}, environ={})


@pytest.mark.parametrize("value", list(HUGE_VALUES.values()), ids=list(HUGE_VALUES))
@pytest.mark.parametrize("name", ["usd", "turns", "tokens", "seconds", "repeats"])
def test_out_of_range_budget_limits_name_the_limit(name: str, value: Any) -> None:
    with pytest.raises(spendfuse.ConfigError, match=f"Budget.{name}"):
        spendfuse.Budget(**{name: value})
    as_text = f"{name}={'9' * 400}" if isinstance(value, int) else f"{name}={value}"
    with pytest.raises(spendfuse.ConfigError, match="SPENDFUSE_RUN_BUDGET"):
        load_settings(environ={"SPENDFUSE_RUN_BUDGET": as_text})


# -- budgets -----------------------------------------------------------------------------------------


@FUZZ
@given(raw=budget_text())
def test_budget_parse(raw: str) -> None:
    try:
        budget = spendfuse.Budget.parse(raw, source="SPENDFUSE_RUN_BUDGET")
    except Exception as error:
        assert_config_error_names(error, "SPENDFUSE_RUN_BUDGET")
    else:
        assert_valid(budget)


def assert_valid(budget: spendfuse.Budget) -> None:
    for name in ("usd", "seconds"):
        value = getattr(budget, name)
        assert value is None or (value >= 0 and math.isfinite(value))
    for name in ("turns", "tokens", "repeats"):
        value = getattr(budget, name)  # Budget(turns=2.0) keeps the whole float; from text it is an int
        assert value is None or (value >= 0 and value == int(value))
    assert budget.usd_micros is None or (type(budget.usd_micros) is int and budget.usd_micros >= 0)
    assert isinstance(budget.describe(), str)


budget_fields = st.fixed_dictionaries(
    {},
    optional={name: anything for name in ("usd", "turns", "tokens", "seconds", "repeats", "window")},
)


@FUZZ
@given(fields=budget_fields)
def test_budget_constructor(fields: dict[str, Any]) -> None:
    try:
        budget = spendfuse.Budget(**fields)
    except Exception as error:
        assert_config_error_names(error, *(f"Budget.{name}" for name in fields))
    else:
        assert_valid(budget)


@FUZZ
@given(data=st.one_of(budget_fields, st.dictionaries(st.one_of(text, st.integers(), st.none()), anything,
                                                     max_size=3), anything))  # fmt: skip
def test_budget_from_mapping(data: Any) -> None:
    try:
        budget = spendfuse.Budget.from_mapping(data, source="run(budget=...)")
    except Exception as error:
        assert_config_error_names(error, "run(budget=...)")
    else:
        assert_valid(budget)


tier_table = st.fixed_dictionaries(
    {},
    optional={
        "default": st.one_of(st.sampled_from(["free", "pro", "nope"]), budget_fields, anything),
        "tiers": st.one_of(st.dictionaries(st.sampled_from(["free", "pro"]), st.one_of(budget_fields, anything),
                                           max_size=2), anything),
        "users": st.one_of(st.dictionaries(text, st.one_of(st.sampled_from(["free", "pro", "gold"]), budget_fields,
                                                           anything), max_size=3), anything),
    },
)  # fmt: skip


@FUZZ
@given(table=st.one_of(tier_table, anything), user=text)
def test_user_budget_tables(table: Any, user: str) -> None:
    try:
        resolved = load_settings({"user_budget": table}, environ={})
    except Exception as error:
        assert_config_error_names(error, "user_budget")
        return
    if resolved.user_budget is None:
        return
    try:
        budget = resolved.user_budget(user)
    except Exception as error:  # a table is resolved when loaded; only a callable may fail later
        pytest.fail(f"resolving user {user!r} raised {error!r}")
    if budget is not None:
        assert_valid(budget)


# -- prices ------------------------------------------------------------------------------------------

price = st.one_of(numbers, text, st.decimals(allow_nan=True, allow_infinity=True), anything)
price_entry = st.one_of(
    st.fixed_dictionaries({"input": price, "output": price}, optional={
        "cache_read": price, "cache_write": price, "max_output_tokens": anything,
        "tiers": st.one_of(st.lists(st.fixed_dictionaries({"above": anything, "input": price, "output": price}),
                                    max_size=2), anything)}),
    anything,
)  # fmt: skip


@FUZZ
@given(overrides=st.one_of(st.dictionaries(st.one_of(text, st.integers()), price_entry, max_size=3), anything))
def test_price_overrides(overrides: Any) -> None:
    try:
        book = PriceBook(overrides)
    except Exception as error:
        assert_config_error_names(error, "prices")
        return
    for name in overrides if isinstance(overrides, dict) else ():
        if isinstance(name, str) and name.strip():
            rates = book.rates("anthropic", name.strip())
            assert rates is None or min(rates.input, rates.output) >= 0


# -- the TOML file -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "named"),
    [
        (b"run_budget = 'usd=0.5,turns=2'\nwarn_at = 2\n", "warn_at"),
        (b"spendfuse = 'not a table'\n", "SPENDFUSE_CONFIG"),
        (b"tool = 1\n", "SPENDFUSE_CONFIG"),
        (b"[tool]\nspendfuse = [1, 2]\n", "SPENDFUSE_CONFIG"),
        (b"store_timeout = 1e400\n", "store_timeout"),
        (b"not toml at all = = =\n", "SPENDFUSE_CONFIG"),
        (b"\xff\xfe\x00 binary", "SPENDFUSE_CONFIG"),
        (b"[spendfuse]\nunknown_key = 1\n", "unknown_key"),
        (b"[spendfuse]\nuser_budget = {tiers = {free = {usd = -1}}}\n", "user_budget"),
    ],
)
def test_config_files(tmp_path: Path, content: bytes, named: str) -> None:
    path = tmp_path / "spendfuse.toml"
    path.write_bytes(content)
    with pytest.raises(spendfuse.ConfigError) as caught:
        load_settings(environ={"SPENDFUSE_CONFIG": str(path)})
    assert named in str(caught.value) or str(path) in str(caught.value)


@pytest.mark.parametrize("where", ["missing", "directory", "nul"])
def test_config_file_that_cannot_be_read(tmp_path: Path, where: str) -> None:
    path = {"missing": str(tmp_path / "absent.toml"), "directory": str(tmp_path), "nul": "bad\x00name.toml"}[where]
    with pytest.raises(spendfuse.ConfigError, match="SPENDFUSE_CONFIG"):
        load_settings(environ={"SPENDFUSE_CONFIG": path})
