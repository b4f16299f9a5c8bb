"""``spendfuse.run``: one agent task, one trace, one budget.

A run is a context manager (sync and async) and a decorator. It starts an ``invoke_agent {name}``
span (a new trace for a top-level run, linked to whatever span was current; a child span for a
nested run), makes itself the current run for the calling context, and at exit stamps what it
spent and how it ended.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from contextvars import ContextVar, Token
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar, cast

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode

from spendfuse import runtime
from spendfuse.budgets import critical
from spendfuse.budgets.budget import Budget
from spendfuse.errors import BudgetExceeded, ConfigError
from spendfuse.runs.balance import MICROS, Balance, Remaining, Spent
from spendfuse.telemetry import names

if TYPE_CHECKING:
    from spendfuse.budgets.estimate import PrefixMemo
    from spendfuse.budgets.usage import TokenUsage

log = logging.getLogger("spendfuse")

_CURRENT: ContextVar[Run | None] = ContextVar("spendfuse_run", default=None)

F = TypeVar("F", bound=Callable[..., Any])

_OUTCOME_ATTRIBUTES = {
    outcome: {names.METRIC_ATTR_OUTCOME: outcome}
    for outcome in (names.OUTCOME_COMPLETED, names.OUTCOME_TRIPPED, names.OUTCOME_ERROR)
}


def current_run() -> Run | None:
    """The run of the calling context, or None."""
    return _CURRENT.get()


class Run:
    """A live run. Created by ``spendfuse.run``; read ``spent``, ``remaining``, ``link``."""

    def __init__(
        self,
        run_id: str,
        *,
        user_id: str | None,
        name: str,
        budget: Budget | None,
        parent: Run | None,
        scopes: Mapping[str, str] | None = None,
    ) -> None:
        self.run_id = run_id
        self.user_id = user_id
        # The run's keyed scopes ("user" included): what its calls reserve on besides the runs.
        keyed = dict(scopes or {})
        if user_id is not None:
            keyed["user"] = user_id
        self.scopes: dict[str, str] = keyed
        # ``spendfuse.scope.<name>`` for every keyed scope but user (``user.id`` already says it).
        self.scope_attributes: dict[str, str] = {
            names.SCOPE_PREFIX + name: key for name, key in sorted(keyed.items()) if name != "user"
        }
        self.name = name
        self.budget = budget
        self.parent = parent
        self.balance = Balance()
        self.started = time.monotonic()
        self.started_at = time.time()
        self.trace_id = ""
        self.span: Span | None = None
        self.outcome: str | None = None
        # The error that stopped this run (``trip``); read-only for other modules.
        self.tripped: BudgetExceeded | None = None
        # Tool-call signature -> how often the model requested it (the repeats limit; written by
        # ``note_tool_calls`` under ``lock``).
        self.tool_requests: dict[str, int] = {}
        self.lock = threading.Lock()
        # The estimator's memory of this run's conversations: ``prefix_memo()`` creates it.
        self.memo: PrefixMemo | None = None
        self.chain: tuple[Run, ...] = (self,) if parent is None else (self, *parent.chain)

    # -- state the call path and the breaker update ------------------------------------------

    def prefix_memo(self) -> PrefixMemo:
        """The estimator's memory of this run's conversations, created on first use."""
        memo = self.memo
        if memo is None:
            from spendfuse.budgets.estimate import PrefixMemo

            with self.lock:
                memo = self.memo
                if memo is None:
                    memo = self.memo = PrefixMemo()
        return memo

    def note_tool_calls(self, signatures: Iterable[str]) -> None:
        """The model requested these tool calls: counted on this run and every parent (repeats)."""
        signatures = tuple(signatures)
        if not signatures:
            return
        for scope_run in self.chain:
            with scope_run.lock:
                requests = scope_run.tool_requests
                for signature in signatures:
                    requests[signature] = requests.get(signature, 0) + 1

    def most_repeated(self) -> int:
        """How often the most requested tool call of this run was requested."""
        with self.lock:
            return max(self.tool_requests.values(), default=0)

    def note_call(
        self,
        api: str,
        body: Mapping[str, Any],
        tool_calls: Iterable[str],
        usage: TokenUsage | None,
        estimated: bool,
    ) -> None:
        """A settled call of this run: count its tool requests, remember its exact input size."""
        self.note_tool_calls(tool_calls)
        memo = self.memo
        if memo is not None and usage is not None and not estimated:
            memo.remember(api, body, usage.input_tokens)

    def trip(self, error: BudgetExceeded) -> None:
        """A budget stopped this run: it trips, and every parent up to the run whose budget it was.

        A parent whose budget stopped a child must not end "completed"; a user-scope trip stops
        only this run.
        """
        for scope_run in self.chain:
            scope_run.tripped = error
            if error.scope != "run" or scope_run.run_id == error.key:
                break

    @property
    def spent(self) -> Spent:
        return Spent.of(self.balance)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def remaining(self) -> Remaining:
        budget = self.budget or Budget()
        spent = self.spent
        return Remaining(
            usd=None if budget.usd_micros is None else max(0, budget.usd_micros - spent.usd_micros) / MICROS,
            turns=None if budget.turns is None else max(0, budget.turns - spent.turns),
            tokens=None if budget.tokens is None else max(0, budget.tokens - spent.tokens),
            seconds=None if budget.seconds is None else max(0.0, budget.seconds - self.elapsed),
        )

    @property
    def link(self) -> str | None:
        """The Grafana run view of this run, when ``SPENDFUSE_GRAFANA_URL`` (or grafana_url) is set."""
        try:
            from spendfuse.telemetry.links import run_view_url

            active = runtime.current()
            base = active.settings.grafana_url if active is not None else None
            return run_view_url(self.run_id, base)
        except Exception:
            return None

    def __repr__(self) -> str:
        return f"<Run {self.run_id!r} user={self.user_id!r} spent=${self.balance.usd / MICROS:.6f}>"


class run:
    """Run an agent task: ``with spendfuse.run("ticket-42", user_id="alice") as r: ...``.

    Also ``async with``, and ``@spendfuse.run(user_id=...)`` on sync or async functions (each call
    is a new run; without an explicit ``run_id`` each gets a fresh one).
    """

    def __init__(
        self,
        run_id: str | None = None,
        *,
        user_id: str | None = None,
        name: str | None = None,
        budget: Budget | None = None,
        scopes: Mapping[str, object] | None = None,
    ) -> None:
        if run_id is not None and not isinstance(run_id, str):
            run_id = str(run_id)
        if user_id is not None and not isinstance(user_id, str):
            user_id = str(user_id)
        keyed = _check_scopes(scopes)
        if "user" in keyed:
            if user_id is not None and user_id != keyed["user"]:
                raise ConfigError(
                    f"run(user_id={user_id!r}, scopes={{'user': {keyed['user']!r}}}): two different users; "
                    "user_id= is the spelling of scopes['user'], give one of them"
                )
            user_id = keyed.pop("user")
        self._scopes = keyed
        if budget is not None and not isinstance(budget, Budget):
            budget = Budget.from_mapping(budget, source="run(budget=...)")
        self._run_id = run_id
        self._user_id = user_id
        self._name = name
        self._budget = budget
        self._stack: list[tuple[Run, Token[Run | None], object]] = []

    # -- context manager -------------------------------------------------------------------

    def __enter__(self) -> Run:
        return self._start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._finish(exc)

    async def __aenter__(self) -> Run:
        return self._start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._finish(exc)

    # -- decorator -------------------------------------------------------------------------

    def __call__(self, fn: F) -> F:
        def fresh() -> run:
            return run(
                self._run_id,
                user_id=self._user_id,
                name=self._name or fn.__name__,
                budget=self._budget,
                scopes=self._scopes,
            )

        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                async with fresh():
                    return await fn(*args, **kwargs)

            return cast(F, async_wrapper)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with fresh():
                return fn(*args, **kwargs)

        return cast(F, wrapper)

    # -- lifecycle -------------------------------------------------------------------------

    def _start(self) -> Run:
        parent = _CURRENT.get()
        active = runtime.current()
        budget = self._budget
        if budget is None and active is not None and parent is None:
            budget = active.settings.run_budget
        user_id = self._user_id if self._user_id is not None else (parent.user_id if parent else None)
        name = self._name or "agent"
        # A nested run inherits its parent's scope keys and may add or override some.
        scopes = {**parent.scopes, **self._scopes} if parent is not None else dict(self._scopes)
        scopes.pop("user", None)
        the_run = Run(
            self._run_id or uuid.uuid4().hex,
            user_id=user_id,
            name=name,
            budget=budget,
            parent=parent,
            scopes=scopes,
        )
        attributes: dict[str, Any] = {
            names.GEN_AI_OPERATION_NAME: names.OPERATION_INVOKE_AGENT,
            names.GEN_AI_AGENT_NAME: name,
            names.RUN_ID: the_run.run_id,
            names.RUN_NAME: name,
        }
        if user_id is not None:
            attributes[names.USER_ID] = user_id
        if parent is not None:
            attributes[names.PARENT_RUN_ID] = parent.run_id
        attributes.update(the_run.scope_attributes)
        try:
            tracer = runtime.tracer()
            if parent is None:
                # One trace per run: a top-level run starts a new trace, linked to the caller's span.
                outer = trace.get_current_span().get_span_context()
                links = [Link(outer)] if outer.is_valid else None
                span = tracer.start_span(
                    f"{names.OPERATION_INVOKE_AGENT} {name}",
                    context=otel_context.Context(),
                    kind=SpanKind.INTERNAL,
                    attributes=attributes,
                    links=links,
                )
            else:
                span = tracer.start_span(
                    f"{names.OPERATION_INVOKE_AGENT} {name}", kind=SpanKind.INTERNAL, attributes=attributes
                )
            the_run.span = span
            span_context = span.get_span_context()
            if span_context.is_valid:
                the_run.trace_id = format(span_context.trace_id, "032x")
            otel_token: object = otel_context.attach(trace.set_span_in_context(span))
        except Exception:
            log.debug("spendfuse: could not start the run span", exc_info=True)
            otel_token = None
        token = _CURRENT.set(the_run)
        self._stack.append((the_run, token, otel_token))
        return the_run

    def _finish(self, exc: BaseException | None) -> None:
        # Streams the collector dropped inside the block were deferred (spendfuse.budgets.critical):
        # settle them now, a safe point in the caller's code, so the run ends with all its spend.
        critical.drain()
        the_run, token, otel_token = self._stack.pop()
        try:
            _CURRENT.reset(token)
        except ValueError:  # exited in another context (a generator finalized elsewhere)
            _CURRENT.set(the_run.parent)
        if the_run.tripped is not None or isinstance(exc, BudgetExceeded):
            outcome = names.OUTCOME_TRIPPED
        elif exc is not None and not isinstance(exc, GeneratorExit):
            outcome = names.OUTCOME_ERROR
        else:
            outcome = names.OUTCOME_COMPLETED
        the_run.outcome = outcome
        try:
            _end_run_span(the_run, outcome, exc)
        except Exception:
            log.debug("spendfuse: could not end the run span", exc_info=True)
        if otel_token is not None:
            with contextlib.suppress(Exception):
                otel_context.detach(otel_token)  # type: ignore[arg-type]
        active = runtime.current()
        if active is not None:
            try:
                active.instruments.runs.add(1, _OUTCOME_ATTRIBUTES.get(outcome) or {names.METRIC_ATTR_OUTCOME: outcome})
            except Exception:
                log.debug("spendfuse: could not count the run", exc_info=True)


# Scopes whose key each call gives (its model, its provider), never a run.
_CALL_SCOPES = frozenset({"model", "provider"})


def _check_scopes(scopes: Mapping[str, object] | None) -> dict[str, str]:
    """``scopes={"team": "search", "org": "acme"}``: names are identifiers, keys non-empty strings."""
    from spendfuse.config.user_budgets import check_scope_name

    if scopes is None:
        return {}
    if not isinstance(scopes, Mapping):
        raise ConfigError(
            f"run(scopes={scopes!r}): accepted: a mapping of scope name -> key, e.g. {{'team': 'search'}}"
        )
    keyed: dict[str, str] = {}
    for name, key in scopes.items():
        check_scope_name(name, f"run(scopes=...)[{name!r}]")
        if name in _CALL_SCOPES:
            raise ConfigError(
                f"run(scopes=...)[{name!r}]: the {name} scope takes its key from each call (the request's "
                f"{name}), not from a run; remove it from scopes"
            )
        if isinstance(key, bool) or not isinstance(key, (str, int)) or str(key) == "":
            raise ConfigError(f"run(scopes=...)[{name!r}]: {key!r}; accepted: a non-empty string key")
        keyed[name] = str(key)
    return keyed


def _end_run_span(the_run: Run, outcome: str, exc: BaseException | None) -> None:
    span = the_run.span
    if span is None:
        return
    spent = the_run.spent
    span.set_attribute(names.SPENT_USD, spent.usd)
    span.set_attribute(names.SPENT_TURNS, spent.turns)
    span.set_attribute(names.SPENT_TOKENS, spent.tokens)
    span.set_attribute(names.OUTCOME, outcome)
    budget = the_run.budget
    if budget is not None:
        for attribute, value in (
            (names.BUDGET_USD, budget.usd),
            (names.BUDGET_TURNS, budget.turns),
            (names.BUDGET_TOKENS, budget.tokens),
            (names.BUDGET_SECONDS, budget.seconds),
            (names.BUDGET_REPEATS, budget.repeats),
        ):
            if value is not None:
                span.set_attribute(attribute, value)
    if outcome == names.OUTCOME_ERROR and exc is not None:
        span.set_attribute(names.ERROR_TYPE, type(exc).__qualname__)
        span.set_status(Status(StatusCode.ERROR, str(exc)[:200]))
    elif outcome == names.OUTCOME_TRIPPED:
        tripped = the_run.tripped or exc
        span.set_status(Status(StatusCode.ERROR, "budget breaker tripped"))
        if tripped is not None:
            span.set_attribute(names.ERROR_TYPE, type(tripped).__qualname__)
    span.end()
