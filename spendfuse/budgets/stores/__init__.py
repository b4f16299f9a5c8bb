"""Budget stores, picked by URL: ``memory://``, ``sqlite:///path``, ``redis://`` / ``rediss://``."""

from __future__ import annotations

from spendfuse.budgets.stores._common import redacted_url
from spendfuse.budgets.stores.base import (
    METRICS,
    TOKENS,
    TURNS,
    USD,
    BudgetStore,
    Denial,
    ScopeRequest,
    ScopeUsage,
    StoreUnavailableError,
)
from spendfuse.budgets.stores.memory import MemoryStore
from spendfuse.errors import ConfigError

STORE_URL_FORM = "memory://, sqlite:///path/to/file.db, redis://[user:pass@]host:port/db or rediss://..."


def open_store(url: str, *, timeout: float = 0.25) -> BudgetStore:
    """Open the store a URL names; a malformed URL is a ConfigError naming the accepted forms."""
    if not isinstance(url, str) or "://" not in url:
        raise ConfigError(f"store: {url!r} is not a store URL; accepted: {STORE_URL_FORM}")
    scheme = url.split("://", 1)[0].lower()
    if scheme == "memory":
        return MemoryStore(url)
    if scheme == "sqlite":
        from spendfuse.budgets.stores.sqlite import SQLiteStore

        return SQLiteStore(url, timeout=timeout)
    if scheme in ("redis", "rediss", "redis+sentinel"):
        from spendfuse.budgets.stores.redis import RedisStore

        return RedisStore(url, timeout=timeout)
    raise ConfigError(f"store: unknown scheme {scheme!r} in {redacted_url(url)!r}; accepted: {STORE_URL_FORM}")


__all__ = [
    "METRICS",
    "STORE_URL_FORM",
    "TOKENS",
    "TURNS",
    "USD",
    "BudgetStore",
    "Denial",
    "MemoryStore",
    "ScopeRequest",
    "ScopeUsage",
    "StoreUnavailableError",
    "open_store",
    "redacted_url",
]
