"""``warn_at``: a span event, a metric and a log record once per scope and limit."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from spendfuse.budgets import stores
from spendfuse.budgets.breaker.request import Admission, CallRequest, SpanLike
from spendfuse.budgets.breaker.scopes import UserScope
from spendfuse.telemetry import names

if TYPE_CHECKING:
    from spendfuse.runs.run import Run
    from spendfuse.telemetry.instruments import Instruments

log = logging.getLogger("spendfuse")

MICROS = 1_000_000
# A user's window is read back from the store at most this often per user (one round trip).
USER_USAGE_REFRESH_SECONDS = 5.0


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
        user: UserScope | None,
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
                ("usd", budget.usd_micros, balance.usd + balance.flight_usd),
                ("turns", budget.turns, balance.turns + balance.flight_turns),
                ("tokens", budget.tokens, balance.tokens + balance.flight_tokens),
            )
            for metric, limit, used in checks:
                if limit and used >= warn_at * limit:
                    self._warn("run", scope_run.run_id, scope_run.run_id, metric, used, limit, span, request)
        if user is not None and admission.user_leased:
            last = self._user_checked.get(user.key, 0.0)
            if now - last < USER_USAGE_REFRESH_SECONDS:
                return
            self._user_checked[user.key] = now
            try:
                usage = self._store().usage(user.key, now)
            except Exception:
                return
            for metric, limit in user.limits.items():
                used = usage.spent.get(metric, 0) + usage.in_flight.get(metric, 0)
                if limit and used >= warn_at * limit:
                    self._warn("user", user.key, user.user_id, metric, used, limit, span, request)

    def _warn(
        self,
        scope: str,
        scope_key: str,
        who: str,
        metric: str,
        used: int,
        limit: int,
        span: SpanLike | None,
        request: CallRequest,
    ) -> None:
        marker = (scope_key, metric)
        if marker in self._warned:
            return
        self._warned.add(marker)
        shown_used = used / MICROS if metric == "usd" else used
        shown_limit = limit / MICROS if metric == "usd" else limit
        attributes = {
            names.BREAKER_SCOPE: scope,
            names.BREAKER_KEY: who,
            names.BREAKER_LIMIT: metric,
            names.BREAKER_LIMIT_VALUE: shown_limit,
            names.BREAKER_SPENT: shown_used,
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
        log.warning(
            "spendfuse: %s %r has used %s of its %s %s budget (warn_at=%s)",
            scope, who, shown_used, shown_limit, metric, self.warn_at,
        )
