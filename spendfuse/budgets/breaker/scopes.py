"""User scopes: the user's budget resolved to a store key and integer limits, cached per window."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from spendfuse.budgets import stores
from spendfuse.budgets.budget import Budget, window_bounds

# Keep a user window's scope a little past its end so late settlements still find it.
WINDOW_SLACK_SECONDS = 3600
MAX_CACHED_SCOPES = 1600


@dataclass(slots=True)
class UserScope:
    user_id: str
    key: str
    budget: Budget
    window_end: float | None
    limits: dict[str, int]
    expires_at: float | None = None  # when the store may forget the scope
    # The store request of a checked reservation, rebuilt only when the amounts change: agent loops
    # resend the same worst case, and a fresh request per call is most of a memory:// reserve.
    cached_request: stores.ScopeRequest | None = field(default=None, repr=False)


def new_user_scope(user_id: str, budget: Budget, now: float) -> UserScope | None:
    limits: dict[str, int] = {}
    if budget.usd_micros is not None:
        limits[stores.USD] = budget.usd_micros
    if budget.turns is not None:
        limits[stores.TURNS] = budget.turns
    if budget.tokens is not None:
        limits[stores.TOKENS] = budget.tokens
    if not limits:
        return None
    if budget.window is not None:
        start, end = window_bounds(budget.window, now)
        return UserScope(
            user_id, f"user/{budget.window}/{start}/{user_id}", budget, float(end), limits,
            float(end) + WINDOW_SLACK_SECONDS,
        )
    return UserScope(user_id, f"user/lifetime/{user_id}", budget, None, limits)


class UserScopes:
    """``user_id -> UserScope`` through the configured resolver, reused until the window ends."""

    def __init__(self, resolver: Callable[[str], Budget | None] | None) -> None:
        self.resolver = resolver
        self._scopes: dict[str, UserScope] = {}

    def get(self, user_id: str | None, now: float) -> UserScope | None:
        """The scope of ``user_id``; raises what the resolver raises (the caller decides)."""
        resolver = self.resolver
        if resolver is None or user_id is None:
            return None
        budget = resolver(user_id)
        if budget is None:
            return None
        scopes = self._scopes
        cached = scopes.get(user_id)
        if (
            cached is not None
            and (cached.budget is budget or cached.budget == budget)
            and (cached.window_end is None or now < cached.window_end)
        ):
            return cached
        scope = new_user_scope(user_id, budget, now)
        if scope is not None:
            if len(scopes) >= MAX_CACHED_SCOPES:
                scopes.clear()  # many users: a bound on memory, not an LRU
            scopes[user_id] = scope
        return scope
