"""Model prices as exact integers, from a private copy of genai-prices' bundled data.

Units. A rate is integer pico-dollars (1e-12 USD) per token: $3 per million tokens is
3_000_000 pico/token. Costs come out in micro-dollars, rounded up once at the end
(``ceil(total_pico / 1_000_000)``), so repeated settling never drifts and never undercharges.
Decimal is used only when a price enters the book (bundled data or an override); the hot path is
integer multiply-adds.

Why a private copy. genai-prices keeps one process-global snapshot that other libraries in the same
process (pydantic-ai, logfire, its own background updater) may replace at any time. A budget must
not change its prices under a running agent, so the book reads the data module that ships inside
the installed wheel (``genai_prices.data.providers``) and uses only genai-prices' pure lookup
helpers on it. The global snapshot is never read, the updater is never started, the network is
never touched. Time-conditional prices are resolved once, for "now" at construction; build a new
book to pick up a price change that starts later.

How the data maps to :class:`Rates`.
* ``input_mtok`` / ``output_mtok`` are the uncached input and the output rates. A model without an
  input price is unpriced; one without an output price (embeddings) has a zero output rate, as in
  genai-prices.
* A missing ``cache_read_mtok`` or ``cache_write_mtok`` means the provider bills those tokens as
  plain input, so both fall back to the input rate. A missing ``cache_write_1h_mtok`` falls back to
  the (5 minute) cache-write rate. This is exactly how genai-prices decomposes usage, and is what
  makes our results equal to its ``calc_price``.
* Long-context tiers (``TieredPrices``) switch *every* rate once the total input tokens (cache
  included) exceed the tier start; the thresholds of all rates are merged into ``Rates.tiers``.
* Modality-specific prices (audio/image tokens), per-request and per-search fees are not modelled:
  the usage record carries text tokens only.
* Request variants (OpenAI ``service_tier`` priority/flex, Anthropic ``speed="fast"``) are applied
  when passed to :meth:`PriceBook.rates`; ``"auto"``/``"default"`` price at the standard rate.
* From gpt-5.6 OpenAI writes prompts to cache implicitly and bills the writes at 1.25x input, so
  OpenAI rates carry ``implicit_cache_write`` and their worst case always assumes a write.

Overrides (``PriceBook(overrides)`` / ``PriceBook.from_file``) are USD per million tokens, parsed
exactly (``Decimal(str(x))``). An entry with prices replaces the bundled entry of that model
whole, tiers included; missing cache prices default like the bundled data does (reads and writes
at the input price, 1h writes at the write price), so give ``cache_write`` explicitly for a
provider that charges a write premium. An entry with only ``max_output_tokens`` keeps the bundled
prices. Keys match the model name case-insensitively, also without a date suffix or cloud
decorations; ``"anthropic/name"`` wins over ``"name"`` for that provider.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from decimal import ROUND_CEILING, Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from spendfuse.budgets.usage import TokenUsage
from spendfuse.errors import ConfigError

__all__ = ["OVERRIDE_FORM", "PriceBook", "Rates"]

PICO_PER_MICRO = 1_000_000
# USD per million tokens -> pico-dollars per token: x * 1e12 / 1e6.
_PICO_PER_TOKEN_PER_USD_MTOK = Decimal(1_000_000)

_RATE_KEYS = ("input", "output", "cache_read", "cache_write", "cache_write_1h")
_ENTRY_KEYS = (*_RATE_KEYS, "tiers", "max_output_tokens")
OVERRIDE_FORM = (
    "{'model-name': {'input': 3.0, 'output': 15.0, 'cache_read': 0.3, 'cache_write': 3.75, "
    "'cache_write_1h': 6.0, 'tiers': [{'above': 200000, 'input': 6.0, 'output': 22.5}], "
    "'max_output_tokens': 64000}} in USD per million tokens; a key may be provider-qualified "
    "('anthropic/model-name')"
)

# Providers whose cache writes happen without being asked for (see module docstring).
_IMPLICIT_CACHE_PROVIDERS = frozenset({"openai", "azure"})
_STANDARD_TIERS = frozenset({"auto", "default", "standard", "standard_only"})
_CACHE_LIMIT = 4096
_MISS = object()


@dataclass(frozen=True, slots=True)
class Rates:
    """Integer pico-dollars per token for one model (and request variant)."""

    input: int
    output: int
    cache_read: int
    cache_write: int
    cache_write_1h: int
    tiers: tuple[tuple[int, Rates], ...] = ()
    """(input-token threshold, rates used when the total input tokens exceed it), ascending."""
    implicit_cache_write: bool = False
    """Any request may write its prompt to cache, asked for or not (OpenAI)."""

    def for_input(self, input_tokens: int) -> Rates:
        chosen = self
        for threshold, rates in self.tiers:
            if input_tokens > threshold:
                chosen = rates
            else:
                break
        return chosen


@dataclass(frozen=True, slots=True)
class _Override:
    rates: Rates | None
    max_output_tokens: int | None = None


def _pico(usd_per_mtok: Decimal) -> int:
    # Finer than a pico-dollar (some bundled prices carry float artifacts) rounds up: a budget may
    # overcount by under a pico per token, never undercount.
    return int((usd_per_mtok * _PICO_PER_TOKEN_PER_USD_MTOK).to_integral_value(rounding=ROUND_CEILING))


def _ceil_micros(pico: int) -> int:
    return -(-pico // PICO_PER_MICRO)


class PriceBook:
    """Per-model :class:`Rates`, bundled prices overlaid with user overrides.

    ``rates()`` caches its answer per (provider, model[, variant]), so after the first call for a
    model the hot path is one dict lookup.
    """

    def __init__(self, overrides: Mapping[str, Any] | None = None) -> None:
        self._now = datetime.now(timezone.utc)
        self._overrides = _parse_overrides(overrides if overrides is not None else {}, "prices", "")
        self._bundled: list[Any] | None = None
        self._cache: dict[tuple[str | None, ...], Rates | None] = {}
        self._max_output: dict[tuple[str, str], int | None] = {}

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> PriceBook:
        """Load overrides from a TOML or JSON file shaped like the ``overrides`` mapping.

        A file whose only top-level key is ``prices`` (a spendfuse config file) is unwrapped.
        """
        data = _load_price_file(Path(path))
        book = cls()
        book._overrides = _parse_overrides(data, "prices", f"{os.fspath(path)}: ")
        return book

    # -- lookups -------------------------------------------------------------------------------

    def rates(
        self, provider: str, model: str, *, service_tier: str | None = None, speed: str | None = None
    ) -> Rates | None:
        """The rates of ``model`` at ``provider`` ("anthropic" | "openai"); None when unpriced.

        ``service_tier`` (OpenAI "priority"/"flex") and ``speed`` (Anthropic "fast") select the
        price variant the request asked for.
        """
        key = (provider, model) if service_tier is None and speed is None else (provider, model, service_tier, speed)
        rates = self._cache.get(key, _MISS)
        if rates is _MISS:
            rates = self._resolve(provider, model, service_tier, speed)
            if len(self._cache) >= _CACHE_LIMIT:
                # Model names come from callers; never let arbitrary ones grow without bound.
                self._cache.clear()
            self._cache[key] = rates
        return rates  # type: ignore[return-value]

    def max_output_tokens(self, provider: str, model: str) -> int | None:
        """The model's largest possible output, for OpenAI requests that set no max_tokens.

        From an override's ``max_output_tokens`` or the built-in table (see ``_MAX_OUTPUT``);
        None when unknown.
        """
        key = (provider, model)
        found = self._max_output.get(key, _MISS)
        if found is _MISS:
            found = self._resolve_max_output(provider, model)
            if len(self._max_output) >= _CACHE_LIMIT:
                self._max_output.clear()
            self._max_output[key] = found
        return found  # type: ignore[return-value]

    def _resolve_max_output(self, provider: str, model: str) -> int | None:
        prov = provider.strip().lower()
        name = _strip_prefix(model, prov)
        override = self._find_override(prov, name)
        if override is not None and override.max_output_tokens is not None:
            return override.max_output_tokens
        for candidate in _name_variants(name):
            found = _MAX_OUTPUT.get(candidate)
            if found is not None:
                return found
        return None

    def context_window(self, provider: str, model: str) -> int | None:
        """The model's context window from the bundled data, None when unknown.

        Beware: Anthropic serves some 200k models with a 1M window behind a beta header.
        """
        info = self._bundled_model(provider.strip().lower(), _strip_prefix(model, provider.strip().lower()))
        if info is None:
            return None
        window = getattr(info[1], "context_window", None)
        return window if isinstance(window, int) and window > 0 else None

    # -- money ---------------------------------------------------------------------------------

    def cost_micros(self, rates: Rates, usage: TokenUsage) -> int:
        """The cost of reported usage in micro-dollars, rounded up."""
        r = rates.for_input(usage.input_tokens) if rates.tiers else rates
        read = usage.cache_read_tokens
        write = usage.cache_write_tokens
        write_1h = usage.cache_write_1h_tokens
        # Inconsistent reports (parts larger than the whole) are clamped, never raised on: the
        # call already happened and must be charged.
        write_5m = write - write_1h if write > write_1h else 0
        uncached = usage.input_tokens - read - max(write, write_1h)
        if uncached < 0:
            uncached = 0
        pico = (
            uncached * r.input
            + read * r.cache_read
            + write_5m * r.cache_write
            + write_1h * r.cache_write_1h
            + usage.output_tokens * r.output
        )
        return _ceil_micros(pico)

    def worst_case_micros(
        self,
        rates: Rates,
        *,
        input_tokens: int,
        max_output_tokens: int,
        cache_write: bool = False,
        cache_write_1h: bool = False,
    ) -> int:
        """The most a request with at most these token counts can cost, in micro-dollars.

        Every input token is priced at the dearest rate it could be billed at: uncached input,
        or a cache write when the request may write the cache (``cache_write`` /
        ``cache_write_1h``, or a provider that caches implicitly). Every tier a smaller prompt
        could land in is considered, so the result bounds any usage with
        ``input <= input_tokens`` and ``output <= max_output_tokens``.
        """
        input_tokens = max(input_tokens, 0)
        max_output_tokens = max(max_output_tokens, 0)
        writes = cache_write or cache_write_1h or rates.implicit_cache_write
        best = 0
        for r in _reachable(rates, input_tokens):
            per_input = max(r.input, r.cache_read)
            if writes:
                per_input = max(per_input, r.cache_write)
            if cache_write_1h:
                per_input = max(per_input, r.cache_write_1h)
            pico = input_tokens * per_input + max_output_tokens * r.output
            if pico > best:
                best = pico
        return _ceil_micros(best)

    # -- resolution ----------------------------------------------------------------------------

    def _resolve(self, provider: str, model: str, service_tier: str | None, speed: str | None) -> Rates | None:
        prov = provider.strip().lower()
        name = _strip_prefix(model, prov)
        override = self._find_override(prov, name)
        if override is not None and override.rates is not None:
            rates: Rates | None = override.rates
        else:
            rates = self._bundled_rates(prov, name, service_tier, speed)
        if (
            rates is not None
            and prov in _IMPLICIT_CACHE_PROVIDERS
            and any(r.cache_write > r.input for r in (rates, *(tier for _, tier in rates.tiers)))
        ):
            rates = _with_implicit_writes(rates)
        return rates

    def _find_override(self, provider: str, name: str) -> _Override | None:
        if not self._overrides:
            return None
        for candidate in _name_variants(name):
            found = self._overrides.get(f"{provider}/{candidate}") or self._overrides.get(candidate)
            if found is not None:
                return found
        return None

    def _providers(self) -> list[Any]:
        if self._bundled is None:
            # The module that ships in the wheel, not data_snapshot.get_snapshot(): see the
            # module docstring. Imported on first use because it is a 1.6 MB module (~0.3 s).
            from genai_prices.data import providers

            self._bundled = providers
        return self._bundled

    def _bundled_model(self, provider: str, name: str) -> tuple[Any, Any] | None:
        from genai_prices.data_snapshot import find_provider_by_id

        providers = self._providers()
        provider_info = find_provider_by_id(providers, provider)
        if provider_info is None:
            return None
        for candidate in _name_variants(name):
            model = provider_info.find_model(candidate, all_providers=providers)
            if model is not None:
                return provider_info, model
        return None

    def _bundled_rates(self, provider: str, name: str, service_tier: str | None, speed: str | None) -> Rates | None:
        found = self._bundled_model(provider, name)
        if found is None:
            return None
        provider_info, model = found
        context: dict[str, str] = {}
        if service_tier is not None and service_tier.lower() not in _STANDARD_TIERS:
            context["service_tier"] = service_tier.lower()
        if speed is not None and speed.lower() != "standard":
            context["speed"] = speed.lower()
        # genai-prices applies variants only to a provider's own models, not to fallbacks.
        if context and not any(model is own for own in provider_info.models):
            context = {}
        model_price = model.get_prices(self._now, context or None)
        return _rates_from_model_price(model_price)


def _rates_of(pico: Mapping[str, int]) -> Rates:
    return Rates(
        input=pico["input"],
        output=pico["output"],
        cache_read=pico["cache_read"],
        cache_write=pico["cache_write"],
        cache_write_1h=pico["cache_write_1h"],
    )


def _reachable(rates: Rates, input_tokens: int) -> tuple[Rates, ...]:
    if not rates.tiers:
        return (rates,)
    return (rates, *(r for threshold, r in rates.tiers if input_tokens > threshold))


def _with_implicit_writes(rates: Rates) -> Rates:
    tiers = tuple((t, replace(r, implicit_cache_write=True)) for t, r in rates.tiers)
    return replace(rates, tiers=tiers, implicit_cache_write=True)


# -- bundled data --------------------------------------------------------------------------------


def _price_at(value: Any, threshold: int | None) -> Decimal:
    """The Decimal USD/MTok of a plain or tiered genai-prices value above ``threshold`` tokens."""
    from genai_prices.types import TieredPrices

    if isinstance(value, TieredPrices):
        price: Decimal = value.base
        if threshold is not None:
            for tier in sorted(value.tiers, key=lambda t: t.start):
                if tier.start <= threshold:
                    price = tier.price
        return price
    return Decimal(value)


def _rates_from_model_price(model_price: Any) -> Rates | None:
    from genai_prices.types import TieredPrices

    input_price = getattr(model_price, "input_mtok", None)
    if input_price is None:
        return None
    output_price = getattr(model_price, "output_mtok", None)
    read_price = getattr(model_price, "cache_read_mtok", None)
    write_price = getattr(model_price, "cache_write_mtok", None)
    write_1h_price = getattr(model_price, "cache_write_1h_mtok", None)
    values: dict[str, Any] = {
        "input": input_price,
        "output": output_price if output_price is not None else Decimal(0),
        "cache_read": read_price if read_price is not None else input_price,
        "cache_write": write_price if write_price is not None else input_price,
    }
    values["cache_write_1h"] = write_1h_price if write_1h_price is not None else values["cache_write"]
    thresholds = sorted(
        {tier.start for value in values.values() if isinstance(value, TieredPrices) for tier in value.tiers}
    )

    def at(threshold: int | None) -> Rates:
        return _rates_of({key: _pico(_price_at(value, threshold)) for key, value in values.items()})

    base = at(None)
    if not thresholds:
        return base
    return replace(base, tiers=tuple((t, at(t)) for t in thresholds))


# -- model names ---------------------------------------------------------------------------------

_DATE_SUFFIX = re.compile(r"-(?:\d{8}|\d{4}-\d{2}-\d{2})$")
# Bedrock ("us.anthropic.claude-...-v2:0") and Vertex ("claude-...@20241022") spellings.
_CLOUD_PREFIX = re.compile(r"^(?:[a-z]{2,4}\.)?anthropic\.")
_CLOUD_SUFFIX = re.compile(r"(?:@\d{8}|-v\d+(?::\d+)?)$")


def _strip_prefix(model: str, provider: str) -> str:
    name = model.strip().lower()
    for prefix in ("anthropic/", "openai/", f"{provider}/"):
        if name.startswith(prefix):
            name = name[len(prefix) :]
    return name


def _name_variants(name: str) -> tuple[str, ...]:
    """``name`` first, then without cloud decorations and without a date suffix / ``-latest``."""
    variants = [name]
    bare = _CLOUD_PREFIX.sub("", name)
    while True:
        stripped = _CLOUD_SUFFIX.sub("", bare)
        if stripped == bare:
            break
        bare = stripped
    for candidate in (bare, _DATE_SUFFIX.sub("", bare), bare.removesuffix("-latest")):
        if candidate and candidate not in variants:
            variants.append(candidate)
    return tuple(variants)


# Largest output per request, by model family, from the providers' model pages (Anthropic "Models
# overview", OpenAI model reference pages) as of late 2025. Keys are names without date suffixes;
# dated snapshots that differ from their family are listed on their own. A family is only listed
# when its page states the figure; anything else returns None so the caller falls back to a
# configured default instead of a guess.
_MAX_OUTPUT: dict[str, int] = {
    # Anthropic (max_tokens is mandatory there; kept for clamping and completeness).
    "claude-opus-4-7": 128_000,
    "claude-opus-4-6": 128_000,
    "claude-sonnet-4-6": 64_000,
    "claude-opus-4-5": 64_000,
    "claude-sonnet-4-5": 64_000,
    "claude-haiku-4-5": 64_000,
    "claude-opus-4-1": 32_000,
    "claude-opus-4": 32_000,
    "claude-opus-4-0": 32_000,
    "claude-sonnet-4": 64_000,
    "claude-sonnet-4-0": 64_000,
    # 64k by default, 128k with the output-128k beta header: take the larger.
    "claude-3-7-sonnet": 128_000,
    "claude-3-5-sonnet": 8_192,
    "claude-3-5-haiku": 8_192,
    "claude-3-opus": 4_096,
    "claude-3-sonnet": 4_096,
    "claude-3-haiku": 4_096,
    # OpenAI.
    "gpt-3.5-turbo": 4_096,
    "gpt-4": 8_192,
    "gpt-4-turbo": 4_096,
    "gpt-4o": 16_384,
    "gpt-4o-2024-05-13": 4_096,
    "chatgpt-4o": 16_384,
    "gpt-4o-mini": 16_384,
    "gpt-4o-audio-preview": 16_384,
    "gpt-4o-search-preview": 16_384,
    "gpt-4o-mini-search-preview": 16_384,
    "gpt-4.5-preview": 16_384,
    "gpt-4.1": 32_768,
    "gpt-4.1-mini": 32_768,
    "gpt-4.1-nano": 32_768,
    "o1": 100_000,
    "o1-pro": 100_000,
    "o1-mini": 65_536,
    "o1-preview": 32_768,
    "o3": 100_000,
    "o3-pro": 100_000,
    "o3-mini": 100_000,
    "o3-deep-research": 100_000,
    "o4-mini": 100_000,
    "o4-mini-deep-research": 100_000,
    "codex-mini": 100_000,
    "gpt-5": 128_000,
    "gpt-5-mini": 128_000,
    "gpt-5-nano": 128_000,
    "gpt-5-codex": 128_000,
    "gpt-5-chat": 16_384,
    "gpt-5-pro": 272_000,
    "gpt-5.1": 128_000,
    "gpt-5.1-codex": 128_000,
    "gpt-5.1-codex-mini": 128_000,
    "gpt-5.2": 128_000,
}


# -- overrides -----------------------------------------------------------------------------------


def _load_price_file(path: Path) -> Any:
    form = f"a TOML or JSON table shaped like {OVERRIDE_FORM}"
    try:
        text = path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"prices file {os.fspath(path)!r} cannot be read ({exc}); expected {form}") from exc
    suffix = path.suffix.lower()
    kinds = ("toml",) if suffix == ".toml" else ("json",) if suffix == ".json" else ("json", "toml")
    errors: list[str] = []
    for kind in kinds:
        try:
            # Decimal floats: a price must reach the book exactly as written.
            if kind == "json":
                return json.loads(text, parse_float=Decimal)
            return _toml_loads(text)
        except ValueError as exc:  # JSONDecodeError and TOMLDecodeError are both ValueErrors
            errors.append(f"{kind}: {exc}")
    raise ConfigError(f"prices file {os.fspath(path)!r} is not valid ({'; '.join(errors)}); expected {form}")


def _toml_loads(text: str) -> Any:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10 only
        import tomli as tomllib
    return tomllib.loads(text, parse_float=Decimal)


def _parse_overrides(mapping: Any, root: str, source: str) -> dict[str, _Override]:
    if not isinstance(mapping, Mapping):
        raise ConfigError(
            f"{source}{root}: expected a table of model name -> prices, got {mapping!r}; accepted form: {OVERRIDE_FORM}"
        )
    if len(mapping) == 1 and isinstance(mapping.get("prices"), Mapping):
        mapping = mapping["prices"]
    parsed: dict[str, _Override] = {}
    for key, entry in mapping.items():
        if not isinstance(key, str) or not key.strip():
            raise ConfigError(f"{source}{root}: {key!r} is not a model name; accepted form: {OVERRIDE_FORM}")
        path = f"{root}.{key}"
        if not isinstance(entry, Mapping):
            raise ConfigError(
                f"{source}{path}: expected a table of prices, got {entry!r}; accepted form: {OVERRIDE_FORM}"
            )
        for name in entry:
            if name not in _ENTRY_KEYS:
                raise ConfigError(
                    f"{source}{path}.{name}: unknown key; accepted keys: {', '.join(_ENTRY_KEYS)} "
                    f"(form: {OVERRIDE_FORM})"
                )
        max_output = None
        if "max_output_tokens" in entry:
            max_output = _positive_int(entry["max_output_tokens"], f"{source}{path}.max_output_tokens")
        rates = None
        if any(name in entry for name in (*_RATE_KEYS, "tiers")):
            rates = _parse_rates(entry, path, source)
            tiers = _parse_tiers(entry.get("tiers"), f"{path}.tiers", source)
            if tiers:
                rates = replace(rates, tiers=tiers)
        parsed[key.strip().lower()] = _Override(rates=rates, max_output_tokens=max_output)
    return parsed


def _parse_rates(entry: Mapping[str, Any], path: str, source: str) -> Rates:
    for required in ("input", "output"):
        if required not in entry:
            raise ConfigError(f"{source}{path}: missing {required!r}; accepted form: {OVERRIDE_FORM}")
    prices = {name: _price(entry[name], f"{source}{path}.{name}") for name in _RATE_KEYS if name in entry}
    prices.setdefault("cache_read", prices["input"])
    prices.setdefault("cache_write", prices["input"])
    prices.setdefault("cache_write_1h", prices["cache_write"])
    return _rates_of({name: _pico(value) for name, value in prices.items()})


def _parse_tiers(raw: Any, path: str, source: str) -> tuple[tuple[int, Rates], ...]:
    if raw is None:
        return ()
    form = "a list of tables like [{'above': 200000, 'input': 6.0, 'output': 22.5}]"
    if not isinstance(raw, (list, tuple)):
        raise ConfigError(f"{source}{path}: expected {form}, got {raw!r}")
    tiers: dict[int, Rates] = {}
    for index, tier in enumerate(raw):
        tier_path = f"{path}[{index}]"
        if not isinstance(tier, Mapping):
            raise ConfigError(f"{source}{tier_path}: expected {form}, got {tier!r}")
        for name in tier:
            if name != "above" and name not in _RATE_KEYS:
                raise ConfigError(
                    f"{source}{tier_path}.{name}: unknown key; accepted keys: above, {', '.join(_RATE_KEYS)}"
                )
        if "above" not in tier:
            raise ConfigError(f"{source}{tier_path}: missing 'above' (input tokens); expected {form}")
        above = tier["above"]
        if type(above) is not int or above < 0:
            raise ConfigError(
                f"{source}{tier_path}.above: {above!r} is not a token count; expected a non-negative integer"
            )
        if above in tiers:
            raise ConfigError(f"{source}{tier_path}.above: {above} appears twice; tier thresholds must differ")
        tiers[above] = _parse_rates(tier, tier_path, source)
    return tuple(sorted(tiers.items()))


def _price(value: Any, path: str) -> Decimal:
    problem = (
        f"{path}: {value!r} is not a price; expected a non-negative number of USD per million tokens, "
        'e.g. 3.0 or "3.00"'
    )
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        raise ConfigError(problem)
    try:
        # str() first: Decimal(0.1) would carry the float's binary error into the rate.
        price = Decimal(value.strip()) if isinstance(value, str) else Decimal(str(value))
    except (InvalidOperation, ValueError) as exc:
        raise ConfigError(problem) from exc
    if not price.is_finite() or price < 0:
        raise ConfigError(problem)
    return price


def _positive_int(value: Any, path: str) -> int:
    if type(value) is not int or value <= 0:
        raise ConfigError(f"{path}: {value!r} is not a token count; expected a positive integer, e.g. 64000")
    return value
