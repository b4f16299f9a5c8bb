"""Usage normalization and prices: exact against genai-prices, overrides, tiers, snapshot immunity."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from decimal import ROUND_CEILING, Decimal
from pathlib import Path
from typing import Any

import genai_prices
import pytest
from genai_prices import data_snapshot
from genai_prices.types import ModelInfo, ModelPrice, Provider
from hypothesis import given, settings
from hypothesis import strategies as st

from spendfuse.budgets.pricing import PriceBook, Rates
from spendfuse.budgets.usage import TokenUsage, anthropic_usage, openai_chat_usage, openai_responses_usage
from spendfuse.errors import ConfigError

# -- usage mapping -------------------------------------------------------------------------------


def test_anthropic_usage_adds_cache_tokens_back_into_input() -> None:
    from anthropic.types import CacheCreation, Usage

    usage = Usage(
        input_tokens=120,
        output_tokens=45,
        cache_read_input_tokens=3000,
        cache_creation_input_tokens=800,
        cache_creation=CacheCreation(ephemeral_5m_input_tokens=300, ephemeral_1h_input_tokens=500),
    )
    assert anthropic_usage(usage) == TokenUsage(
        input_tokens=3920, output_tokens=45, cache_read_tokens=3000, cache_write_tokens=800, cache_write_1h_tokens=500
    )


def test_anthropic_usage_from_dict_and_stream_delta() -> None:
    from anthropic.types import MessageDeltaUsage

    as_dict = {"input_tokens": 10, "output_tokens": 2, "cache_read_input_tokens": None}
    assert anthropic_usage(as_dict) == TokenUsage(input_tokens=10, output_tokens=2)
    delta = MessageDeltaUsage(output_tokens=77, input_tokens=None, cache_read_input_tokens=5)
    assert anthropic_usage(delta) == TokenUsage(input_tokens=5, output_tokens=77, cache_read_tokens=5)


def test_anthropic_usage_breakdown_without_total_keeps_the_writes() -> None:
    raw = {"input_tokens": 1, "output_tokens": 1, "cache_creation": {"ephemeral_1h_input_tokens": 40}}
    assert anthropic_usage(raw) == TokenUsage(
        input_tokens=41, output_tokens=1, cache_write_tokens=40, cache_write_1h_tokens=40
    )


@pytest.mark.parametrize(
    "raw",
    [
        {"input_tokens": -5, "output_tokens": "7", "cache_read_input_tokens": True},
        {"input_tokens": None, "output_tokens": None, "cache_creation": "garbage"},
        {"input_tokens": float("nan"), "output_tokens": [], "cache_creation_input_tokens": {}},
    ],
)
def test_anthropic_usage_tolerates_bad_fields(raw: dict[str, Any]) -> None:
    assert anthropic_usage(raw) == TokenUsage()


def test_no_usage_at_all_is_none() -> None:
    assert anthropic_usage(None) is None
    assert anthropic_usage(object()) is None
    assert anthropic_usage({}) is None
    assert openai_chat_usage(None) is None
    assert openai_chat_usage({"total_tokens": 3}) is None
    assert openai_responses_usage(object()) is None


def test_openai_chat_usage_counts_cached_inside_prompt() -> None:
    from openai.types import CompletionUsage
    from openai.types.completion_usage import PromptTokensDetails

    usage = CompletionUsage(
        prompt_tokens=5000,
        completion_tokens=300,
        total_tokens=5300,
        prompt_tokens_details=PromptTokensDetails(cached_tokens=4096, cache_write_tokens=600),
    )
    assert openai_chat_usage(usage) == TokenUsage(
        input_tokens=5000, output_tokens=300, cache_read_tokens=4096, cache_write_tokens=600
    )
    assert openai_chat_usage({"prompt_tokens": 9, "completion_tokens": 1}) == TokenUsage(9, 1)
    # Parts larger than the whole: the whole grows, a cost is never lost.
    assert openai_chat_usage(
        {"prompt_tokens": 9, "completion_tokens": 1, "prompt_tokens_details": {"cached_tokens": 20}}
    ) == TokenUsage(20, 1, 20)


def test_openai_responses_usage() -> None:
    from openai.types.responses import ResponseUsage

    usage = ResponseUsage.model_construct(
        input_tokens=2048,
        output_tokens=512,
        total_tokens=2560,
        input_tokens_details={"cached_tokens": 1024, "cache_write_tokens": 0},
        output_tokens_details={"reasoning_tokens": 256},
    )
    assert openai_responses_usage(usage) == TokenUsage(2048, 512, 1024)
    assert openai_responses_usage({"input_tokens": 3, "output_tokens": 4, "input_tokens_details": None}) == (
        TokenUsage(3, 4)
    )
    assert TokenUsage(3, 4).total == 7


# -- prices against genai-prices -----------------------------------------------------------------


@pytest.fixture(scope="module")
def book() -> PriceBook:
    return PriceBook()


def _theirs(provider: str, model: str, usage: TokenUsage) -> int:
    their_usage = genai_prices.Usage(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_read_tokens=usage.cache_read_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        cache_write_1h_tokens=usage.cache_write_1h_tokens,
    )
    snapshot = data_snapshot._bundled_snapshot()
    result = snapshot.calc(their_usage, model, provider, None, datetime.now(timezone.utc))
    return int((result.total_price * 1_000_000).to_integral_value(rounding=ROUND_CEILING))


VERIFIED = [
    ("anthropic", "claude-sonnet-4-5"),
    ("anthropic", "claude-sonnet-4-5-20250929"),
    ("anthropic", "claude-opus-4-1"),
    ("anthropic", "claude-haiku-4-5"),
    ("anthropic", "claude-opus-4-5"),
    ("anthropic", "claude-sonnet-4-6"),
    ("anthropic", "claude-haiku-5-5"),
    ("anthropic", "claude-3-5-haiku-latest"),
    ("openai", "gpt-4o"),
    ("openai", "gpt-4o-mini"),
    ("openai", "gpt-4.1"),
    ("openai", "gpt-5"),
    ("openai", "gpt-5-mini"),
    ("openai", "o3"),
    ("openai", "o4-mini"),
    ("openai", "gpt-5.4"),
    ("openai", "gpt-5.6-sol"),
    ("openai", "gpt-5-pro"),
]
USAGES = [
    TokenUsage(input_tokens=1234, output_tokens=567),
    TokenUsage(input_tokens=50_000, output_tokens=2_000, cache_read_tokens=40_000, cache_write_tokens=9_000),
    TokenUsage(
        input_tokens=120_000,
        output_tokens=7,
        cache_read_tokens=1,
        cache_write_tokens=100_000,
        cache_write_1h_tokens=60_000,
    ),
    TokenUsage(input_tokens=200_000, output_tokens=1000, cache_read_tokens=150_000),  # at the tier edge
    TokenUsage(input_tokens=200_001, output_tokens=1000, cache_read_tokens=150_000, cache_write_tokens=30_000),
    TokenUsage(input_tokens=300_000, output_tokens=64_000, cache_write_tokens=300_000, cache_write_1h_tokens=300_000),
    TokenUsage(input_tokens=1, output_tokens=0),
]


@pytest.mark.parametrize(("provider", "model"), VERIFIED)
def test_cost_equals_genai_prices(book: PriceBook, provider: str, model: str) -> None:
    rates = book.rates(provider, model)
    assert rates is not None
    for usage in USAGES:
        assert book.cost_micros(rates, usage) == _theirs(provider, model, usage), usage


def test_raw_anthropic_usage_is_mispriced_by_genai_prices_but_ours_is_not(book: PriceBook) -> None:
    from anthropic.types import Usage

    raw = Usage(input_tokens=100, output_tokens=10, cache_read_input_tokens=50_000, cache_creation_input_tokens=2_000)
    rates = book.rates("anthropic", "claude-sonnet-4-5")
    assert rates is not None
    usage = anthropic_usage(raw)
    assert usage is not None
    ours = book.cost_micros(rates, usage)
    silently_wrong = genai_prices.calc_price(raw, "claude-sonnet-4-5", provider_id="anthropic").total_price
    assert silently_wrong * 1_000_000 < ours  # the cache reads and writes vanished
    extracted = genai_prices.extract_usage(
        {"model": "claude-sonnet-4-5", "usage": raw.model_dump()}, provider_id="anthropic"
    )
    their = extracted.calc_price().total_price
    assert ours == int((their * 1_000_000).to_integral_value(rounding=ROUND_CEILING))


def test_known_rates_and_long_context_tier(book: PriceBook) -> None:
    sonnet = book.rates("anthropic", "claude-sonnet-4-5")
    assert sonnet is not None
    assert (sonnet.input, sonnet.output, sonnet.cache_read, sonnet.cache_write, sonnet.cache_write_1h) == (
        3_000_000,
        15_000_000,
        300_000,
        3_750_000,
        6_000_000,
    )
    assert sonnet.for_input(200_000) is sonnet
    above = sonnet.for_input(200_001)
    assert (above.input, above.output) == (6_000_000, 22_500_000)
    # $3/MTok * 1M tokens + $15/MTok * 1M tokens.
    assert book.cost_micros(sonnet, TokenUsage(input_tokens=1_000_000, output_tokens=0)) == 6_000_000


def test_missing_cache_prices_fall_back_like_genai_prices(book: PriceBook) -> None:
    gpt4o = book.rates("openai", "gpt-4o")
    assert gpt4o is not None
    assert gpt4o.cache_write == gpt4o.input == 2_500_000 and gpt4o.cache_write_1h == gpt4o.input
    pro = book.rates("openai", "gpt-5-pro")  # no cache-read price at all
    assert pro is not None and pro.cache_read == pro.input


def test_price_valid_now_is_taken(book: PriceBook) -> None:
    o3 = book.rates("openai", "o3")  # $10 until 2025-06-10, then $2
    assert o3 is not None and o3.input == 2_000_000
    sonnet_46 = book.rates("anthropic", "claude-sonnet-4-6")  # tiered until 2026-03-13, flat since
    assert sonnet_46 is not None and sonnet_46.tiers == ()


def test_prefixes_variants_and_unpriced(book: PriceBook) -> None:
    plain = book.rates("anthropic", "claude-sonnet-4-5")
    assert book.rates("anthropic", "anthropic/claude-sonnet-4-5") == plain
    assert book.rates("anthropic", "us.anthropic.claude-sonnet-4-5-20250929-v1:0") == plain
    assert book.rates("openai", "openai/gpt-4o") == book.rates("openai", "gpt-4o")
    assert book.rates("openai", "no-such-model") is None
    assert book.rates("no-such-provider", "gpt-4o") is None
    priority = book.rates("openai", "gpt-5", service_tier="priority")
    standard = book.rates("openai", "gpt-5", service_tier="auto")
    assert priority is not None and standard is not None and priority.input == 2 * standard.input
    fast = book.rates("anthropic", "claude-opus-4-8", speed="fast")
    normal = book.rates("anthropic", "claude-opus-4-8")
    assert fast is not None and normal is not None and fast.output == 2 * normal.output


def test_rates_are_cached_and_never_call_calc_price(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("calc_price on the hot path")

    monkeypatch.setattr(genai_prices, "calc_price", boom)
    monkeypatch.setattr(ModelInfo, "calc_price", boom)
    monkeypatch.setattr(ModelPrice, "calc_price", boom)
    book = PriceBook()
    first = book.rates("anthropic", "claude-haiku-4-5")
    assert first is not None
    assert book.rates("anthropic", "claude-haiku-4-5") is first
    assert book.cost_micros(first, TokenUsage(10, 10)) > 0


def test_openai_implicit_cache_writes_raise_the_worst_case(book: PriceBook) -> None:
    sol = book.rates("openai", "gpt-5.6-sol")
    assert sol is not None and sol.implicit_cache_write and sol.cache_write > sol.input
    worst = book.worst_case_micros(sol, input_tokens=100_000, max_output_tokens=0)
    assert worst == -(-100_000 * sol.cache_write // 1_000_000)
    gpt4o = book.rates("openai", "gpt-4o")
    assert gpt4o is not None and not gpt4o.implicit_cache_write


def test_worst_case_prices_cache_writes_and_tiers(book: PriceBook) -> None:
    sonnet = book.rates("anthropic", "claude-sonnet-4-5")
    assert sonnet is not None
    plain = book.worst_case_micros(sonnet, input_tokens=100_000, max_output_tokens=1000)
    assert plain == 300_000 + 15_000
    assert book.worst_case_micros(sonnet, input_tokens=100_000, max_output_tokens=1000, cache_write=True) == (
        375_000 + 15_000
    )
    assert book.worst_case_micros(sonnet, input_tokens=100_000, max_output_tokens=1000, cache_write_1h=True) == (
        600_000 + 15_000
    )
    assert book.worst_case_micros(sonnet, input_tokens=250_000, max_output_tokens=0) == 1_500_000


def test_max_output_tokens_and_context_window(book: PriceBook) -> None:
    assert book.max_output_tokens("openai", "gpt-4o") == 16_384
    assert book.max_output_tokens("openai", "gpt-4o-2024-08-06") == 16_384
    assert book.max_output_tokens("openai", "gpt-4o-2024-05-13") == 4_096
    assert book.max_output_tokens("openai", "openai/gpt-4.1-mini") == 32_768
    assert book.max_output_tokens("openai", "o3-2025-04-16") == 100_000
    assert book.max_output_tokens("anthropic", "claude-sonnet-4-5-20250929") == 64_000
    assert book.max_output_tokens("openai", "some-future-model") is None
    assert book.context_window("openai", "gpt-4o") == 128_000
    assert book.context_window("openai", "nope") is None


# -- overrides -----------------------------------------------------------------------------------


def test_overrides_win_and_are_exact() -> None:
    book = PriceBook(
        {
            "claude-sonnet-4-5": {"input": 1, "output": "2.5", "cache_read": Decimal("0.1"), "max_output_tokens": 999},
            "anthropic/my-model": {"input": 0.1, "output": 0.3, "cache_write": 0.125, "cache_write_1h": 0.2},
            "my-model": {"input": 9, "output": 9},
        }
    )
    sonnet = book.rates("anthropic", "claude-sonnet-4-5-20250929")
    # Token prices are replaced whole; per-use server-tool fees not given keep the bundled ones
    # (web search $10 per 1000 = 10_000_000_000 pico per use), so an override never drops a fee.
    assert sonnet == Rates(1_000_000, 2_500_000, 100_000, 1_000_000, 1_000_000, tool_fees=(10**10, 0, 0, 0))
    assert book.max_output_tokens("anthropic", "claude-sonnet-4-5") == 999
    # 0.1 as a float is not 0.1; the override must still be exactly 100_000 pico per token.
    assert book.rates("anthropic", "my-model") == Rates(100_000, 300_000, 100_000, 125_000, 200_000)
    assert book.rates("openai", "my-model") == Rates(9_000_000, 9_000_000, 9_000_000, 9_000_000, 9_000_000)


def test_override_tiers() -> None:
    book = PriceBook(
        {
            "long": {
                "input": 1,
                "output": 2,
                "tiers": [{"above": 500_000, "input": 4, "output": 8}, {"above": 100_000, "input": 2, "output": 4}],
            }
        }
    )
    rates = book.rates("anthropic", "long")
    assert rates is not None
    assert [t for t, _ in rates.tiers] == [100_000, 500_000]
    assert rates.for_input(100_000).input == 1_000_000
    assert rates.for_input(100_001).input == 2_000_000
    assert rates.for_input(600_000).output == 8_000_000
    assert book.cost_micros(rates, TokenUsage(input_tokens=600_000, output_tokens=1)) == 2_400_008


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"my-model": {"input": 1, "output": 2, "inptu": 3}},
            "prices.my-model.inptu: unknown key; accepted keys: input",
        ),
        ({"my-model": {"input": -1, "output": 2}}, "prices.my-model.input: -1 is not a price; expected a non-negative"),
        ({"my-model": {"input": "cheap", "output": 2}}, "prices.my-model.input: 'cheap' is not a price"),
        ({"my-model": {"input": True, "output": 2}}, "prices.my-model.input: True is not a price"),
        ({"my-model": {"input": float("inf"), "output": 2}}, "prices.my-model.input: inf is not a price"),
        ({"my-model": {"output": 2}}, "prices.my-model: missing 'input'; accepted form: {'model-name'"),
        ({"my-model": 3.0}, "prices.my-model: expected a table of prices, got 3.0"),
        ({"my-model": {"input": 1, "output": 2, "tiers": {"above": 1}}}, "prices.my-model.tiers: expected a list"),
        (
            {"my-model": {"input": 1, "output": 2, "tiers": [{"input": 1, "output": 2}]}},
            "prices.my-model.tiers[0]: missing 'above'",
        ),
        (
            {"my-model": {"input": 1, "output": 2, "tiers": [{"above": 5, "input": 1, "output": 2, "x": 1}]}},
            "prices.my-model.tiers[0].x: unknown key",
        ),
        (
            {"my-model": {"input": 1, "output": 2, "tiers": [{"above": 5, "input": 1, "output": -2}]}},
            "prices.my-model.tiers[0].output: -2 is not a price",
        ),
        ({"my-model": {"input": 1, "output": 2, "max_output_tokens": 0}}, "prices.my-model.max_output_tokens: 0"),
        ([1, 2], "prices: expected a table of model name -> prices"),
    ],
)
def test_override_errors_name_the_key_and_the_form(overrides: Any, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        PriceBook(overrides)
    assert message in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_from_file_toml_and_json(tmp_path: Path) -> None:
    toml = tmp_path / "prices.toml"
    toml.write_text('[prices."anthropic/house-model"]\ninput = 0.3\noutput = 1.2\n', encoding="utf-8")
    assert PriceBook.from_file(toml).rates("anthropic", "house-model") == Rates(
        300_000, 1_200_000, 300_000, 300_000, 300_000
    )
    js = tmp_path / "prices.json"
    js.write_text(json.dumps({"house-model": {"input": 0.3, "output": 1.2, "cache_read": 0.03}}), encoding="utf-8")
    assert PriceBook.from_file(js).rates("openai", "house-model") == Rates(300_000, 1_200_000, 30_000, 300_000, 300_000)
    bad = tmp_path / "bad.json"
    bad.write_text('{"m": {"input": 1, "output": 2, "cache_reed": 1}}', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad\.json: prices\.m\.cache_reed: unknown key"):
        PriceBook.from_file(bad)
    with pytest.raises(ConfigError, match="not valid"):
        broken = tmp_path / "broken.toml"
        broken.write_text("input = = 3", encoding="utf-8")
        PriceBook.from_file(broken)
    with pytest.raises(ConfigError, match="cannot be read"):
        PriceBook.from_file(tmp_path / "missing.toml")


# -- private snapshot ----------------------------------------------------------------------------


def test_swapping_the_global_snapshot_changes_nothing() -> None:
    before = PriceBook()
    expected = before.rates("anthropic", "claude-sonnet-4-5")
    absurd = data_snapshot.DataSnapshot(
        providers=[
            Provider(
                id="anthropic",
                name="Absurd",
                api_pattern="",
                models=[
                    ModelInfo(
                        id="claude-sonnet-4-5",
                        match=data_snapshot.types.ClauseContains(contains="claude"),
                        prices=ModelPrice(input_mtok=Decimal(999_999), output_mtok=Decimal(999_999)),
                    )
                ],
            )
        ],
        from_auto_update=True,
    )
    data_snapshot.set_custom_snapshot(absurd)
    try:
        assert genai_prices.calc_price(genai_prices.Usage(input_tokens=1), "claude-sonnet-4-5", provider_id="anthropic")
        after = PriceBook()
        assert after.rates("anthropic", "claude-sonnet-4-5") == expected
        assert before.rates("anthropic", "claude-haiku-4-5") == after.rates("anthropic", "claude-haiku-4-5")
        assert after.rates("anthropic", "claude-haiku-4-5") is not None
    finally:
        data_snapshot.set_custom_snapshot(None)


# -- the worst case bounds every outcome ----------------------------------------------------------

_PRICES = st.integers(min_value=0, max_value=200_000_000)


@st.composite
def rates_strategy(draw: st.DrawFn) -> Rates:
    def one() -> Rates:
        return Rates(draw(_PRICES), draw(_PRICES), draw(_PRICES), draw(_PRICES), draw(_PRICES))

    base = one()
    # Tier prices may even go down: the worst case must not assume they only rise.
    thresholds = sorted(draw(st.sets(st.integers(min_value=0, max_value=2_000_000), max_size=3)))
    tiers = tuple((t, one()) for t in thresholds)
    return Rates(
        base.input,
        base.output,
        base.cache_read,
        base.cache_write,
        base.cache_write_1h,
        tiers=tiers,
        implicit_cache_write=draw(st.booleans()),
    )


@settings(max_examples=400, deadline=None)
@given(
    rates=rates_strategy(),
    input_tokens=st.integers(min_value=0, max_value=3_000_000),
    max_output=st.integers(min_value=0, max_value=300_000),
    cache_write=st.booleans(),
    cache_write_1h=st.booleans(),
    data=st.data(),
)
def test_worst_case_bounds_any_usage_it_admits(
    rates: Rates, input_tokens: int, max_output: int, cache_write: bool, cache_write_1h: bool, data: st.DataObject
) -> None:
    book = PriceBook()
    worst = book.worst_case_micros(
        rates,
        input_tokens=input_tokens,
        max_output_tokens=max_output,
        cache_write=cache_write,
        cache_write_1h=cache_write_1h,
    )
    used_input = data.draw(st.integers(min_value=0, max_value=input_tokens))
    read = data.draw(st.integers(min_value=0, max_value=used_input))
    may_write = cache_write or cache_write_1h or rates.implicit_cache_write
    write = data.draw(st.integers(min_value=0, max_value=used_input - read)) if may_write else 0
    write_1h = data.draw(st.integers(min_value=0, max_value=write)) if cache_write_1h else 0
    usage = TokenUsage(
        input_tokens=used_input,
        output_tokens=data.draw(st.integers(min_value=0, max_value=max_output)),
        cache_read_tokens=read,
        cache_write_tokens=write,
        cache_write_1h_tokens=write_1h,
    )
    assert book.cost_micros(rates, usage) <= worst


@settings(max_examples=200, deadline=None)
@given(
    model=st.sampled_from(VERIFIED),
    input_tokens=st.integers(min_value=0, max_value=1_100_000),
    max_output=st.integers(min_value=0, max_value=128_000),
    data=st.data(),
)
def test_worst_case_bounds_real_models(
    book: PriceBook, model: tuple[str, str], input_tokens: int, max_output: int, data: st.DataObject
) -> None:
    rates = book.rates(*model)
    assert rates is not None
    worst = book.worst_case_micros(rates, input_tokens=input_tokens, max_output_tokens=max_output, cache_write_1h=True)
    used = data.draw(st.integers(min_value=0, max_value=input_tokens))
    write = data.draw(st.integers(min_value=0, max_value=used))
    usage = TokenUsage(used, data.draw(st.integers(0, max_output)), 0, write, data.draw(st.integers(0, write)))
    assert book.cost_micros(rates, usage) <= worst
