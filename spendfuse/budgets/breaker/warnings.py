"""``warn_at``: a span event, a metric and a log record once per scope and limit.

A scope warns when ``spent + in_flight >= warn_at * limit``; the event and the log say the two
apart, because "spent 90%" and "calls in flight reserved 90%" call for different actions (the
second cures itself when the calls settle for less than their worst case).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from spendfuse.budgets import stores
from spendfuse.budgets.breaker.request import Admission, CallRequest, SpanLike
from spendfuse.budgets.messages import people_dollars
from spendfuse.telemetry import names

if TYPE_CHECKING:
    from spendfuse.runs.run import Run
    from spendfuse.telemetry.instruments import Instruments


log = logging.getLogger("spendfuse")

MICROS = 1_000_000
# A keyed scope's window is read back from the store at most this often per scope (one round trip).
USER_USAGE_REFRESH_SECONDS = 5.0


def dollars(micros: int) -> str:
    return people_dollars(micros / MICROS)


def _amount(metric: str, value: int) -> str:
    return dollars(value) if metric == "usd" else f"{value:,}"


class Warnings:
    def __init__(
        self, warn_at: float | None, instruments: Instruments, store: Callable[[], stores.BudgetStore]
    ) -> None:
        self.warn_at = warn_at
        self._instruments = instruments
        self._store = store
        self._warned: set[tuple[str, str]] = set()
        self._user_checked: dict[str, float] = {}

    def check(
        self,
        admission: Admission,
        chain: tuple[Run, ...],
        now: float,
        span: SpanLike | None,
        request: CallRequest,
    ) -> None:
        warn_at = self.warn_at
        if warn_at is None:
            return
        for scope_run in chain:
            budget = scope_run.budget
            if budget is None:
                continue
            balance = scope_run.balance
            checks = (
                ("usd", budget.usd_micros, balance.usd, balance.flight_usd),
                ("turns", budget.turns, balance.turns, balance.flight_turns),
                ("tokens", budget.tokens, balance.tokens, balance.flight_tokens),
            )
            for metric, limit, spent, in_flight in checks:
                if limit and spent + in_flight >= warn_at * limit:
                    self._warn(
                        "run", scope_run.run_id, scope_run.run_id, metric, spent, in_flight, limit, span, request
                    )
        if not admission.leased:
            return
        for scope in admission.scopes:
            last = self._user_checked.get(scope.store_key, 0.0)
            if now - last < USER_USAGE_REFRESH_SECONDS:
                continue
            self._user_checked[scope.store_key] = now
            if len(self._user_checked) > 10_000:
                self._user_checked.clear()  # many keys: a bound on memory
            try:
                usage = self._store().usage(scope.store_key, now)
            except Exception:
                continue
            for metric, limit in scope.limits.items():
                spent = usage.spent.get(metric, 0)
                in_flight = usage.in_flight.get(metric, 0)
                if limit and spent + in_flight >= warn_at * limit:
                    self._warn(scope.name, scope.store_key, scope.key, metric, spent, in_flight, limit, span, request)

    def _warn(
        self,
        scope: str,
        scope_key: str,
        who: str,
        metric: str,
        spent: int,
        in_flight: int,
        limit: int,
        span: SpanLike | None,
        request: CallRequest,
    ) -> None:
        marker = (scope_key, metric)
        if marker in self._warned:
            return
        self._warned.add(marker)
        scale = MICROS if metric == "usd" else 1
        attributes = {
            names.BREAKER_SCOPE: scope,
            names.BREAKER_KEY: who,
            names.BREAKER_LIMIT: metric,
            names.BREAKER_LIMIT_VALUE: limit / scale,
            names.BREAKER_SPENT: spent / scale,
            names.BREAKER_IN_FLIGHT: in_flight / scale,
        }
        try:
            if span is not None:
                span.add_event(names.EVENT_BUDGET_WARNING, attributes)
            self._instruments.budget_warnings.add(
                1,
                {
                    names.METRIC_ATTR_SCOPE: scope,
                    names.METRIC_ATTR_LIMIT: metric,
                    names.GEN_AI_PROVIDER_NAME: request.provider,
                },
            )
        except Exception:
            log.debug("spendfuse: could not record a budget warning", exc_info=True)
        log.warning("spendfuse: %s", warning_message(scope, who, metric, spent, in_flight, limit, self.warn_at))


def warning_message(
    scope: str, who: str, metric: str, spent: int, in_flight: int, limit: int, warn_at: float | None
) -> str:
    budget = f"{dollars(limit)} usd" if metric == "usd" else f"{limit:,} {metric}"
    text = f"{scope} {who!r} has spent {_amount(metric, spent)} of its {budget} budget"
    if in_flight:
        text += f", and calls in flight have reserved {_amount(metric, in_flight)} more"
    return f"{text} (warn_at={warn_at:g})" if warn_at is not None else text
