"""Keyed scopes (user, team, org, model, ...): a scope's budget resolved to a store key and integer
limits, cached per window.

A scope is a name and a key (``team``/``search``). Its store key carries the window it counts in
(``team/1d/<window start>/search``), so a new window is a new key and nothing needs resetting.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from spendfuse.budgets import stores
from spendfuse.budgets.budget import Budget, scope_key, window_bounds
from spendfuse.config.user_budgets import ScopeBudgetResolver

# Keep a window's scope a little past its end so late settlements still find it.
WINDOW_SLACK_SECONDS = 3600
MAX_CACHED_SCOPES = 1600
# Scopes whose key is taken from each call rather than from the run.
CALL_SCOPES = ("model", "provider")


@dataclass(slots=True)
class Scope:
    name: str  # "user", "team", "model", ...
    key: str  # "alice", "search", "claude-opus-4-6"
    store_key: str  # "team/1d/<start>/search"
    budget: Budget
    window_end: float | None
    limits: dict[str, int]
    expires_at: float | None = None  # when the store may forget the scope
    # The store request of a checked reservation, rebuilt only when the amounts change: agent loops
    # resend the same worst case, and a fresh request per call is most of a memory:// reserve.
    cached_request: stores.ScopeRequest | None = field(default=None, repr=False)

    @property
    def user_id(self) -> str:  # the user scope's key, by its old name
        return self.key


# The user window is the "user" scope.
UserScope = Scope


def new_scope(name: str, key: str, budget: Budget, now: float) -> Scope | None:
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
        return Scope(
            name,
            key,
            scope_key(name, key, budget.window, start),
            budget,
            float(end),
            limits,
            float(end) + WINDOW_SLACK_SECONDS,
        )
    return Scope(name, key, scope_key(name, key, None, None), budget, None, limits)


def new_user_scope(user_id: str, budget: Budget, now: float) -> Scope | None:
    return new_scope("user", user_id, budget, now)


class Scopes:
    """``(scope, key) -> Scope`` through the configured resolvers, reused until the window ends."""

    def __init__(self, resolvers: Mapping[str, ScopeBudgetResolver]) -> None:
        self.resolvers = dict(resolvers)
        # Run scopes first (in a stable order), then the scopes keyed by the call.
        self.run_names = tuple(sorted(n for n in self.resolvers if n not in CALL_SCOPES))
        self.call_names = tuple(n for n in CALL_SCOPES if n in self.resolvers)
        self._scopes: dict[tuple[str, str], Scope] = {}

    def __bool__(self) -> bool:
        return bool(self.resolvers)

    def get(self, name: str, key: str | None, now: float) -> Scope | None:
        """The scope of ``key``; raises what the resolver raises (the caller decides)."""
        resolver = self.resolvers.get(name)
        if resolver is None or key is None:
            return None
        budget = resolver(key)
        if budget is None:
            return None
        scopes = self._scopes
        cached = scopes.get((name, key))
        if (
            cached is not None
            and (cached.budget is budget or cached.budget == budget)
            and (cached.window_end is None or now < cached.window_end)
        ):
            return cached
        scope = new_scope(name, key, budget, now)
        if scope is not None:
            if len(scopes) >= MAX_CACHED_SCOPES:
                scopes.clear()  # many keys: a bound on memory, not an LRU
            scopes[(name, key)] = scope
        return scope

    def for_call(
        self, run_keys: Mapping[str, str] | None, provider: str, model: str, now: float
    ) -> tuple[list[Scope], tuple[str, Exception] | None]:
        """Every keyed scope a call touches, and the first resolver error (scope name, error)."""
        found: list[Scope] = []
        unresolved: tuple[str, Exception] | None = None
        if run_keys:
            for name in self.run_names:
                key = run_keys.get(name)
                if key is None:
                    continue
                try:
                    scope = self.get(name, key, now)
                except Exception as exc:  # a budget callable raised: that scope's limits are unknown
                    unresolved = unresolved or (name, exc)
                    continue
                if scope is not None:
                    found.append(scope)
        for name in self.call_names:
            try:
                scope = self.get(name, model if name == "model" else provider, now)
            except Exception as exc:
                unresolved = unresolved or (name, exc)
                continue
            if scope is not None:
                found.append(scope)
        return found, unresolved


def scope_resolvers(
    user: ScopeBudgetResolver | None, others: Mapping[str, ScopeBudgetResolver]
) -> dict[str, ScopeBudgetResolver]:
    resolvers = dict(others)
    if user is not None:
        resolvers["user"] = user
    return resolvers
