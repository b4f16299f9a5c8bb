"""The breaker: admit a call only if its worst case fits every budget it touches.

Admission reserves the call's worst case (input estimate + max output at the output rate; one turn;
input + max output tokens) on the current run and its parents (in-process, under one lock) and on
the user's window (in the configured store), all or nothing, with ``spent + in_flight + request <=
limit`` everywhere. Settlement replaces the reservation with the reported usage. Every number is an
integer: micro-dollars for money.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opentelemetry.trace import Status, StatusCode

from spendfuse.budgets import stores
from spendfuse.budgets.budget import Budget, window_bounds
from spendfuse.budgets.estimate import PrefixMemo, estimate_input_tokens
from spendfuse.budgets.messages import budget_error
from spendfuse.budgets.pricing import PriceBook, Rates
from spendfuse.budgets.usage import TokenUsage
from spendfuse.errors import BudgetExceeded, BudgetStoreUnavailable, UnpricedModelError
from spendfuse.runs.balance import RUN_LOCK
from spendfuse.telemetry import names
from spendfuse.telemetry.callspan import CallSpan

if TYPE_CHECKING:
    from spendfuse.config.settings import Settings
    from spendfuse.runs.run import Run
    from spendfuse.telemetry.instruments import Instruments

log = logging.getLogger("spendfuse")

MICROS = 1_000_000
# Keep a user window's scope a little past its end so late settlements still find it.
WINDOW_SLACK_SECONDS = 3600
USER_USAGE_REFRESH_SECONDS = 5.0
MAX_GAUGE_USERS = 200


class _LeaseIds:
    """Unique lease ids without a system call per call (os.urandom releases the GIL, and another
    thread may keep it for milliseconds): 128 random bits per process, then a counter. A forked
    child draws its own bits, so parent and child never share an id."""

    def __init__(self) -> None:
        self._reseed()
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._reseed)

    def _reseed(self) -> None:
        self._prefix = os.urandom(16).hex()
        self._counter = itertools.count()

    def next(self) -> str:
        return f"{self._prefix}{next(self._counter):x}"


_lease_ids = _LeaseIds()


@dataclass(slots=True)
class CallRequest:
    """What the breaker needs to know about one model call, extracted from the request body."""

    provider: str
    api: str
    model: str
    body: Mapping[str, Any]
    max_tokens: int | None  # per choice, as the request sends it; None: the model's maximum
    cache_write: bool = False
    cache_write_1h: bool = False
    service_tier: str | None = None
    speed: str | None = None
    # OpenAI ``n``: every choice may generate up to the output cap, and each is billed.
    choices: int = 1


@dataclass(slots=True)
class Admission:
    """A reservation held by one call until it is settled or released (exactly once)."""

    run: Run | None
    rates: Rates | None
    input_estimate: int
    max_output: int
    reserved_usd: int
    reserved_tokens: int
    lease_id: str = ""
    user_key: str | None = None
    user_leased: bool = False
    clamped_to: int | None = None
    approved: bool = False
    fail_open: bool = False
    done: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def claim(self) -> bool:
        """True for the first caller only: settlement happens exactly once."""
        with self.lock:
            if self.done:
                return False
            self.done = True
            return True


@dataclass(slots=True)
class _UserScope:
    user_id: str
    key: str
    budget: Budget
    window_end: float | None
    limits: dict[str, int]


@dataclass(slots=True)
class _Denied:
    scope: str
    key: str
    metric: str
    limit: int
    spent: int
    in_flight: int
    requested: int
    window: str | None = None
    window_end: float | None = None


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
        self._store_lock = threading.Lock()
        self._warned: set[tuple[str, str]] = set()
        self._outage_logged = False
        self._user_checked: dict[str, float] = {}
        self._gauge_users: OrderedDict[str, _UserScope] = OrderedDict()
        self._user_scopes: dict[str, _UserScope] = {}
        instruments.set_gauge_source(self._gauge_rows)

    # -- store ---------------------------------------------------------------------------------

    @property
    def store(self) -> stores.BudgetStore:
        if self._store is None:
            with self._store_lock:
                if self._store is None:
                    self._store = stores.open_store(self.settings.store, timeout=self.settings.store_timeout)
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()

    # -- admission -----------------------------------------------------------------------------

    def admit(self, request: CallRequest, the_run: Run | None, span: CallSpan | None) -> Admission:
        """Reserve the call's worst case or raise. Raises only deliberate spendfuse errors."""
        now = time.time()
        chain: tuple[Run, ...] = the_run.chain if the_run is not None else ()
        unresolved: Exception | None = None
        try:
            user = self._user_scope(the_run, now)
        except Exception as exc:  # the user_budget callable raised: the user's limits are unknown
            user, unresolved = None, exc
        rates = self.prices.rates(
            request.provider, request.model, service_tier=request.service_tier, speed=request.speed
        )
        usd_limited = any(r.budget is not None and r.budget.usd is not None for r in chain) or (
            user is not None and "usd" in user.limits
        )
        if rates is None and usd_limited:
            raise UnpricedModelError(request.model, request.provider)
        self._check_run_clock_and_loops(request, the_run, chain, span)
        if not chain and user is None and unresolved is None:
            # Nothing to reserve against (telemetry only): no worst case is needed, and the input
            # estimate is left to the rare call whose provider reports no usage (-1: not made).
            max_output = self._max_output(request)
            return Admission(the_run, rates, -1, max_output, reserved_usd=0, reserved_tokens=0)

        memo = None
        if the_run is not None:
            memo = the_run.memo
            if memo is None:
                memo = the_run.memo = PrefixMemo()
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
        if not chain and user is None:
            return admission  # nothing to reserve against: telemetry only

        denied = self._reserve(admission, chain, user, now)
        if denied is not None and self.settings.clamp and denied.metric in ("usd", "tokens"):
            denied = self._clamp(admission, request, chain, user, now, denied)
        if denied is not None:
            error = self._error(denied, request, admission, the_run)
            if not self._approve(error, span):
                self._trip(error, request, the_run, span)
                raise error
            admission.approved = True
            self._force_reserve(admission, chain, user, now)
        if unresolved is not None:
            # Unknown user limits are a store outage by another name, never "no user limit" (and
            # the run limits above still held): closed refuses, open admits and counts it.
            try:
                self._store_failed(admission, unresolved, source="the user_budget callable")
            except BaseException:
                self._unreserve_runs(admission, chain)
                raise
        if admission.user_key is not None or chain:
            self._maybe_warn(admission, chain, user, now, span, request)
        return admission

    def _user_scope(self, the_run: Run | None, now: float) -> _UserScope | None:
        resolver = self.settings.user_budget
        if resolver is None or the_run is None or the_run.user_id is None:
            return None
        budget = resolver(the_run.user_id)
        if budget is None:
            return None
        # The same budget in the same window gives the same scope: reuse it until the window ends.
        scopes = self._user_scopes
        cached = scopes.get(the_run.user_id)
        if (
            cached is not None
            and (cached.budget is budget or cached.budget == budget)
            and (cached.window_end is None or now < cached.window_end)
        ):
            return cached
        scope = self._new_user_scope(the_run.user_id, budget, now)
        if scope is not None:
            if len(scopes) >= MAX_GAUGE_USERS * 8:
                scopes.clear()  # many users: a bound on memory, not an LRU
            scopes[the_run.user_id] = scope
        return scope

    def _new_user_scope(self, user_id: str, budget: Budget, now: float) -> _UserScope | None:
        limits: dict[str, int] = {}
        if budget.usd_micros is not None:
            limits[stores.USD] = budget.usd_micros
        if budget.turns is not None:
            limits[stores.TURNS] = budget.turns
        if budget.tokens is not None:
            limits[stores.TOKENS] = budget.tokens
        if not limits:
            return None
        if budget.window is not None:
            start, end = window_bounds(budget.window, now)
            key = f"user/{budget.window}/{start}/{user_id}"
            window_end: float | None = float(end)
        else:
            key = f"user/lifetime/{user_id}"
            window_end = None
        return _UserScope(user_id, key, budget, window_end, limits)

    def _check_run_clock_and_loops(
        self, request: CallRequest, the_run: Run | None, chain: tuple[Run, ...], span: CallSpan | None
    ) -> None:
        for scope_run in chain:
            budget = scope_run.budget
            if budget is None:
                continue
            if budget.seconds is not None:
                elapsed = scope_run.elapsed
                if elapsed > budget.seconds:
                    self._refuse_run(
                        _Denied("run", scope_run.run_id, "seconds", 0, 0, 0, 0),
                        request, the_run, span, limit_value=budget.seconds, spent=elapsed,
                    )
            if budget.repeats is not None and scope_run.tool_requests:
                with scope_run.lock:
                    worst = max(scope_run.tool_requests.values())
                if worst > budget.repeats:
                    self._refuse_run(
                        _Denied("run", scope_run.run_id, "repeats", budget.repeats, worst, 0, 1),
                        request, the_run, span, limit_value=budget.repeats, spent=worst,
                    )

    def _refuse_run(
        self,
        denied: _Denied,
        request: CallRequest,
        the_run: Run | None,
        span: CallSpan | None,
        *,
        limit_value: float,
        spent: float,
    ) -> None:
        error = budget_error(
            scope="run", key=denied.key, limit=denied.metric, limit_value=limit_value, spent=spent,
            in_flight=0, requested=denied.requested, model=request.model, max_tokens=request.max_tokens,
            run_id=the_run.run_id if the_run else None, user_id=the_run.user_id if the_run else None,
        )
        if self._approve(error, span):
            return
        self._trip(error, request, the_run, span)
        raise error

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
        )

    def _reserve(
        self, admission: Admission, chain: tuple[Run, ...], user: _UserScope | None, now: float
    ) -> _Denied | None:
        usd, tokens = admission.reserved_usd, admission.reserved_tokens
        with RUN_LOCK:
            for scope_run in chain:
                budget, balance = scope_run.budget, scope_run.balance
                if budget is None:
                    continue
                limit = budget.usd_micros
                if limit is not None and balance.usd + balance.flight_usd + usd > limit:
                    return _Denied("run", scope_run.run_id, "usd", limit, balance.usd, balance.flight_usd, usd)
                if budget.turns is not None and balance.turns + balance.flight_turns + 1 > budget.turns:
                    return _Denied(
                        "run", scope_run.run_id, "turns", budget.turns, balance.turns, balance.flight_turns, 1
                    )
                if budget.tokens is not None and balance.tokens + balance.flight_tokens + tokens > budget.tokens:
                    return _Denied(
                        "run", scope_run.run_id, "tokens", budget.tokens, balance.tokens,
                        balance.flight_tokens, tokens,
                    )
            for scope_run in chain:
                balance = scope_run.balance
                balance.flight_usd += usd
                balance.flight_turns += 1
                balance.flight_tokens += tokens
        if user is None:
            return None
        try:
            denied = self._reserve_user(admission, user, now, check=True)
        except BaseException:
            # A fail-closed store outage refuses the call: the run scopes must not keep its reservation.
            self._unreserve_runs(admission, chain)
            raise
        if denied is not None:
            self._unreserve_runs(admission, chain)
        return denied

    def _reserve_user(
        self, admission: Admission, user: _UserScope, now: float, *, check: bool
    ) -> _Denied | None:
        lease_id = _lease_ids.next()
        request = stores.ScopeRequest(
            key=user.key,
            limits=user.limits if check else {},
            amounts={
                stores.USD: admission.reserved_usd,
                stores.TURNS: 1,
                stores.TOKENS: admission.reserved_tokens,
            },
            expires_at=None if user.window_end is None else user.window_end + WINDOW_SLACK_SECONDS,
        )
        try:
            denial = self.store.reserve(lease_id, [request], now + self.settings.lease_seconds, now)
        except Exception as exc:
            self._store_failed(admission, exc)
            return None
        self._outage_logged = False  # the store answered: the next outage is logged again
        self._note_gauge_user(user)
        if denial is not None:
            return _Denied(
                "user", user.user_id, denial.metric, denial.limit, denial.spent, denial.in_flight,
                denial.requested, user.budget.window, user.window_end,
            )
        admission.lease_id = lease_id
        admission.user_key = user.key
        admission.user_leased = True
        return None

    def _store_failed(self, admission: Admission, exc: Exception, source: str | None = None) -> None:
        reason = "unavailable" if isinstance(exc, stores.StoreUnavailableError) else "error"
        store = f"budget store {stores.redacted_url(self.settings.store)!r}"
        if self.settings.store_failure == "open":
            self.instruments.store_errors.add(1, {names.METRIC_ATTR_REASON: "fail_open"})
            if not self._outage_logged:
                self._outage_logged = True
                log.warning("spendfuse: %s failed (%s); admitting calls (store_failure=open)", source or store, exc)
            admission.fail_open = True
            return None
        self.instruments.store_errors.add(1, {names.METRIC_ATTR_REASON: reason})
        problem = f"{source} failed" if source else f"{store} did not answer"
        raise BudgetStoreUnavailable(
            f"{problem} ({exc}); refusing the call because store_failure='closed' "
            "(set SPENDFUSE_STORE_FAILURE=open to admit calls during an outage)"
        ) from exc

    def _unreserve_runs(self, admission: Admission, chain: Iterable[Run]) -> None:
        with RUN_LOCK:
            for scope_run in chain:
                balance = scope_run.balance
                balance.flight_usd -= admission.reserved_usd
                balance.flight_turns -= 1
                balance.flight_tokens -= admission.reserved_tokens

    def _force_reserve(
        self, admission: Admission, chain: tuple[Run, ...], user: _UserScope | None, now: float
    ) -> None:
        """An approved overrun: record it in flight everywhere without checking limits."""
        with RUN_LOCK:
            for scope_run in chain:
                balance = scope_run.balance
                balance.flight_usd += admission.reserved_usd
                balance.flight_turns += 1
                balance.flight_tokens += admission.reserved_tokens
        if user is not None:
            try:
                self._reserve_user(admission, user, now, check=False)
            except BaseException:
                self._unreserve_runs(admission, chain)
                raise

    def _clamp(
        self,
        admission: Admission,
        request: CallRequest,
        chain: tuple[Run, ...],
        user: _UserScope | None,
        now: float,
        denied: _Denied,
    ) -> _Denied | None:
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
            again = self._reserve(admission, chain, user, now)
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

    def _error(
        self, denied: _Denied, request: CallRequest, admission: Admission, the_run: Run | None
    ) -> BudgetExceeded:
        return budget_error(
            scope=denied.scope,
            key=denied.key,
            limit=denied.metric,
            limit_value=denied.limit,
            spent=denied.spent,
            in_flight=denied.in_flight,
            requested=denied.requested,
            model=request.model,
            max_tokens=admission.max_output // max(1, request.choices),
            run_id=the_run.run_id if the_run else None,
            user_id=the_run.user_id if the_run else None,
            window=denied.window,
            window_resets_at=denied.window_end,
        )

    def _approve(self, error: BudgetExceeded, span: CallSpan | None) -> bool:
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
            span.add_event(names.EVENT_BREAKER_APPROVED, _trip_attributes(error))
        return approved

    def _trip(self, error: BudgetExceeded, request: CallRequest, the_run: Run | None, span: CallSpan | None) -> None:
        if the_run is not None:
            # The run whose own budget refused the call trips, and every run between it and the
            # caller: a parent whose budget stopped a child must not end "completed".
            for scope_run in the_run.chain:
                scope_run.tripped = error
                if error.scope != "run" or scope_run.run_id == error.key:
                    break
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
                span.add_event(names.EVENT_BREAKER_TRIPPED, _trip_attributes(error))
                span.set_attribute(names.BREAKER_TRIPPED, True)
                span.set_attribute(names.ERROR_TYPE, type(error).__qualname__)
                span.set_status(Status(StatusCode.ERROR, error.message))
            log.warning("spendfuse: %s", error.message)
        except Exception:
            log.debug("spendfuse: could not record a breaker trip", exc_info=True)

    # -- warnings ------------------------------------------------------------------------------

    def _maybe_warn(
        self,
        admission: Admission,
        chain: tuple[Run, ...],
        user: _UserScope | None,
        now: float,
        span: CallSpan | None,
        request: CallRequest,
    ) -> None:
        warn_at = self.settings.warn_at
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
                usage = self.store.usage(user.key, now)
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
        span: CallSpan | None,
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
            self.instruments.budget_warnings.add(
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
            scope, who, shown_used, shown_limit, metric, self.settings.warn_at,
        )

    # -- settlement ----------------------------------------------------------------------------

    def settle(self, admission: Admission, usage: TokenUsage | None, cost_micros: int | None) -> None:
        """Replace the reservation by what the call used (``usage`` None: it failed, nothing billed).

        A dispatched call always consumes its turn, even when it failed.
        """
        if not admission.claim():
            return
        cost = cost_micros or 0
        tokens = usage.total if usage is not None else 0
        the_run = admission.run
        if the_run is not None:
            with RUN_LOCK:
                for scope_run in the_run.chain:
                    balance = scope_run.balance
                    balance.flight_usd -= admission.reserved_usd
                    balance.flight_turns -= 1
                    balance.flight_tokens -= admission.reserved_tokens
                    balance.usd += cost
                    balance.turns += 1
                    if usage is not None:
                        balance.input_tokens += usage.input_tokens
                        balance.output_tokens += usage.output_tokens
                        balance.cache_read_tokens += usage.cache_read_tokens
                        balance.cache_write_tokens += usage.cache_write_tokens
                        if cost_micros is None:
                            balance.unknown_cost_calls += 1
        if admission.user_leased:
            try:
                self.store.settle(
                    admission.lease_id,
                    {stores.USD: cost, stores.TURNS: 1, stores.TOKENS: tokens},
                    time.time(),
                )
            except Exception as exc:
                # The lease will expire and be charged at its reserved amount: never lost.
                self.instruments.store_errors.add(1, {names.METRIC_ATTR_REASON: "settle"})
                log.warning("spendfuse: could not settle lease %s (%s); it will expire", admission.lease_id, exc)

    def release(self, admission: Admission) -> None:
        """Undo a reservation whose call never left the process."""
        if not admission.claim():
            return
        if admission.run is not None:
            self._unreserve_runs(admission, admission.run.chain)
        if admission.user_leased:
            try:
                self.store.release(admission.lease_id, time.time())
            except Exception as exc:
                log.warning("spendfuse: could not release lease %s (%s); it will expire", admission.lease_id, exc)

    # -- gauges --------------------------------------------------------------------------------

    def _note_gauge_user(self, user: _UserScope) -> None:
        if stores.USD not in user.limits:
            return
        gauges = self._gauge_users
        with self._store_lock:
            gauges[user.user_id] = user
            gauges.move_to_end(user.user_id)
            while len(gauges) > MAX_GAUGE_USERS:
                gauges.popitem(last=False)

    def _gauge_rows(self) -> list[tuple[float, float, dict[str, str]]]:
        now = time.time()
        with self._store_lock:
            users = list(self._gauge_users.values())
        rows = []
        for user in users:
            if user.window_end is not None and user.window_end <= now:
                continue
            usage = self.store.usage(user.key, now)
            spent = usage.spent.get(stores.USD, 0) + usage.in_flight.get(stores.USD, 0)
            attributes = {names.METRIC_ATTR_SCOPE: "user", names.USER_ID: user.user_id}
            if user.budget.window:
                attributes["spendfuse.window"] = user.budget.window
            rows.append((spent / MICROS, user.limits[stores.USD] / MICROS, attributes))
        return rows


def _trip_attributes(error: BudgetExceeded) -> dict[str, Any]:
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
        names.BREAKER_REQUESTED: float(error.requested),
    }
