"""Largest output per request by model, from ``spendfuse/budgets/data/max_output_tokens.json``.

The table is data, not code: it is read once, on first use, from the package data. Keys are names
without date suffixes; a family is only listed when its provider's page states the figure, so an
unknown model returns None and the caller falls back to a configured default instead of a guess.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

from spendfuse.budgets.pricing.names import _name_variants


@cache
def _table() -> dict[str, int]:
    text = resources.files("spendfuse.budgets").joinpath("data").joinpath("max_output_tokens.json").read_text("utf-8")
    raw = json.loads(text)["max_output_tokens"]
    return {str(name): int(tokens) for name, tokens in raw.items()}


def bundled_max_output(name: str) -> int | None:
    """The listed maximum of ``name`` (already lower-cased and without a provider prefix)."""
    table = _table()
    for candidate in _name_variants(name):
        found = table.get(candidate)
        if found is not None:
            return found
    return None
