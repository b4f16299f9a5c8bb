"""The price book: per-model rates, bundled prices overlaid with overrides, and money arithmetic."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from spendfuse.budgets.pricing.bundled import _rates_from_model_price
from spendfuse.budgets.pricing.max_output import bundled_max_output
from spendfuse.budgets.pricing.names import _name_variants, _strip_prefix
from spendfuse.budgets.pricing.overrides import _load_price_file, _Override, _parse_overrides
from spendfuse.budgets.pricing.rates import Rates, _ceil_micros, _reachable, _with_implicit_writes
from spendfuse.budgets.usage import TokenUsage

# Providers whose cache writes happen without being asked for (see the docstring of spendfuse.budgets.pricing).
_IMPLICIT_CACHE_PROVIDERS = frozenset({"openai", "azure"})
_STANDARD_TIERS = frozenset({"auto", "default", "standard", "standard_only"})
_CACHE_LIMIT = 4096
_MISS = object()


class PriceBook:
    """Per-model :class:`Rates`, bundled prices overlaid with user overrides.

    ``rates()`` caches its answer per (provider, model[, variant]), so after the first call for a
    model the hot path is one dict lookup.
    """

    def __init__(
        self, overrides: Mapping[str, Any] | None = None, deployments: Mapping[str, str] | None = None
    ) -> None:
        self._now = datetime.now(timezone.utc)
        self._overrides = _parse_overrides(overrides if overrides is not None else {}, "prices", "")
        # Deployment or alias name -> the model it serves (Azure deployments), lower-case: a request
        # naming one is priced as that model, at admission and at settlement alike.
        self._deployments = {k.strip().lower(): v.strip().lower() for k, v in (deployments or {}).items()}
        self._bundled: list[Any] | None = None
        self._cache: dict[tuple[str | None, ...], Rates | None] = {}
        self._max_output: dict[tuple[str, str], int | None] = {}

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], deployments: Mapping[str, str] | None = None) -> PriceBook:
        """Load overrides from a TOML or JSON file shaped like the ``overrides`` mapping.

        A file whose only top-level key is ``prices`` (a spendfuse config file) is unwrapped.
        """
        data = _load_price_file(Path(path))
        book = cls(deployments=deployments)
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

        From an override's ``max_output_tokens`` or the built-in table (see ``max_output``);
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

    def _name(self, prov: str, model: str) -> str:
        """The model name to price: a configured deployment's model, else the name as spelled."""
        name = _strip_prefix(model, prov)
        if self._deployments:
            target = self._deployments.get(name) or self._deployments.get(model.strip().lower())
            if target is not None:
                return _strip_prefix(target, prov)
        return name

    def _resolve_max_output(self, provider: str, model: str) -> int | None:
        prov = provider.strip().lower()
        name = self._name(prov, model)
        override = self._find_override(prov, name)
        if override is not None and override.max_output_tokens is not None:
            return override.max_output_tokens
        return bundled_max_output(name)

    def context_window(self, provider: str, model: str) -> int | None:
        """The model's context window from the bundled data, None when unknown.

        Beware: Anthropic serves some 200k models with a 1M window behind a beta header.
        """
        info = self._bundled_model(provider.strip().lower(), self._name(provider.strip().lower(), model))
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
        fees = rates.tool_fees
        if fees[0] or fees[1] or fees[2] or fees[3]:
            pico += sum(uses * fee for uses, fee in zip(usage.tool_uses, fees, strict=True))
        return _ceil_micros(pico)

    def worst_case_micros(
        self,
        rates: Rates,
        *,
        input_tokens: int,
        max_output_tokens: int,
        cache_write: bool = False,
        cache_write_1h: bool = False,
        tool_uses: tuple[int, int, int, int] | None = None,
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
        # Server-side tool fees: ``tool_uses`` bounds each tool's uses (its max_uses, or the
        # configured default count), priced at the model's per-use fee.
        fees = 0
        if tool_uses is not None:
            fees = sum(max(uses, 0) * fee for uses, fee in zip(tool_uses, rates.tool_fees, strict=True))
        if not rates.tiers:  # the common case, on every admission: no tuple of candidates
            return _ceil_micros(
                input_tokens * _dearest_input(rates, writes, cache_write_1h) + max_output_tokens * rates.output + fees
            )
        best = 0
        for r in _reachable(rates, input_tokens):
            pico = input_tokens * _dearest_input(r, writes, cache_write_1h) + max_output_tokens * r.output
            if pico > best:
                best = pico
        return _ceil_micros(best + fees)

    # -- resolution ----------------------------------------------------------------------------

    def _resolve(self, provider: str, model: str, service_tier: str | None, speed: str | None) -> Rates | None:
        prov = provider.strip().lower()
        name = self._name(prov, model)
        override = self._find_override(prov, name)
        if override is not None and override.rates is not None:
            rates: Rates | None = override.rates
            if any(fee is None for fee in override.tool_fees):  # fees not given keep the bundled ones
                bundled = self._bundled_rates(prov, name, service_tier, speed)
                if bundled is not None and rates is not None:
                    rates = replace(rates, tool_fees=bundled.tool_fees)
        else:
            rates = self._bundled_rates(prov, name, service_tier, speed)
        if rates is not None and override is not None and any(fee is not None for fee in override.tool_fees):
            fees = tuple(
                mine if mine is not None else theirs
                for mine, theirs in zip(override.tool_fees, rates.tool_fees, strict=True)
            )
            rates = replace(rates, tool_fees=fees)  # type: ignore[arg-type]
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
            # docstring of spendfuse.budgets.pricing. Imported on first use because it is a 1.6 MB module (~0.3 s).
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


def _dearest_input(r: Rates, writes: bool, write_1h: bool) -> int:
    """The dearest rate one input token can be billed at: uncached, a cache read, or a write."""
    per_input = r.input if r.input > r.cache_read else r.cache_read
    if writes and r.cache_write > per_input:
        per_input = r.cache_write
    if write_1h and r.cache_write_1h > per_input:
        per_input = r.cache_write_1h
    return per_input
