"""OpenAI Agents SDK: each ``Runner.run`` / ``run_sync`` / ``run_streamed`` is a spendfuse run.

``Runner``'s class methods delegate to the default ``AgentRunner``, so its three methods are
patched. ``run_sync`` drives ``run`` on an event loop: the outer one opens the run and the inner
one passes through. ``run_streamed`` returns at once and runs the agent loop in a task it creates:
the run is opened in a private context that task inherits, and ends when that task is done (the
events are then all queued, whether or not the caller consumed them).

Run id: ``run_config.trace_id`` when given, else the id of the Agents SDK trace the call runs in
(``with agents.trace(...)``); else a fresh one. User: ``run_config.trace_metadata["user_id"]``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from types import ModuleType
from typing import Any

import wrapt

from spendfuse.frameworks._runs import Identity, PrivateRun, call_async, call_sync, should_open

log = logging.getLogger("spendfuse")

NAME = "openai_agents"


def _current_trace_id() -> str | None:
    try:
        from agents.tracing import get_current_trace

        current = get_current_trace()
        trace_id = getattr(current, "trace_id", None) if current is not None else None
        # The disabled trace's placeholder id is the same for every run: not a run id.
        return trace_id if isinstance(trace_id, str) and trace_id not in ("", "no-op") else None
    except Exception:
        return None


def _identity(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Identity:
    agent = args[0] if args else kwargs.get("starting_agent")
    run_config = kwargs.get("run_config")
    metadata = getattr(run_config, "trace_metadata", None)
    user_id = metadata.get("user_id") if isinstance(metadata, Mapping) else None
    run_id = getattr(run_config, "trace_id", None) or _current_trace_id()
    return Identity(name=getattr(agent, "name", None) or "agent", run_id=run_id, user_id=user_id)


def _run(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    return call_async(NAME, lambda: _identity(args, kwargs), wrapped, args, kwargs)


def _run_sync(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    return call_sync(NAME, lambda: _identity(args, kwargs), wrapped, args, kwargs, delegates=True)


def _run_streamed(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if not should_open(NAME):
        return wrapped(*args, **kwargs)
    private = PrivateRun(lambda: _identity(args, kwargs))
    try:
        result = private.call(wrapped, *args, **kwargs)
    except BaseException as error:
        private.finish(error)
        raise
    task = getattr(result, "run_loop_task", None)
    if task is None or not hasattr(task, "add_done_callback"):
        log.debug("spendfuse: no agent loop task on %r; its run ends now", type(result))
        private.finish(None)
        return result

    def done(finished: Any) -> None:
        error = None if finished.cancelled() else finished.exception()
        # The loop stores its failure for stream_events() to raise; the result keeps it too.
        stored = getattr(result, "_stored_exception", None)
        private.finish(error or (stored if isinstance(stored, BaseException) else None))

    task.add_done_callback(done)
    return result


def patch(module: ModuleType) -> list[tuple[Any, str]]:
    runner = module.AgentRunner
    wrapt.wrap_function_wrapper(runner, "run", _run)
    wrapt.wrap_function_wrapper(runner, "run_sync", _run_sync)
    wrapt.wrap_function_wrapper(runner, "run_streamed", _run_streamed)
    return [(runner, "run"), (runner, "run_sync"), (runner, "run_streamed")]
