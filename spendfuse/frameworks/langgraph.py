"""LangGraph: each compiled graph invocation (``invoke``, ``ainvoke``, ``stream``, ``astream``) is a run.

``invoke`` iterates ``stream`` (and ``ainvoke`` ``astream``): the outer entry point opens the run
and the inner one passes through. A stream's run lasts until it is exhausted or closed. A subgraph
invoked from inside a node opens a nested run.

Run id: ``config["run_id"]`` (LangChain's per-invocation id) when set, else
``config["configurable"]["thread_id"]``; user: ``configurable["user_id"]``. The run is named after
the graph (``name=`` at compile time, LangGraph's default ``LangGraph``).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import ModuleType
from typing import Any

import wrapt

from spendfuse.frameworks._runs import Identity, call_async, call_sync, iterate_async, iterate_sync

NAME = "langgraph"


def _identity(graph: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Identity:
    config = kwargs.get("config", args[1] if len(args) > 1 else None)
    run_id = user_id = None
    if isinstance(config, Mapping):
        configurable = config.get("configurable")
        configurable = configurable if isinstance(configurable, Mapping) else {}
        run_id = config.get("run_id") or configurable.get("thread_id")
        user_id = configurable.get("user_id")
    return Identity(name=getattr(graph, "name", None) or "LangGraph", run_id=run_id, user_id=user_id)


def _invoke(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    return call_sync(NAME, lambda: _identity(instance, args, kwargs), wrapped, args, kwargs, delegates=True)


def _ainvoke(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    return call_async(NAME, lambda: _identity(instance, args, kwargs), wrapped, args, kwargs, delegates=True)


def _stream(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    return iterate_sync(NAME, lambda: _identity(instance, args, kwargs), lambda: wrapped(*args, **kwargs))


def _astream(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    return iterate_async(NAME, lambda: _identity(instance, args, kwargs), lambda: wrapped(*args, **kwargs))


def patch(module: ModuleType) -> list[tuple[Any, str]]:
    pregel = module.Pregel
    patched: list[tuple[Any, str]] = []
    for attribute, wrapper in (("invoke", _invoke), ("ainvoke", _ainvoke), ("stream", _stream), ("astream", _astream)):
        wrapt.wrap_function_wrapper(pregel, attribute, wrapper)
        patched.append((pregel, attribute))
    return patched
