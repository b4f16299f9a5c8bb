"""Agent framework adapters: every framework invocation becomes a run, LiteLLM's own HTTP path is budgeted.

``install()`` runs when spendfuse is instrumented. An adapter patches its framework only once the
user's program imports it (a post-import hook), so nothing is imported for a framework the program
does not use. ``disable_frameworks`` (``SPENDFUSE_DISABLE_FRAMEWORKS``) turns adapters off;
``uninstall()`` restores every patched method.
"""

from __future__ import annotations

import importlib
import logging
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import wrapt

from spendfuse import runtime
from spendfuse.frameworks._names import ADAPTER_NAMES
from spendfuse.frameworks.errors import is_budget_stop
from spendfuse.frameworks.usage import mark_duplicates

log = logging.getLogger("spendfuse")

Patched = list[tuple[Any, str]]  # (owner, attribute) pairs to unwrap


@dataclass(frozen=True, slots=True)
class Adapter:
    name: str
    trigger: str  # the framework module whose import installs the adapter
    module: str  # our adapter module, imported only when the trigger is


ADAPTERS: tuple[Adapter, ...] = (
    Adapter("pydantic_ai", "pydantic_ai.agent", "spendfuse.frameworks.pydantic_ai"),
    Adapter("openai_agents", "agents.run", "spendfuse.frameworks.openai_agents"),
    Adapter("langgraph", "langgraph.pregel.main", "spendfuse.frameworks.langgraph"),
    Adapter("smolagents", "smolagents.agents", "spendfuse.frameworks.smolagents"),
    Adapter("litellm", "litellm.llms.custom_httpx.http_handler", "spendfuse.frameworks.litellm"),
)
assert {adapter.name for adapter in ADAPTERS} == ADAPTER_NAMES

_lock = threading.RLock()
_patched: dict[str, Patched] = {}
_hooked: set[str] = set()


def _disabled(name: str) -> bool:
    active = runtime.current()
    return active is None or name in active.settings.disable_frameworks


def _patch(adapter: Adapter, framework_module: ModuleType) -> None:
    with _lock:
        if adapter.name in _patched or _disabled(adapter.name):
            return
        try:
            patch: Callable[[ModuleType], Patched] = importlib.import_module(adapter.module).patch
            _patched[adapter.name] = patch(framework_module)
        except Exception:
            # A framework release we do not understand: its calls through the SDKs stay budgeted.
            log.warning("spendfuse: the %s adapter could not be installed", adapter.name, exc_info=True)


def _unpatch(name: str) -> None:
    from opentelemetry.instrumentation.utils import unwrap

    with _lock:
        for owner, attribute in reversed(_patched.pop(name, [])):
            try:
                unwrap(owner, attribute)
            except Exception:
                log.debug("spendfuse: could not unwrap %r.%s", owner, attribute, exc_info=True)


def _hook(adapter: Adapter) -> Callable[[ModuleType], None]:
    def installed(module: ModuleType) -> None:
        _patch(adapter, module)

    return installed


def install() -> None:
    """Patch the frameworks already imported; hook the others to patch them on import."""
    active = runtime.current()
    if active is not None:
        try:
            from opentelemetry import trace

            # Framework spans go to the global provider unless told otherwise: mark on both.
            mark_duplicates(active.tracer_provider)
            mark_duplicates(trace.get_tracer_provider())
        except Exception:
            log.debug("spendfuse: could not add the duplicate-usage marker", exc_info=True)
    with _lock:
        for adapter in ADAPTERS:
            if _disabled(adapter.name):
                _unpatch(adapter.name)
            elif adapter.trigger in sys.modules:
                _patch(adapter, sys.modules[adapter.trigger])
            elif adapter.trigger not in _hooked:
                # Hooks cannot be removed: each one checks the active settings when it fires.
                _hooked.add(adapter.trigger)
                wrapt.register_post_import_hook(_hook(adapter), adapter.trigger)


def uninstall() -> None:
    with _lock:
        for name in list(_patched):
            _unpatch(name)


def installed() -> frozenset[str]:
    """The adapters currently patched into their frameworks."""
    with _lock:
        return frozenset(_patched)


__all__ = ["ADAPTERS", "install", "installed", "is_budget_stop", "uninstall"]
