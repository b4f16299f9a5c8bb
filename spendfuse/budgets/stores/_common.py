"""Argument checks shared by every store, so all backends refuse the same bad input."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from urllib.parse import urlsplit, urlunsplit

from spendfuse.budgets.stores.base import ScopeRequest

# user:password@ right after the scheme, for URLs urlsplit refuses (a bad port, a stray bracket).
_USERINFO_PASSWORD = re.compile(r"(://[^/@:]*):[^/]*@")


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


def redacted_url(url: str) -> str:
    """``url`` with the password of its user-info replaced by ``***``: safe for messages and logs."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        host = parts.netloc.rsplit("@", 1)[1]
        user = parts.username or ""
        return urlunsplit((parts.scheme, f"{user}:***@{host}", parts.path, parts.query, parts.fragment))
    except ValueError:
        return _USERINFO_PASSWORD.sub(r"\1:***@", url)
