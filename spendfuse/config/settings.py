"""Settings: code, ``SPENDFUSE_*`` environment variables and a TOML file, later overriding earlier.

Order of precedence, lowest first: the TOML file named by ``SPENDFUSE_CONFIG``, the environment,
the keyword arguments of ``spendfuse.instrument()``. Every malformed value raises ``ConfigError``
naming the key (or variable) and the accepted form, at start-up rather than at the first call.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from spendfuse.budgets.budget import BUDGET_FORM, Budget, shown
from spendfuse.config.user_budgets import (
    ScopeBudgetResolver,
    UserBudgetResolver,
    check_scope_name,
    scope_budget_resolver,
    scope_budgets,
    user_budget_resolver,
)
from spendfuse.errors import BudgetExceeded, ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

ENV_PREFIX = "SPENDFUSE_"
CONFIG_ENV = "SPENDFUSE_CONFIG"
CAPTURE_CONTENT_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off", ""}

UNANSWERED_POLICIES = ("reserved", "released")

STORE_SCHEMES = frozenset({"memory", "sqlite", "redis", "rediss", "redis+sentinel"})

OnExceeded = Callable[[BudgetExceeded], bool]


@dataclass(frozen=True, slots=True)
class Settings:
    """Immutable; ``instrument()`` builds a new one instead of changing this one."""

    run_budget: Budget | None = None
    user_budget: UserBudgetResolver | None = None
    # Every keyed scope but "user" (which is ``user_budget``): scope name -> key -> Budget | None.
    budgets: Mapping[str, ScopeBudgetResolver] = field(default_factory=dict)
    # Scopes whose keys are few enough to be metric labels (never run ids or user ids by default).
    metric_scopes: frozenset[str] = frozenset()
    store: str = "memory://"
    store_failure: str = "closed"
    store_timeout: float = 0.25
    lease_seconds: float = 900.0
    warn_at: float | None = 0.8
    clamp: bool = False
    clamp_floor: int = 256
    on_exceeded: OnExceeded | None = None
    prices: Mapping[str, Any] | str | None = None
    default_max_output_tokens: int = 32_000
    capture_content: bool = False
    metric_user_attribute: bool = True
    suppress_sdk_spans: bool = True
    grafana_url: str | None = None
    ledger: str | None = None
    disable_frameworks: frozenset[str] = frozenset()  # spendfuse.frameworks adapters turned off
    # A request sent but never answered (timeout, reset after the body left): "reserved" charges it
    # at its reservation (the provider may have billed it), "released" charges nothing.
    unanswered: str = "reserved"
    # Ask OpenAI chat streams for their usage (stream_options.include_usage) on these hosts only,
    # hiding the extra usage chunk from callers that did not ask for it (#15).
    stream_usage: bool = True
    stream_usage_hosts: tuple[str, ...] = ("api.openai.com", "*.openai.azure.com")
    # Deployment or alias name -> the model it serves, priced as that model (#15).
    deployments: Mapping[str, str] = field(default_factory=dict)
    # Uses of a server-side tool (web search, ...) the worst case assumes when the request sets no
    # bound (Anthropic max_uses, OpenAI max_tool_calls).
    server_tool_default_uses: int = 10
    extra: Mapping[str, Any] = field(default_factory=dict)


SETTING_NAMES = frozenset(f.name for f in fields(Settings)) - {"extra"}
# SPENDFUSE_BUDGETS_TEAM="search: usd=50,window=1d; *: usd=10,window=1d": one variable per scope.
BUDGETS_ENV_PREFIX = ENV_PREFIX + "BUDGETS_"


def _bool(key: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in TRUE_WORDS | FALSE_WORDS:
        return value.strip().lower() in TRUE_WORDS
    raise ConfigError(f"{key}: {value!r} is not a boolean; accepted: true/false, 1/0, yes/no, on/off")


def _number(key: str, value: object, *, low: float, high: float = math.inf, integral: bool = False) -> float:
    form = f"a {'whole ' if integral else ''}number between {low:g} and {high:g}"
    if isinstance(value, bool):
        raise ConfigError(f"{key}: {value!r} is not a number; accepted: {form}")
    try:
        number = float(value)  # type: ignore[arg-type]
    except OverflowError:  # an int beyond any float
        raise ConfigError(f"{key}: {shown(value)} is out of range; accepted: {form}") from None
    except (TypeError, ValueError):
        raise ConfigError(f"{key}: {shown(value)} is not a number; accepted: {form}") from None
    if math.isnan(number) or not low <= number <= high or (integral and not number.is_integer()):
        raise ConfigError(f"{key}: {shown(value)} is out of range; accepted: {form}")
    return number


def _coerce(key: str, name: str, value: Any) -> Any:
    """Validate one setting; ``key`` is how the user spelled it (variable, TOML key or kwarg)."""
    if name == "run_budget":
        return None if value is None else Budget.from_mapping(value, source=key)
    if name == "user_budget":
        return None if value is None else user_budget_resolver(value, source=key)
    if name == "budgets":
        return scope_budgets(value, source=key)
    if name == "metric_scopes":
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if not isinstance(value, (list, tuple, set, frozenset)):
            raise ConfigError(f"{key}: {value!r}; accepted: a list of scope names, e.g. ['team', 'org'] or 'team,org'")
        return frozenset(check_scope_name(item, key) for item in value)
    if name == "store":
        from spendfuse.budgets.stores import STORE_URL_FORM

        if not isinstance(value, str) or "://" not in value:
            raise ConfigError(f"{key}: {value!r} is not a store URL; accepted: {STORE_URL_FORM}")
        scheme = value.split("://", 1)[0].strip().lower()
        if scheme not in STORE_SCHEMES:
            from spendfuse.budgets.stores import redacted_url

            raise ConfigError(
                f"{key}: unknown scheme {scheme!r} in {redacted_url(value)!r}; accepted: {STORE_URL_FORM}"
            )
        if scheme == "sqlite":
            _check_sqlite_url(key, value)
        elif scheme in ("redis", "rediss"):
            _check_redis_url(key, value)
        return value
    if name == "store_failure":
        if value not in ("closed", "open"):
            raise ConfigError(f"{key}: {value!r} is not a policy; accepted: 'closed' or 'open'")
        return value
    if name == "unanswered":
        if isinstance(value, str):
            value = value.strip().lower()
        if value not in UNANSWERED_POLICIES:
            raise ConfigError(f"{key}: {shown(value)} is not a policy; accepted: 'reserved' or 'released'")
        return value
    if name == "store_timeout":
        return _number(key, value, low=0.001, high=60)
    if name == "lease_seconds":
        return _number(key, value, low=1, high=7 * 86400)
    if name == "warn_at":
        if value is None or (isinstance(value, str) and value.strip().lower() in ("off", "none", "")):
            return None
        return _number(key, value, low=0.0, high=1.0)
    if name in ("clamp", "capture_content", "metric_user_attribute", "suppress_sdk_spans", "stream_usage"):
        return _bool(key, value)
    if name == "clamp_floor":
        return int(_number(key, value, low=1, integral=True))
    if name == "server_tool_default_uses":
        return int(_number(key, value, low=0, high=10_000, integral=True))
    if name == "default_max_output_tokens":
        return int(_number(key, value, low=1, integral=True))
    if name == "on_exceeded":
        if value is not None and not callable(value):
            raise ConfigError(f"{key}: {value!r} is not callable; accepted: a function (error) -> bool")
        return value
    if name == "prices":
        if value is not None and not isinstance(value, (str, os.PathLike, Mapping)):
            raise ConfigError(f"{key}: {value!r}; accepted: a mapping of model prices or a TOML/JSON file path")
        return os.fspath(value) if isinstance(value, os.PathLike) else value
    if name in ("grafana_url", "ledger"):
        if value is not None and not isinstance(value, (str, os.PathLike)):
            raise ConfigError(f"{key}: {value!r} is not a string")
        value = os.fspath(value) if value is not None else None
        if name == "ledger" and value:
            from spendfuse.ledger.paths import check_ledger_setting

            check_ledger_setting(key, value)
        return value or None
    if name == "stream_usage_hosts":
        return _hosts(key, value)
    if name == "deployments":
        return _deployments(key, value)
    if name == "disable_frameworks":
        from spendfuse.frameworks._names import parse_disabled

        return parse_disabled(key, value)
    raise ConfigError(f"{key}: unknown setting; accepted: {', '.join(sorted(SETTING_NAMES))}")


HOSTS_FORM = (
    "host names or *.suffix patterns, comma-separated in the environment (e.g. api.openai.com,*.openai.azure.com)"
)


def _hosts(key: str, value: object) -> tuple[str, ...]:
    items: object = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, (list, tuple, set, frozenset)):
        raise ConfigError(f"{key}: {shown(value)}; accepted: {HOSTS_FORM}")
    hosts: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise ConfigError(f"{key}: {shown(item)} is not a host; accepted: {HOSTS_FORM}")
        host = item.strip().lower()
        bare = host.removeprefix("*.")
        if not host:
            continue
        if not bare or any(not (c.isalnum() or c in ".-") for c in bare):
            raise ConfigError(f"{key}: {item!r} is not a host; accepted: {HOSTS_FORM}")
        hosts.append(host)
    return tuple(hosts)


DEPLOYMENTS_FORM = (
    'a mapping of deployment name to model, e.g. {"my-gpt4o": "gpt-4o"} '
    "(in the environment: my-gpt4o=gpt-4o,other=gpt-4.1-mini)"
)


def _deployments(key: str, value: object) -> dict[str, str]:
    if isinstance(value, str):
        pairs: list[tuple[object, object]] = []
        for part in value.split(","):
            if not part.strip():
                continue
            left, sep, right = part.partition("=")
            if not sep:
                raise ConfigError(f"{key}: {part.strip()!r} is not name=model; accepted: {DEPLOYMENTS_FORM}")
            pairs.append((left, right))
    elif isinstance(value, Mapping):
        pairs = list(value.items())
    else:
        raise ConfigError(f"{key}: {shown(value)}; accepted: {DEPLOYMENTS_FORM}")
    mapping: dict[str, str] = {}
    for name, model in pairs:
        if not isinstance(name, str) or not isinstance(model, str) or not name.strip() or not model.strip():
            raise ConfigError(f"{key}: {shown(name)} -> {shown(model)}; accepted: {DEPLOYMENTS_FORM}")
        mapping[name.strip()] = model.strip()
    return mapping


def _check_sqlite_url(key: str, url: str) -> None:
    """The store's own URL errors, said with the key the user wrote; and its folder must exist."""
    from spendfuse.budgets.stores import STORE_URL_FORM
    from spendfuse.budgets.stores.sqlite_files import parse_sqlite_url

    try:
        path, _ = parse_sqlite_url(url)
    except ConfigError as error:
        raise ConfigError(f"{key}: {str(error).removeprefix('store: ')}") from None
    except (ValueError, RuntimeError, OSError) as error:  # a NUL byte, an unknown ~user
        raise ConfigError(f"{key}: {shown(url)} is not a usable path ({error}); accepted: {STORE_URL_FORM}") from None
    if not path.parent.is_dir():
        raise ConfigError(
            f"{key}: the folder {str(path.parent)!r} of the SQLite store does not exist; accepted: "
            "sqlite:///path/to/file.db in an existing folder (it is not created for you)"
        )
    if path.is_dir():
        raise ConfigError(f"{key}: {str(path)!r} is a folder, not a database file; accepted: {STORE_URL_FORM}")


def _check_redis_url(key: str, url: str) -> None:
    """The Redis store's URL errors at start-up, said with the key the user wrote."""
    from spendfuse.budgets.stores import STORE_URL_FORM, redacted_url

    try:
        from spendfuse.budgets.stores.redis import parse_redis_url

        parse_redis_url(url, 0.25)
    except ConfigError as error:
        raise ConfigError(f"{key}: {str(error).removeprefix('store: ')}") from None
    except ImportError:  # the redis extra is not installed: the store says so when it opens
        return
    except (ValueError, TypeError) as error:  # urllib's own parse errors ("Invalid IPv6 URL")
        raise ConfigError(
            f"{key}: {redacted_url(url)!r} is not a valid URL ({error}); accepted: {STORE_URL_FORM}"
        ) from None


def _read_file(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{CONFIG_ENV}: file {path!r} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{CONFIG_ENV}: {path!r} is not valid TOML: {exc}") from None
    except (OSError, ValueError) as exc:  # a directory, no permission, a NUL in the path, not UTF-8
        raise ConfigError(f"{CONFIG_ENV}: {path!r} cannot be read as a TOML file: {exc}") from None
    # Accept both a dedicated file and a [tool.spendfuse] / [spendfuse] table in a shared one.
    tool = data.get("tool")
    table = (tool.get("spendfuse") if isinstance(tool, dict) else None) or data.get("spendfuse") or data
    if not isinstance(table, dict):
        raise ConfigError(f"{CONFIG_ENV}: in {path!r}, spendfuse must be a table of settings, not {shown(table)}")
    return dict(table)


def load_settings(overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    path = environ.get(CONFIG_ENV)
    if path:
        for key, value in _read_file(path).items():
            if key not in SETTING_NAMES:
                raise ConfigError(f"{path}: unknown key {key!r}; accepted: {', '.join(sorted(SETTING_NAMES))}")
            values[key] = _coerce(f"{path}: {key}", key, value)
        if "user_budget" in values and "user" in values.get("budgets", {}):
            raise ConfigError(f"{path}: user_budget and [budgets.user] are both given; set one of them")
    capture = environ.get(CAPTURE_CONTENT_ENV)
    if capture is not None:
        values["capture_content"] = _bool(CAPTURE_CONTENT_ENV, capture)
    for name in SETTING_NAMES - {"on_exceeded", "budgets"}:
        variable = ENV_PREFIX + name.upper()
        if variable in environ:
            raw = environ[variable]
            values[name] = _coerce(variable, name, raw)
    env_budgets = _env_budgets(environ)
    if "user" in env_budgets and ENV_PREFIX + "USER_BUDGET" in environ:
        raise ConfigError("SPENDFUSE_USER_BUDGET and SPENDFUSE_BUDGETS_USER are both set; set one of them")
    if env_budgets:
        # The environment adds scopes to (or replaces scopes of) the file's table, scope by scope.
        values["budgets"] = {**values.get("budgets", {}), **env_budgets}
    given_user = values.pop("user_budget", None)
    for name, value in (overrides or {}).items():
        if name not in SETTING_NAMES:
            raise ConfigError(f"{name}: unknown setting; accepted: {', '.join(sorted(SETTING_NAMES))}")
        if name == "user_budget":
            given_user = None  # code replaces the file's and the environment's user budget
        values[name] = _coerce(name, name, value)
    return Settings(**_user_scope(values, given_user))


def _env_budgets(environ: Mapping[str, str]) -> dict[str, ScopeBudgetResolver]:
    out: dict[str, ScopeBudgetResolver] = {}
    if ENV_PREFIX + "BUDGETS" in environ:
        # One table in one variable would need its own syntax: one variable per scope instead.
        raise ConfigError(
            "SPENDFUSE_BUDGETS: set one variable per scope instead, e.g. "
            "SPENDFUSE_BUDGETS_TEAM='search: usd=50,window=1d; *: usd=10,window=1d'"
        )
    for variable, raw in environ.items():
        if not variable.startswith(BUDGETS_ENV_PREFIX):
            continue
        scope = check_scope_name(variable[len(BUDGETS_ENV_PREFIX) :].lower(), variable)
        out[scope] = scope_budget_resolver(raw, scope=scope, source=variable)
    return out


def _user_scope(values: dict[str, Any], lower: ScopeBudgetResolver | None) -> dict[str, Any]:
    """``user_budget`` is the spelling of ``budgets["user"]``: one of them, never both in one layer.

    ``lower`` is a user budget from the file or environment, which a ``budgets["user"]`` given in
    code replaces (later layers override earlier ones, as everywhere).
    """
    budgets = dict(values.get("budgets") or {})
    from_table = budgets.pop("user", None)
    user = values.get("user_budget")
    if from_table is not None and user is not None:
        raise ConfigError("user_budget and budgets['user'] are both given; they are the same budget, set one of them")
    values["user_budget"] = user if user is not None else (from_table if from_table is not None else lower)
    values["budgets"] = budgets
    return values


__all__ = ["BUDGET_FORM", "CONFIG_ENV", "Settings", "load_settings"]
