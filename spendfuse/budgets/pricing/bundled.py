"""genai-prices' bundled data as :class:`Rates` (see ``spendfuse.budgets.pricing`` for why a private copy)."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any

from spendfuse.budgets.pricing.rates import Rates, _pico, _pico_per_use, _rates_of

# genai-prices' per-use prices (USD per thousand) for the server tools, in SERVER_TOOLS order:
# web search, web fetch (no fee of its own), file search ("storage searches"), code execution.
_TOOL_FEE_KEYS = ("web_searches_kcount", None, "storage_searches_kcount", None)


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
    fees = tuple(_fee(model_price, key) for key in _TOOL_FEE_KEYS)
    if any(fees):
        base = replace(base, tool_fees=fees)  # type: ignore[arg-type]
    if not thresholds:
        return base
    return replace(base, tiers=tuple((t, at(t)) for t in thresholds))


def _fee(model_price: Any, key: str | None) -> int:
    if key is None:
        return 0
    value = getattr(model_price, key, None)
    return _pico_per_use(Decimal(value)) if isinstance(value, (Decimal, int)) else 0
