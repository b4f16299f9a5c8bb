"""The adapters' names, as ``disable_frameworks`` / ``SPENDFUSE_DISABLE_FRAMEWORKS`` spell them.

Kept free of imports: the settings module validates against it without loading any adapter.
"""

from __future__ import annotations

from collections.abc import Iterable

ADAPTER_NAMES: frozenset[str] = frozenset({"pydantic_ai", "openai_agents", "langgraph", "smolagents", "litellm"})
ALL = "all"
FORM = f"a comma-separated list of {', '.join(sorted(ADAPTER_NAMES))}, or 'all'"


def parse_disabled(key: str, value: object) -> frozenset[str]:
    """``"litellm,langgraph"``, a list of names, or ``"all"`` -> the set of disabled adapters."""
    from spendfuse.errors import ConfigError

    if value is None:
        return frozenset()
    if isinstance(value, str):
        items: Iterable[object] = value.split(",")
    elif isinstance(value, (list, tuple, set, frozenset)):
        items = value
    else:
        raise ConfigError(f"{key}: {value!r}; accepted: {FORM}")
    chosen: set[str] = set()
    for item in items:
        if not isinstance(item, str):
            raise ConfigError(f"{key}: {item!r} is not a name; accepted: {FORM}")
        name = item.strip().lower().replace("-", "_")
        if not name:
            continue
        if name == ALL:
            return ADAPTER_NAMES
        if name not in ADAPTER_NAMES:
            raise ConfigError(f"{key}: unknown framework {item.strip()!r}; accepted: {FORM}")
        chosen.add(name)
    return frozenset(chosen)
