"""Argument checks shared by every store, so all backends refuse the same bad input."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from spendfuse.budgets.stores.base import ScopeRequest


def nonzero_amounts(mapping: Mapping[str, int]) -> dict[str, int]:
    """Integer amounts without the zeros; negative amounts are a caller bug, not a refund."""
    out: dict[str, int] = {}
    for metric, amount in mapping.items():
        value = int(amount)
        if value != amount:
            raise ValueError(f"amount for {metric!r} must be an integer, got {amount!r}")
        if value < 0:
            raise ValueError(f"amount for {metric!r} must be >= 0, got {amount!r}")
        if value:
            out[metric] = value
    return out


def check_distinct(scopes: Sequence[ScopeRequest]) -> None:
    if len({request.key for request in scopes}) != len(scopes):
        raise ValueError("a reservation names the same scope twice")
