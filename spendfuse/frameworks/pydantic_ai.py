"""pydantic-ai: each agent run is a spendfuse run.

Every public entry point (``run``, ``run_sync``, ``run_stream``, ``run_stream_events``, ``iter``)
goes through ``Agent.iter``, an async context manager that stays open until the run's graph is
done or its stream context exits, so patching it alone gives one run per invocation, streams
included. The run takes pydantic-ai's own run id (``run_id=`` or the one it generates) and
``metadata["user_id"]`` when the caller passed a mapping.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import ModuleType
from typing import Any

import wrapt
from opentelemetry import trace

from spendfuse.frameworks._runs import Identity, RunningAsyncContext, should_open
from spendfuse.runs.run import Run
from spendfuse.telemetry import names

NAME = "pydantic_ai"


def _identity(agent: Any, kwargs: Mapping[str, Any]) -> Identity:
    metadata = kwargs.get("metadata")
    user_id = metadata.get("user_id") if isinstance(metadata, Mapping) else None
    return Identity(name=getattr(agent, "name", None) or "agent", run_id=kwargs.get("run_id"), user_id=user_id)


def _adopt(the_run: Run, agent_run: Any) -> None:
    # pydantic-ai generates its run id inside iter(); take it so both tools name the run alike.
    framework_id = getattr(agent_run, "run_id", None)
    if not isinstance(framework_id, str) or not framework_id or framework_id == the_run.run_id:
        return
    provisional, the_run.run_id = the_run.run_id, framework_id
    if the_run.span is not None:
        the_run.span.set_attribute(names.RUN_ID, framework_id)
    # pydantic-ai's own agent span (its instrumentation on) started inside iter(), before its id
    # was known, and was stamped with the provisional one: it is still live, so restamp it.
    current = trace.get_current_span()
    attributes = getattr(current, "attributes", None) or {}
    if current.is_recording() and attributes.get(names.RUN_ID) == provisional:
        current.set_attribute(names.RUN_ID, framework_id)


def _iter(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    inner = wrapped(*args, **kwargs)
    if not should_open(NAME):
        return inner
    return RunningAsyncContext(inner, lambda: _identity(instance, kwargs), NAME, _adopt)


def patch(module: ModuleType) -> list[tuple[Any, str]]:
    agent_class = module.Agent
    wrapt.wrap_function_wrapper(agent_class, "iter", _iter)
    return [(agent_class, "iter")]
