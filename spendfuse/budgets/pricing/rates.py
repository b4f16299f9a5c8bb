"""Rates: integer pico-dollars per token, and the arithmetic on them (see ``spendfuse.budgets.pricing``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from decimal import ROUND_CEILING, Decimal

PICO_PER_MICRO = 1_000_000
# USD per million tokens -> pico-dollars per token: x * 1e12 / 1e6.
_PICO_PER_TOKEN_PER_USD_MTOK = Decimal(1_000_000)

_RATE_KEYS = ("input", "output", "cache_read", "cache_write", "cache_write_1h")


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
    tool_fees: tuple[int, int, int, int] = (0, 0, 0, 0)
    """Pico-dollars per use of each server-side tool, in ``usage.SERVER_TOOLS`` order; kept on the
    base rates only (a long-context tier does not change a per-use fee)."""

    def for_input(self, input_tokens: int) -> Rates:
        chosen = self
        for threshold, rates in self.tiers:
            if input_tokens > threshold:
                chosen = rates
            else:
                break
        return chosen


def _pico(usd_per_mtok: Decimal) -> int:
    # Finer than a pico-dollar (some bundled prices carry float artifacts) rounds up: a budget may
    # overcount by under a pico per token, never undercount.
    return int((usd_per_mtok * _PICO_PER_TOKEN_PER_USD_MTOK).to_integral_value(rounding=ROUND_CEILING))


# USD per thousand uses -> pico-dollars per use: x * 1e12 / 1e3.
_PICO_PER_USE_PER_USD_K = Decimal(1_000_000_000)


def _pico_per_use(usd_per_k: Decimal) -> int:
    return int((usd_per_k * _PICO_PER_USE_PER_USD_K).to_integral_value(rounding=ROUND_CEILING))


def _ceil_micros(pico: int) -> int:
    return -(-pico // PICO_PER_MICRO)


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
