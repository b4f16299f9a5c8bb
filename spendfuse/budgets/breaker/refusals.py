"""Refusing a call: the error, the on_exceeded hook, the trip (once per run and limit), hard stops.

A framework that retries a refusal (LangChain ``with_retry``, LiteLLM ``num_retries``, tenacity)
must not turn one stop into a trip storm. The first refusal of a run for a scope, key and limit is
a trip (the ``spendfuse.breaker.trips`` metric, the span event); later ones in the same run are
*repeated* refusals: the span says ``spendfuse.breaker.repeated``, the error ``repeated=True``,
and no trip is counted.

A refusal waiting cannot cure is a *hard stop* of the run whose budget refused: its wall clock or
repeated tool calls are past their limit (both only grow), or its settled spend alone has reached
a turns, usd or tokens limit (a run's spend never goes down, and every call costs something). A
call refused for its own size is not a stop: a smaller one may still fit. Once a run is hard-stopped,
its further calls are refused at once, before any estimate or store round trip. User windows are
never hard stops: the next window cures them.
"""

from __future__ import annotations

import copy
import logging
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opentelemetry.trace import Status, StatusCode

from spendfuse.budgets.breaker.request import CallRequest, Denied, SpanLike
from spendfuse.budgets.critical import GuardedLock
from spendfuse.budgets.messages import budget_error
from spendfuse.errors import BudgetExceeded
from spendfuse.telemetry import names

if TYPE_CHECKING:
    from spendfuse.config.settings import Settings
    from spendfuse.runs.run import Run
    from spendfuse.telemetry.instruments import Instruments

log = logging.getLogger("spendfuse")

BREAKER_REPEATED = "spendfuse.breaker.repeated"


@dataclass(slots=True)
class _RunStops:
    tripped: set[tuple[str, str, str]] = field(default_factory=set)  # (scope, key, limit) counted once
    hard: BudgetExceeded | None = None


class Refusals:
    def __init__(self, settings: Settings, instruments: Instruments) -> None:
        self.settings = settings
        self.instruments = instruments
        self._runs: weakref.WeakKeyDictionary[Run, _RunStops] = weakref.WeakKeyDictionary()
        self._lock = GuardedLock()
        self.any_hard_stop = False  # until a run is hard-stopped, admission skips the check

    # -- errors ------------------------------------------------------------------------------

    @staticmethod
    def error(denied: Denied, request: CallRequest, max_tokens: int, the_run: Run | None) -> BudgetExceeded:
        return budget_error(
            scope=denied.scope,
            key=denied.key,
            limit=denied.metric,
            limit_value=denied.limit,
            spent=denied.spent,
            in_flight=denied.in_flight,
            requested=denied.requested,
            model=request.model,
            max_tokens=max_tokens,
            run_id=the_run.run_id if the_run else None,
            user_id=the_run.user_id if the_run else None,
            window=denied.window,
            window_resets_at=denied.window_end,
        )

    # -- hard stops --------------------------------------------------------------------------

    def hard_stop(self, the_run: Run | None) -> BudgetExceeded | None:
        """The stop of a run of the caller's chain, if one is hard-stopped."""
        if the_run is None:
            return None
        for scope_run in the_run.chain:
            if scope_run.tripped is None:  # never tripped: cannot be stopped (and no weakref made)
                continue
            stops = self._runs.get(scope_run)
            if stops is not None and stops.hard is not None:
                return stops.hard
        return None

    def refuse_stopped(self, request: CallRequest, the_run: Run | None, span: SpanLike | None) -> None:
        """Refuse at once a call of a hard-stopped run. With an on_exceeded hook, every refusal
        goes the full way (the hook may approve an extension)."""
        if self.settings.on_exceeded is not None:
            return
        stop = self.hard_stop(the_run)
        if stop is None:
            return
        error = copy.copy(stop)  # a fresh object: no shared traceback between raises
        error.repeated = True
        self._record_repeat(error, span)
        raise error

    # -- refusing ------------------------------------------------------------------------------

    def refuse(
        self, error: BudgetExceeded, request: CallRequest, the_run: Run | None, span: SpanLike | None, *, hard: bool
    ) -> None:
        """Return if the on_exceeded hook approves the overrun; otherwise record and raise ``error``."""
        if self.approve(error, span):
            return
        if self._first(error, the_run, hard):
            self._trip(error, request, the_run, span)
        else:
            error.repeated = True
            self._record_repeat(error, span)
        raise error

    def approve(self, error: BudgetExceeded, span: SpanLike | None) -> bool:
        hook = self.settings.on_exceeded
        if hook is None:
            return False
        try:
            approved = hook(error) is True
        except Exception:
            log.warning("spendfuse: on_exceeded raised; refusing the call", exc_info=True)
            return False
        if approved and span is not None:
            span.set_attribute(names.BREAKER_APPROVED, True)
            span.add_event(names.EVENT_BREAKER_APPROVED, trip_attributes(error))
        return approved

    def _first(self, error: BudgetExceeded, the_run: Run | None, hard: bool) -> bool:
        """Note the refusal on the run it belongs to; True when it is that run's first for the limit."""
        if the_run is None:
            return True
        owner = the_run
        if error.scope == "run":
            owner = next((r for r in the_run.chain if r.run_id == error.key), the_run)
        marker = (error.scope, error.key, error.limit)
        with self._lock:
            stops = self._runs.get(owner)
            if stops is None:
                stops = self._runs[owner] = _RunStops()
            first = marker not in stops.tripped
            stops.tripped.add(marker)
            if hard and stops.hard is None:
                stops.hard = error
                self.any_hard_stop = True
        return first

    def _trip(self, error: BudgetExceeded, request: CallRequest, the_run: Run | None, span: SpanLike | None) -> None:
        if the_run is not None:
            the_run.trip(error)  # and every parent up to the run whose budget refused the call
        try:
            self.instruments.breaker_trips.add(
                1,
                {
                    names.METRIC_ATTR_SCOPE: error.scope,
                    names.METRIC_ATTR_LIMIT: error.limit,
                    names.GEN_AI_PROVIDER_NAME: request.provider,
                    names.GEN_AI_REQUEST_MODEL: request.model,
                },
            )
            if span is not None:
                span.add_event(names.EVENT_BREAKER_TRIPPED, trip_attributes(error))
                span.set_attribute(names.BREAKER_TRIPPED, True)
                span.set_attribute(names.ERROR_TYPE, type(error).__qualname__)
                span.set_status(Status(StatusCode.ERROR, error.message))
            log.warning("spendfuse: %s", error.message)
        except Exception:
            log.debug("spendfuse: could not record a breaker trip", exc_info=True)

    @staticmethod
    def _record_repeat(error: BudgetExceeded, span: SpanLike | None) -> None:
        try:
            if span is not None:
                span.set_attribute(BREAKER_REPEATED, True)
                for key, value in _limit_attributes(error).items():
                    span.set_attribute(key, value)
                span.set_attribute(names.ERROR_TYPE, type(error).__qualname__)
                span.set_status(Status(StatusCode.ERROR, error.message))
            log.debug("spendfuse: refused again: %s", error.message)
        except Exception:
            log.debug("spendfuse: could not record a repeated refusal", exc_info=True)


def trip_attributes(error: BudgetExceeded) -> dict[str, Any]:
    attributes = _limit_attributes(error)
    if error.window is not None:
        attributes[names.BREAKER_WINDOW] = error.window
    if error.window_resets_at is not None:
        attributes[names.BREAKER_WINDOW_RESETS_AT] = error.window_resets_at.isoformat()
    return attributes


def _limit_attributes(error: BudgetExceeded) -> dict[str, Any]:
    return {
        names.BREAKER_SCOPE: error.scope,
        names.BREAKER_KEY: error.key,
        names.BREAKER_LIMIT: error.limit,
        names.BREAKER_LIMIT_VALUE: float(error.limit_value),
        names.BREAKER_SPENT: float(error.spent),
        names.BREAKER_IN_FLIGHT: float(error.in_flight),
        names.BREAKER_REQUESTED: float(error.requested),
    }
