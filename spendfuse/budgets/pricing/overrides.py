"""Price overrides from code or a TOML/JSON file, parsed exactly (``Decimal(str(x))``)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from spendfuse.budgets.pricing.rates import _RATE_KEYS, Rates, _pico, _pico_per_use, _rates_of
from spendfuse.budgets.usage import SERVER_TOOLS
from spendfuse.errors import ConfigError

_ENTRY_KEYS = (*_RATE_KEYS, "tiers", "max_output_tokens", *SERVER_TOOLS)
OVERRIDE_FORM = (
    "{'model-name': {'input': 3.0, 'output': 15.0, 'cache_read': 0.3, 'cache_write': 3.75, "
    "'cache_write_1h': 6.0, 'tiers': [{'above': 200000, 'input': 6.0, 'output': 22.5}], "
    "'max_output_tokens': 64000, 'web_search': 10.0}} in USD per million tokens (server tools "
    f"{', '.join(SERVER_TOOLS)}: USD per 1000 uses); a key may be provider-qualified ('anthropic/model-name')"
)


@dataclass(frozen=True, slots=True)
class _Override:
    rates: Rates | None
    max_output_tokens: int | None = None
    # Pico-dollars per use of each server tool (SERVER_TOOLS order); None: the bundled fee stays.
    tool_fees: tuple[int | None, ...] = (None,) * len(SERVER_TOOLS)


def _load_price_file(path: Path) -> Any:
    form = f"a TOML or JSON table shaped like {OVERRIDE_FORM}"
    try:
        text = path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"prices file {os.fspath(path)!r} cannot be read ({exc}); expected {form}") from exc
    suffix = path.suffix.lower()
    kinds = ("toml",) if suffix == ".toml" else ("json",) if suffix == ".json" else ("json", "toml")
    errors: list[str] = []
    for kind in kinds:
        try:
            # Decimal floats: a price must reach the book exactly as written.
            if kind == "json":
                return json.loads(text, parse_float=Decimal)
            return _toml_loads(text)
        except ValueError as exc:  # JSONDecodeError and TOMLDecodeError are both ValueErrors
            errors.append(f"{kind}: {exc}")
    raise ConfigError(f"prices file {os.fspath(path)!r} is not valid ({'; '.join(errors)}); expected {form}")


def _toml_loads(text: str) -> Any:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10 only
        import tomli as tomllib
    return tomllib.loads(text, parse_float=Decimal)


def _parse_overrides(mapping: Any, root: str, source: str) -> dict[str, _Override]:
    if not isinstance(mapping, Mapping):
        raise ConfigError(
            f"{source}{root}: expected a table of model name -> prices, got {mapping!r}; accepted form: {OVERRIDE_FORM}"
        )
    if len(mapping) == 1 and isinstance(mapping.get("prices"), Mapping):
        mapping = mapping["prices"]
    parsed: dict[str, _Override] = {}
    for key, entry in mapping.items():
        if not isinstance(key, str) or not key.strip():
            raise ConfigError(f"{source}{root}: {key!r} is not a model name; accepted form: {OVERRIDE_FORM}")
        path = f"{root}.{key}"
        if not isinstance(entry, Mapping):
            raise ConfigError(
                f"{source}{path}: expected a table of prices, got {entry!r}; accepted form: {OVERRIDE_FORM}"
            )
        for name in entry:
            if name not in _ENTRY_KEYS:
                raise ConfigError(
                    f"{source}{path}.{name}: unknown key; accepted keys: {', '.join(_ENTRY_KEYS)} "
                    f"(form: {OVERRIDE_FORM})"
                )
        max_output = None
        if "max_output_tokens" in entry:
            max_output = _positive_int(entry["max_output_tokens"], f"{source}{path}.max_output_tokens")
        rates = None
        if any(name in entry for name in (*_RATE_KEYS, "tiers")):
            rates = _parse_rates(entry, path, source)
            tiers = _parse_tiers(entry.get("tiers"), f"{path}.tiers", source)
            if tiers:
                rates = replace(rates, tiers=tiers)
        fees = tuple(
            _pico_per_use(_price(entry[tool], f"{source}{path}.{tool}", "USD per 1000 uses")) if tool in entry else None
            for tool in SERVER_TOOLS
        )
        parsed[key.strip().lower()] = _Override(rates=rates, max_output_tokens=max_output, tool_fees=fees)
    return parsed


def _parse_rates(entry: Mapping[str, Any], path: str, source: str) -> Rates:
    for required in ("input", "output"):
        if required not in entry:
            raise ConfigError(f"{source}{path}: missing {required!r}; accepted form: {OVERRIDE_FORM}")
    prices = {name: _price(entry[name], f"{source}{path}.{name}") for name in _RATE_KEYS if name in entry}
    prices.setdefault("cache_read", prices["input"])
    prices.setdefault("cache_write", prices["input"])
    prices.setdefault("cache_write_1h", prices["cache_write"])
    return _rates_of({name: _pico(value) for name, value in prices.items()})


def _parse_tiers(raw: Any, path: str, source: str) -> tuple[tuple[int, Rates], ...]:
    if raw is None:
        return ()
    form = "a list of tables like [{'above': 200000, 'input': 6.0, 'output': 22.5}]"
    if not isinstance(raw, (list, tuple)):
        raise ConfigError(f"{source}{path}: expected {form}, got {raw!r}")
    tiers: dict[int, Rates] = {}
    for index, tier in enumerate(raw):
        tier_path = f"{path}[{index}]"
        if not isinstance(tier, Mapping):
            raise ConfigError(f"{source}{tier_path}: expected {form}, got {tier!r}")
        for name in tier:
            if name != "above" and name not in _RATE_KEYS:
                raise ConfigError(
                    f"{source}{tier_path}.{name}: unknown key; accepted keys: above, {', '.join(_RATE_KEYS)}"
                )
        if "above" not in tier:
            raise ConfigError(f"{source}{tier_path}: missing 'above' (input tokens); expected {form}")
        above = tier["above"]
        if type(above) is not int or above < 0:
            raise ConfigError(
                f"{source}{tier_path}.above: {above!r} is not a token count; expected a non-negative integer"
            )
        if above in tiers:
            raise ConfigError(f"{source}{tier_path}.above: {above} appears twice; tier thresholds must differ")
        tiers[above] = _parse_rates(tier, tier_path, source)
    return tuple(sorted(tiers.items()))


MAX_PRICE = Decimal(1_000_000)


def _price(value: Any, path: str, unit: str = "USD per million tokens") -> Decimal:
    problem = f'{path}: {value!r} is not a price; expected a non-negative number of {unit}, e.g. 3.0 or "3.00"'
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        raise ConfigError(problem)
    try:
        # str() first: Decimal(0.1) would carry the float's binary error into the rate.
        price = Decimal(value.strip()) if isinstance(value, str) else Decimal(str(value))
    except (InvalidOperation, ValueError) as exc:
        raise ConfigError(problem) from exc
    # Above a million dollars per million tokens a price is a typo, and past ~1e300 it stops being
    # a number downstream (a worst case or an error message shown as a float overflows).
    if not price.is_finite() or price < 0 or price > MAX_PRICE:
        raise ConfigError(f"{problem} at most {MAX_PRICE:,}")
    return price


def _positive_int(value: Any, path: str) -> int:
    if type(value) is not int or value <= 0:
        raise ConfigError(f"{path}: {value!r} is not a token count; expected a positive integer, e.g. 64000")
    return value
