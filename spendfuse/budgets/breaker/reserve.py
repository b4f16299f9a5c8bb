"""Reservation: the worst case on the run chain (in process, one lock) and every keyed scope (store).

All or nothing: the run chain is checked and reserved under ``RUN_LOCK``, then every keyed scope
(user, team, org, model, ...) in one store call, one lease over all of them; when the store refuses
(or fails closed) the run reservation is taken back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from spendfuse.budgets import stores
from spendfuse.budgets.breaker.leases import lease_ids
from spendfuse.budgets.breaker.request import Admission, Denied
from spendfuse.budgets.breaker.scopes import Scope
from spendfuse.errors import BudgetStoreUnavailable
from spendfuse.runs.balance import RUN_LOCK
from spendfuse.telemetry import names

if TYPE_CHECKING:
    from spendfuse.config.settings import Settings
    from spendfuse.runs.run import Run
    from spendfuse.telemetry.instruments import Instruments

log = logging.getLogger("spendfuse")


def reserve_runs(admission: Admission, chain: tuple[Run, ...]) -> Denied | None:
    """Check every limit of every run of ``chain``, then reserve on all of them, under one lock."""
    usd, tokens = admission.reserved_usd, admission.reserved_tokens
    with RUN_LOCK:
        for scope_run in chain:
            budget = scope_run.budget
            if budget is None:
                continue
            balance = scope_run.balance
            limit = budget.usd_micros
            if limit is not None and balance.usd + balance.flight_usd + usd > limit:
                return Denied("run", scope_run.run_id, "usd", limit, balance.usd, balance.flight_usd, usd)
            limit = budget.turns
            if limit is not None and balance.turns + balance.flight_turns + 1 > limit:
                return Denied("run", scope_run.run_id, "turns", limit, balance.turns, balance.flight_turns, 1)
            limit = budget.tokens
            if limit is not None and balance.tokens + balance.flight_tokens + tokens > limit:
                return Denied("run", scope_run.run_id, "tokens", limit, balance.tokens, balance.flight_tokens, tokens)
        for scope_run in chain:
            scope_run.balance.reserve(usd, 1, tokens)
    return None


def force_runs(admission: Admission, chain: Iterable[Run]) -> None:
    """An approved overrun: in flight everywhere, no limit checked."""
    with RUN_LOCK:
        for scope_run in chain:
            scope_run.balance.reserve(admission.reserved_usd, 1, admission.reserved_tokens)


def unreserve_runs(admission: Admission, chain: Iterable[Run]) -> None:
    with RUN_LOCK:
        for scope_run in chain:
            scope_run.balance.unreserve(admission.reserved_usd, 1, admission.reserved_tokens)


class ScopeReservations:
    """One lease over every keyed scope of a call in the configured store, and the store-failure policy."""

    def __init__(
        self,
        settings: Settings,
        instruments: Instruments,
        store: Callable[[], stores.BudgetStore],
        on_reserved: Callable[[Sequence[Scope]], None],
    ) -> None:
        self.settings = settings
        self.instruments = instruments
        self._store = store
        self._on_reserved = on_reserved
        self._outage_logged = False

    def reserve(self, admission: Admission, scopes: Sequence[Scope], now: float, *, check: bool) -> Denied | None:
        lease_id = lease_ids.next()
        try:
            denial = self._store().reserve(
                lease_id,
                [self._request(scope, admission, check) for scope in scopes],
                now + self.settings.lease_seconds,
                now,
            )
        except Exception as exc:
            self.failed(admission, exc)
            return None
        self._outage_logged = False  # the store answered: the next outage is logged again
        self._on_reserved(scopes)
        if denial is not None:
            scope = next((s for s in scopes if s.store_key == denial.key), scopes[0])
            return Denied(
                scope.name,
                scope.key,
                denial.metric,
                denial.limit,
                denial.spent,
                denial.in_flight,
                denial.requested,
                scope.budget.window,
                scope.window_end,
            )
        admission.lease_id = lease_id
        admission.scopes = tuple(scopes)
        admission.user_key = next((s.store_key for s in scopes if s.name == "user"), None)
        admission.leased = True
        return None

    @staticmethod
    def _request(scope: Scope, admission: Admission, check: bool) -> stores.ScopeRequest:
        usd, tokens = admission.reserved_usd, admission.reserved_tokens
        cached = scope.cached_request
        if check and cached is not None:
            amounts = cached.amounts
            if amounts[stores.USD] == usd and amounts[stores.TOKENS] == tokens:
                return cached
        request = stores.ScopeRequest(
            key=scope.store_key,
            limits=scope.limits if check else {},
            amounts={stores.USD: usd, stores.TURNS: 1, stores.TOKENS: tokens},
            expires_at=scope.expires_at,
        )
        if check:
            scope.cached_request = request
        return request

    def settle(self, admission: Admission, usage_tokens: int, cost: int) -> None:
        try:
            self._store().settle(
                admission.lease_id, {stores.USD: cost, stores.TURNS: 1, stores.TOKENS: usage_tokens}, time.time()
            )
        except Exception as exc:
            # The lease will expire and be charged at its reserved amount: never lost.
            self.instruments.store_errors.add(1, {names.METRIC_ATTR_REASON: "settle"})
            log.warning("spendfuse: could not settle lease %s (%s); it will expire", admission.lease_id, exc)

    def failed(self, admission: Admission, exc: Exception, source: str | None = None) -> None:
        """The store (or a scope's budget callable) failed: admit (open) or refuse (closed)."""
        reason = "unavailable" if isinstance(exc, stores.StoreUnavailableError) else "error"
        store = f"budget store {stores.redacted_url(self.settings.store)!r}"
        if self.settings.store_failure == "open":
            self.instruments.store_errors.add(1, {names.METRIC_ATTR_REASON: "fail_open"})
            if not self._outage_logged:
                self._outage_logged = True
                log.warning("spendfuse: %s failed (%s); admitting calls (store_failure=open)", source or store, exc)
            admission.fail_open = True
            return
        self.instruments.store_errors.add(1, {names.METRIC_ATTR_REASON: reason})
        problem = f"{source} failed" if source else f"{store} did not answer"
        raise BudgetStoreUnavailable(
            f"{problem} ({exc}); refusing the call because store_failure='closed' "
            "(set SPENDFUSE_STORE_FAILURE=open to admit calls during an outage)"
        ) from exc
