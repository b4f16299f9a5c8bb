"""Per-user budgets: one Budget for everyone, tiers with per-user overrides, or a callable.

Tier form (code or TOML)::

    {"default": "free",
     "tiers": {"free": {"usd": 0.10, "window": "1d"}, "enterprise": {"usd": 20, "window": "1d"}},
     "users": {"alice": "enterprise", "bob": {"usd": 5, "window": "1d"}}}
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from spendfuse.budgets.budget import Budget
from spendfuse.errors import ConfigError

log = logging.getLogger("spendfuse")

TIER_FORM = (
    "a budget, a callable (user_id) -> Budget | None, or a table with 'tiers' (name -> budget), "
    "'users' (user id -> tier name or budget) and 'default' (tier name or budget)"
)


class UserBudgetResolver:
    """Maps a user id to the Budget of that user (or None: no user limit)."""

    def __init__(self, fn: Callable[[str], Budget | None], description: str) -> None:
        self._fn = fn
        self.description = description

    def __call__(self, user_id: str) -> Budget | None:
        try:
            budget = self._fn(user_id)
        except Exception:
            # A user's own resolver failing must not silently lift every limit: fail like a store.
            log.exception("spendfuse: the user_budget callable raised for user %r", user_id)
            raise
        if budget is not None and not isinstance(budget, Budget):
            budget = Budget.from_mapping(budget, source=f"user_budget({user_id!r})")
        return budget

    def __repr__(self) -> str:
        return f"UserBudgetResolver({self.description})"


def _budget(value: object, source: str) -> Budget:
    budget = Budget.from_mapping(value, source=source)
    if budget.window is None and budget.usd is not None:
        # A user budget without a window never resets; that is allowed but rarely meant.
        log.debug("spendfuse: %s has no window; it is a lifetime budget", source)
    return budget


def user_budget_resolver(value: object, *, source: str = "user_budget") -> UserBudgetResolver:
    if isinstance(value, UserBudgetResolver):
        return value
    if isinstance(value, Budget):
        budget = value
        return UserBudgetResolver(lambda _user: budget, budget.describe())
    if isinstance(value, str):
        parsed = _budget(value, source)
        return UserBudgetResolver(lambda _user: parsed, parsed.describe())
    if callable(value):
        return UserBudgetResolver(value, getattr(value, "__name__", "callable"))
    if not isinstance(value, Mapping):
        raise ConfigError(f"{source}: {value!r}; accepted: {TIER_FORM}")
    if not ({"tiers", "users", "default"} & set(value)):
        single = _budget(dict(value), source)
        return UserBudgetResolver(lambda _user: single, single.describe())
    unknown = set(value) - {"tiers", "users", "default"}
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {sorted(unknown)}; accepted: {TIER_FORM}")
    tiers_raw = value.get("tiers") or {}
    if not isinstance(tiers_raw, Mapping):
        raise ConfigError(f"{source}.tiers: {tiers_raw!r}; accepted: a table of tier name -> budget")
    tiers = {str(name): _budget(spec, f"{source}.tiers.{name}") for name, spec in tiers_raw.items()}

    def pick(spec: Any, where: str) -> Budget | None:
        if spec is None:
            return None
        if isinstance(spec, str) and "=" not in spec:
            if spec not in tiers:
                raise ConfigError(f"{where}: unknown tier {spec!r}; defined tiers: {', '.join(tiers) or 'none'}")
            return tiers[spec]
        return _budget(spec, where)

    users_raw = value.get("users") or {}
    if not isinstance(users_raw, Mapping):
        raise ConfigError(f"{source}.users: {users_raw!r}; accepted: a table of user id -> tier or budget")
    users: dict[str, Budget | None] = {
        str(user): pick(spec, f"{source}.users.{user}") for user, spec in users_raw.items()
    }
    default = pick(value.get("default"), f"{source}.default")

    def resolve(user_id: str) -> Budget | None:
        return users.get(user_id, default)

    return UserBudgetResolver(resolve, f"{len(tiers)} tiers, {len(users)} users")
