"""The breaker: admit a call only if its worst case fits every budget it touches.

Admission reserves the call's worst case (input estimate + max output x choices at the output
rate; one turn; input + max output tokens) on the current run and its parents (in process, under
one lock) and on every keyed scope the call touches (user, team, org, model, ... windows, in one
store call on one lease), all or nothing, with ``spent + in_flight + request <= limit`` everywhere.
Settlement replaces the reservation with the reported usage. Every number is an integer: micro-dollars for money.

The pieces, one concern each: ``request`` (the data), ``scopes`` (keyed scope windows), ``checks`` (run
clock and loops), ``reserve`` (reservation and the store policy), ``refusals`` (errors, trips,
hard stops), ``warnings`` (warn_at), ``gauges`` (scope-window gauges), ``leases`` (lease ids).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from spendfuse.budgets import critical, stores
from spendfuse.budgets.breaker import attempts
from spendfuse.budgets.breaker.checks import PastLimit, past_run_limit
from spendfuse.budgets.breaker.gauges import GaugeUsers
from spendfuse.budgets.breaker.refusals import Refusals
from spendfuse.budgets.breaker.request import Admission, CallRequest, Denied, SpanLike
from spendfuse.budgets.breaker.reserve import (
    ScopeReservations,
    force_runs,
    reserve_runs,
    unreserve_runs,
)
from spendfuse.budgets.breaker.scopes import Scope, Scopes, scope_resolvers
from spendfuse.budgets.breaker.warnings import Warnings
from spendfuse.budgets.critical import GuardedLock
from spendfuse.budgets.estimate import estimate_input_tokens
from spendfuse.budgets.messages import budget_error
from spendfuse.budgets.pricing import PriceBook, Rates
from spendfuse.budgets.usage import TokenUsage
from spendfuse.errors import UnpricedModelError
from spendfuse.runs.balance import RUN_LOCK

if TYPE_CHECKING:
    from spendfuse.config.settings import Settings
    from spendfuse.runs.run import Run
    from spendfuse.telemetry.instruments import Instruments

PENDING = critical.PENDING


class Breaker:
    def __init__(
        self,
        settings: Settings,
        prices: PriceBook,
        instruments: Instruments,
        store: stores.BudgetStore | None = None,
    ) -> None:
        self.settings = settings
        self.prices = prices
        self.instruments = instruments
        self._store = store
        self._store_lock = GuardedLock()
        self._scopes = Scopes(scope_resolvers(settings.user_budget, settings.budgets))
        self._gauges = GaugeUsers(lambda: self.store, settings.metric_scopes)
        self._warnings = Warnings(settings.warn_at, instruments, lambda: self.store)
        self._refusals = Refusals(settings, instruments)
        self._keyed = ScopeReservations(settings, instruments, lambda: self.store, self._gauges.note)
        instruments.set_gauge_source(self._gauges.rows)

    # -- store ---------------------------------------------------------------------------------

    @property
    def store(self) -> stores.BudgetStore:
        if self._store is None:
            with self._store_lock:
                if self._store is None:
                    self._store = stores.open_store(self.settings.store, timeout=self.settings.store_timeout)
        return self._store

    def close(self) -> None:
        """Settle what is still deferred, then close the store."""
        critical.drain()
        if self._store is not None:
            self._store.close()

    @staticmethod
    def drain() -> int:
        """Run settlements deferred out of critical sections (see ``settle(deferred=True)``)."""
        return critical.drain()

    # -- admission -----------------------------------------------------------------------------

    def may_limit(self, the_run: Run | None) -> bool:
        """Whether any budget could apply to a call in ``the_run`` (a run budget, a keyed scope)."""
        return bool(self._scopes) or (the_run is not None and any(r.budget is not None for r in the_run.chain))

    def admit(self, request: CallRequest, the_run: Run | None, span: SpanLike | None) -> Admission:
        """Reserve the call's worst case or raise. Raises only deliberate spendfuse errors."""
        if PENDING:
            critical.drain()
        if self._refusals.any_hard_stop:
            self._refusals.refuse_stopped(request, the_run, span)
        now = time.time()
        chain: tuple[Run, ...] = the_run.chain if the_run is not None else ()
        unresolved: tuple[str, Exception] | None = None
        keyed: list[Scope] = []
        if self._scopes:
            keyed, unresolved = self._scopes.for_call(
                the_run.scopes if the_run is not None else None, request.provider, request.model, now
            )
        rates = self.prices.rates(
            request.provider, request.model, service_tier=request.service_tier, speed=request.speed
        )
        if rates is None and (
            any(stores.USD in scope.limits for scope in keyed)
            or any(r.budget is not None and r.budget.usd is not None for r in chain)
        ):
            raise UnpricedModelError(request.model, request.provider)
        if chain:
            past = past_run_limit(chain)
            if past is not None:
                self._refuse_past(past, request, the_run, span)
        if not chain and not keyed and unresolved is None:
            # Nothing to reserve against (telemetry only): no worst case is needed, and the input
            # estimate is left to the rare call whose provider reports no usage (-1: not made).
            return Admission(the_run, rates, -1, self._max_output(request), reserved_usd=0, reserved_tokens=0)

        memo = the_run.prefix_memo() if the_run is not None else None
        input_estimate = estimate_input_tokens(request.provider, request.api, request.model, request.body, memo)
        max_output = self._max_output(request)
        admission = Admission(
            run=the_run,
            rates=rates,
            input_estimate=input_estimate,
            max_output=max_output,
            reserved_usd=self._worst_usd(rates, request, input_estimate, max_output),
            reserved_tokens=input_estimate + max_output,
        )
        if not chain and not keyed and unresolved is None:
            # Nothing to reserve against: telemetry only. (A call outside any run may still touch
            # model and provider scopes; when their budget callable failed, the policy below decides.)
            return admission

        denied = self._reserve(admission, chain, keyed, now)
        if denied is not None and self.settings.clamp and denied.metric in ("usd", "tokens"):
            denied = self._clamp(admission, request, chain, keyed, now, denied)
        if denied is not None:
            self._refuse(denied, admission, request, the_run, span)  # raises unless approved
            if denied.scope == "run" and keyed:
                # The hook approved the run's overrun, not the keyed scopes' (a user's window was
                # never checked: runs are checked first). They are checked now, and a refusal
                # there goes to the hook in its own right.
                force_runs(admission, chain)
                try:
                    denied = self._keyed.reserve(admission, keyed, now, check=True)
                    if denied is not None:
                        self._refuse(denied, admission, request, the_run, span)
                        self._keyed.reserve(admission, keyed, now, check=False)
                except BaseException:
                    unreserve_runs(admission, chain)
                    raise
            else:
                self._force_reserve(admission, chain, keyed, now)
        if unresolved is not None:
            # Unknown scope limits are a store outage by another name, never "no limit" (and the
            # limits that resolved still held): closed refuses, open admits and counts it.
            try:
                name, exc = unresolved
                source = "the user_budget callable" if name == "user" else f"the budgets[{name!r}] callable"
                self._keyed.failed(admission, exc, source=source)
            except BaseException:
                unreserve_runs(admission, chain)
                raise
        if self._warnings.warn_at is not None:
            self._warnings.check(admission, chain, now, span, request)
        if PENDING:
            critical.drain()
        return admission

    def _refuse(
        self, denied: Denied, admission: Admission, request: CallRequest, the_run: Run | None, span: SpanLike | None
    ) -> None:
        """Refuse the call for ``denied`` (raises), unless the on_exceeded hook approves the overrun."""
        error = self._refusals.error(denied, request, admission.max_output // max(1, request.choices), the_run)
        # A run's settled spend never goes down: once it alone has reached the limit, no call
        # fits again (each costs a turn, a token, a micro-dollar). A call refused for its own
        # size is not a stop: a smaller one (lower max_tokens, as the error suggests) may fit.
        hard = denied.scope == "run" and denied.spent >= denied.limit
        self._refusals.refuse(error, request, the_run, span, hard=hard)  # raises unless approved
        admission.approved = True

    def _refuse_past(self, past: PastLimit, request: CallRequest, the_run: Run | None, span: SpanLike | None) -> None:
        error = budget_error(
            scope="run",
            key=past.run_id,
            limit=past.limit,
            limit_value=past.limit_value,
            spent=past.spent,
            in_flight=0,
            requested=1 if past.limit == "repeats" else 0,
            model=request.model,
            max_tokens=request.max_tokens,
            run_id=the_run.run_id if the_run else None,
            user_id=the_run.user_id if the_run else None,
        )
        self._refusals.refuse(error, request, the_run, span, hard=True)

    def _max_output(self, request: CallRequest) -> int:
        """The most output tokens the call can be billed for: the cap of one choice times ``n``."""
        per_choice = request.max_tokens
        if not per_choice:
            known = self.prices.max_output_tokens(request.provider, request.model)
            per_choice = known if known else self.settings.default_max_output_tokens
        return per_choice * max(1, request.choices)

    def _worst_usd(self, rates: Rates | None, request: CallRequest, input_tokens: int, max_output: int) -> int:
        if rates is None:
            return 0
        return self.prices.worst_case_micros(
            rates,
            input_tokens=input_tokens,
            max_output_tokens=max_output,
            cache_write=request.cache_write,
            cache_write_1h=request.cache_write_1h,
            tool_uses=request.tool_uses,
        )

    def _reserve(self, admission: Admission, chain: tuple[Run, ...], keyed: list[Scope], now: float) -> Denied | None:
        if chain:
            denied = reserve_runs(admission, chain)
            if denied is not None:
                return denied
        if not keyed:
            return None
        try:
            denied = self._keyed.reserve(admission, keyed, now, check=True)
        except BaseException:
            # A fail-closed store outage refuses the call: the run scopes must not keep its reservation.
            unreserve_runs(admission, chain)
            raise
        if denied is not None:
            unreserve_runs(admission, chain)
        return denied

    def _force_reserve(self, admission: Admission, chain: tuple[Run, ...], keyed: list[Scope], now: float) -> None:
        """An approved overrun: record it in flight everywhere without checking limits."""
        force_runs(admission, chain)
        if keyed:
            try:
                self._keyed.reserve(admission, keyed, now, check=False)
            except BaseException:
                unreserve_runs(admission, chain)
                raise

    def _clamp(
        self,
        admission: Admission,
        request: CallRequest,
        chain: tuple[Run, ...],
        keyed: list[Scope],
        now: float,
        denied: Denied,
    ) -> Denied | None:
        """Lower max_tokens until the worst case fits, refusing below ``clamp_floor``."""
        for _attempt in range(3):
            room = denied.limit - denied.spent - denied.in_flight
            if denied.metric == "tokens":
                fitting = room - admission.input_estimate
            else:
                fitting = self._output_tokens_within(admission, request, room)
            # max_tokens is per choice: with n choices the body's cap is the total fit divided by n.
            choices = max(1, request.choices)
            per_choice = min(fitting, admission.max_output - 1) // choices
            if per_choice < self.settings.clamp_floor:
                return denied
            fitting = per_choice * choices
            admission.max_output = fitting
            admission.reserved_usd = self._worst_usd(admission.rates, request, admission.input_estimate, fitting)
            admission.reserved_tokens = admission.input_estimate + fitting
            admission.clamped_to = per_choice
            again = self._reserve(admission, chain, keyed, now)
            if again is None:
                return None
            denied = again
        return denied

    def _output_tokens_within(self, admission: Admission, request: CallRequest, room_micros: int) -> int:
        rates = admission.rates
        if rates is None or room_micros <= 0:
            return 0
        low, high = 0, admission.max_output
        while low < high:  # largest output count whose worst case fits; ~15 steps
            middle = (low + high + 1) // 2
            if self._worst_usd(rates, request, admission.input_estimate, middle) <= room_micros:
                low = middle
            else:
                high = middle - 1
        return low

    # -- settlement ----------------------------------------------------------------------------

    def settle(
        self,
        admission: Admission,
        usage: TokenUsage | None,
        cost_micros: int | None,
        *,
        deferred: bool = False,
    ) -> None:
        """Replace the reservation by what the call used (``usage`` None: it failed, nothing billed).

        A dispatched call always consumes its turn, even when it failed. ``deferred=True`` (from a
        finalizer or any code that may run inside a lock) queues the settlement to run outside
        every critical section; it is also queued, whatever ``deferred`` says, when this thread is
        inside one of spendfuse's critical sections right now.
        """
        if deferred or critical.inside():
            critical.defer(self._settle_now, admission, usage, cost_micros)
            return
        self._settle_now(admission, usage, cost_micros)
        if PENDING:
            critical.drain()

    def _settle_now(self, admission: Admission, usage: TokenUsage | None, cost_micros: int | None) -> None:
        if not admission.claim():
            return
        the_run = admission.run
        if the_run is not None:
            reserved_usd, reserved_tokens = admission.reserved_usd, admission.reserved_tokens
            with RUN_LOCK:
                for scope_run in the_run.chain:
                    scope_run.balance.settle(reserved_usd, reserved_tokens, usage, cost_micros)
        if admission.leased:
            self._keyed.settle(admission, usage.total if usage is not None else 0, cost_micros or 0)

    # -- the SDK's retries (see ``attempts``) --------------------------------------------------

    def readmit(
        self,
        request: CallRequest,
        previous: Admission,
        usage: TokenUsage | None,
        cost_micros: int | None,
        span: SpanLike | None,
    ) -> Admission:
        """Close the previous attempt at ``usage``/``cost_micros`` and admit the SDK's next one."""
        return attempts.readmit(self, request, previous, usage, cost_micros, span)
