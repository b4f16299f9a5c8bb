"""Scope budgets: one resolver for every scope (user, team, org, model, ...), key -> Budget | None.

A scope's budget is given in one of these forms (code or TOML; the environment has a string form)::

    Budget(usd=10, window="1d")                                  # the same budget for every key
    {"search": Budget(usd=50, window="1d"), "*": Budget(usd=10, window="1d")}   # per key, "*" default
    {"default": "free",                                          # the tier form
     "tiers": {"free": {"usd": 0.10, "window": "1d"}, "enterprise": {"usd": 20, "window": "1d"}},
     "users": {"alice": "enterprise", "bob": {"usd": 5, "window": "1d"}}}   # "keys" is an alias of "users"
    lambda key: Budget(usd=1000, window="month")                # a callable key -> Budget | None

Environment (``SPENDFUSE_BUDGETS_TEAM``): ``"search: usd=50,window=1d; *: usd=10,window=1d"`` (per
key), or ``"usd=10,window=1d"`` (every key).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from typing import Any

from spendfuse.budgets.budget import Budget
from spendfuse.errors import ConfigError

log = logging.getLogger("spendfuse")

TIER_FORM = (
    "a budget, a callable (key) -> Budget | None, a table of key -> budget ('*' the default key), "
    "or a table with 'tiers' (name -> budget), 'users' or 'keys' (key -> tier name or budget) and "
    "'default' (tier name or budget)"
)
ENV_FORM = "'key: usd=50,window=1d; *: usd=10,window=1d' (per key, '*' the default) or 'usd=10,window=1d'"
# A scope name is an identifier: it becomes part of store keys, span attributes and metric labels.
SCOPE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
TIER_KEYS = frozenset({"tiers", "users", "keys", "default"})


class ScopeBudgetResolver:
    """Maps a scope key (a user id, a team name, a model) to its Budget (or None: no limit)."""

    def __init__(self, fn: Callable[[str], Budget | None], description: str, scope: str = "user") -> None:
        self._fn = fn
        self.description = description
        self.scope = scope

    def __call__(self, key: str) -> Budget | None:
        try:
            budget = self._fn(key)
        except Exception:
            # A user's own resolver failing must not silently lift every limit: fail like a store.
            log.exception("spendfuse: the %s budget callable raised for key %r", self.scope, key)
            raise
        if budget is not None and not isinstance(budget, Budget):
            budget = Budget.from_mapping(budget, source=f"budgets[{self.scope!r}]({key!r})")
        return budget

    def __repr__(self) -> str:
        return f"ScopeBudgetResolver({self.scope}: {self.description})"


# The name every existing caller knows: a user budget is the "user" scope's resolver.
UserBudgetResolver = ScopeBudgetResolver


def _budget(value: object, source: str) -> Budget:
    budget = Budget.from_mapping(value, source=source)
    if budget.window is None and budget.usd is not None:
        # A scope budget without a window never resets; that is allowed but rarely meant.
        log.debug("spendfuse: %s has no window; it is a lifetime budget", source)
    return budget


BUDGET_FIELDS = frozenset({"usd", "turns", "tokens", "seconds", "repeats", "window"})


def _looks_like_budget(value: Mapping[Any, Any]) -> bool:
    """``{"usd": 10, "window": "1d"}`` is one budget; any other key makes it a table of keys."""
    return bool(value) and all(isinstance(k, str) and k in BUDGET_FIELDS for k in value)


def scope_budget_resolver(value: object, *, scope: str = "user", source: str | None = None) -> ScopeBudgetResolver:
    """Any accepted form of a scope's budget, as a resolver; ConfigError naming ``source`` otherwise."""
    source = source or f"budgets.{scope}"
    if isinstance(value, ScopeBudgetResolver):
        return ScopeBudgetResolver(value._fn, value.description, scope) if value.scope != scope else value
    if isinstance(value, Budget):
        budget = value
        return ScopeBudgetResolver(lambda _key: budget, budget.describe(), scope)
    if isinstance(value, str):
        if ":" in value:
            return _from_env_string(value, scope, source)
        parsed = _budget(value, source)
        return ScopeBudgetResolver(lambda _key: parsed, parsed.describe(), scope)
    if callable(value):
        return ScopeBudgetResolver(value, getattr(value, "__name__", "callable"), scope)
    if not isinstance(value, Mapping):
        raise ConfigError(f"{source}: {value!r}; accepted: {TIER_FORM}")
    if not (TIER_KEYS & set(value)):
        if _looks_like_budget(value):
            single = _budget(_plain(value), source)
            return ScopeBudgetResolver(lambda _key: single, single.describe(), scope)
        return _per_key(value, scope, source)
    return _tiers(value, scope, source)


def _plain(spec: object) -> object:
    return dict(spec) if isinstance(spec, Mapping) and not isinstance(spec, dict) else spec


def _per_key(value: Mapping[Any, Any], scope: str, source: str) -> ScopeBudgetResolver:
    """``{key: budget, "*": default}``: a budget per key; ``"*"`` for every other key."""
    budgets: dict[str, Budget | None] = {}
    for key, spec in value.items():
        where = f"{source}.{key}"
        if spec is None:
            budgets[str(key)] = None
        elif isinstance(spec, (Budget, Mapping, str)):
            budgets[str(key)] = spec if isinstance(spec, Budget) else _budget(_plain(spec), where)
        else:
            raise ConfigError(f"{where}: {spec!r}; accepted: a budget (Budget(...), a table or 'usd=10,window=1d')")
    default = budgets.pop("*", None)

    def resolve(key: str) -> Budget | None:
        return budgets.get(key, default)

    return ScopeBudgetResolver(resolve, f"{len(budgets)} keys" + (", default" if default else ""), scope)


def _tiers(value: Mapping[Any, Any], scope: str, source: str) -> ScopeBudgetResolver:
    unknown = set(value) - TIER_KEYS
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {sorted(map(str, unknown))}; accepted: {TIER_FORM}")
    if "users" in value and "keys" in value:
        raise ConfigError(f"{source}: both 'users' and 'keys' given; they are one table, use one of them")
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

    table = "keys" if "keys" in value else "users"
    keys_raw = value.get(table) or {}
    if not isinstance(keys_raw, Mapping):
        raise ConfigError(f"{source}.{table}: {keys_raw!r}; accepted: a table of key -> tier or budget")
    keyed: dict[str, Budget | None] = {
        str(key): pick(spec, f"{source}.{table}.{key}") for key, spec in keys_raw.items()
    }
    default = pick(value.get("default"), f"{source}.default")

    def resolve(key: str) -> Budget | None:
        return keyed.get(key, default)

    return ScopeBudgetResolver(resolve, f"{len(tiers)} tiers, {len(keyed)} keys", scope)


def _from_env_string(value: str, scope: str, source: str) -> ScopeBudgetResolver:
    """``"search: usd=50,window=1d; *: usd=10,window=1d"``."""
    table: dict[str, str] = {}
    for part in value.split(";"):
        part = part.strip()
        if not part:
            continue
        key, sep, spec = part.partition(":")
        key, spec = key.strip(), spec.strip()
        if not sep or not key or not spec:
            raise ConfigError(f"{source}: {part!r} is not 'key: budget'; accepted: {ENV_FORM}")
        if key in table:
            raise ConfigError(f"{source}: key {key!r} is given twice; accepted: {ENV_FORM}")
        table[key] = spec
    if not table:
        raise ConfigError(f"{source}: {value!r} names no key; accepted: {ENV_FORM}")
    return _per_key(table, scope, source)


def user_budget_resolver(value: object, *, source: str = "user_budget") -> ScopeBudgetResolver:
    return scope_budget_resolver(value, scope="user", source=source)


def check_scope_name(name: object, source: str) -> str:
    if not isinstance(name, str) or not SCOPE_NAME.match(name):
        raise ConfigError(
            f"{source}: {name!r} is not a scope name; accepted: a lowercase identifier "
            "(letters, digits, '_', at most 32), e.g. 'team', 'org', 'model'"
        )
    if name == "run":
        raise ConfigError(f"{source}: 'run' is not a keyed scope; set run budgets with run_budget or run(budget=...)")
    return name


def scope_budgets(value: object, source: str = "budgets") -> dict[str, ScopeBudgetResolver]:
    """The ``budgets`` setting: scope name -> resolver."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{source}: {value!r}; accepted: a table of scope name -> ({TIER_FORM})")
    out: dict[str, ScopeBudgetResolver] = {}
    for name, spec in value.items():
        check_scope_name(name, f"{source}.{name}")
        if spec is None:
            continue
        out[name] = scope_budget_resolver(spec, scope=name, source=f"{source}.{name}")
    return out
