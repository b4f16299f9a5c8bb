"""smolagents: each ``MultiStepAgent.run`` is a spendfuse run (``stream=True``: until the step
generator is exhausted or closed). A managed agent called by its manager opens a nested run.

smolagents has no run id or user of its own; the run is named after ``agent.name`` or the
agent's class.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import wrapt

from spendfuse.frameworks._runs import Identity, call_sync, iterate_sync

NAME = "smolagents"


def _identity(agent: Any) -> Identity:
    return Identity(name=getattr(agent, "name", None) or type(agent).__name__)


def _run(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    stream = kwargs.get("stream", args[1] if len(args) > 1 else False)
    if stream:
        return iterate_sync(NAME, lambda: _identity(instance), lambda: wrapped(*args, **kwargs))
    return call_sync(NAME, lambda: _identity(instance), wrapped, args, kwargs)


def patch(module: ModuleType) -> list[tuple[Any, str]]:
    agent_class = module.MultiStepAgent
    wrapt.wrap_function_wrapper(agent_class, "run", _run)
    return [(agent_class, "run")]
