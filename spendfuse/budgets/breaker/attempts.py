"""The SDK's own retries: each attempt is a billable request, admitted again before it is sent.

A call's first attempt is admitted by ``Breaker.admit``. When the SDK retries, ``readmit`` closes
the previous attempt at its charge (nothing when the provider answered with an error status; its
reservation when it was sent and never answered) and reserves the same worst case again for the
next attempt on every scope -- the run, its parents and every keyed scope (one new store lease) --
or refuses it with ``BudgetExceeded`` before it is sent. The call's turn is carried from attempt to
attempt, in flight, and settled once, with the last attempt.

The check is the admission rule applied to the balances as they will be once the previous attempt
is closed: ``spent + charge + in_flight - previous + next <= limit``. On the runs this is done
under ``RUN_LOCK`` in one step. In the store the new lease is taken while the previous one is still
in flight, with each limit raised by what closing the previous one frees (``previous - charge``),
and the previous lease is settled just after: the two together are exactly the rule above, and the
turn is in flight in one lease or the other at every instant (a concurrent call can only be refused
in that short overlap, never admitted past a limit).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, NamedTuple

from spendfuse.budgets import critical, stores
from spendfuse.budgets.breaker.checks import past_run_limit
from spendfuse.budgets.breaker.leases import lease_ids
from spendfuse.budgets.breaker.request import Admission, CallRequest, Denied, SpanLike
from spendfuse.budgets.usage import TokenUsage
from spendfuse.runs.balance import RUN_LOCK
from spendfuse.telemetry import names

if TYPE_CHECKING:
    from spendfuse.budgets.breaker.core import Breaker
    from spendfuse.budgets.breaker.scopes import Scope
    from spendfuse.runs.run import Run

log = logging.getLogger("spendfuse")


def next_attempt(previous: Admission) -> Admission:
    """The same worst case as ``previous``, nothing reserved yet."""
    return Admission(
        run=previous.run,
        rates=previous.rates,
        input_estimate=previous.input_estimate,
        max_output=previous.max_output,
        reserved_usd=previous.reserved_usd,
        reserved_tokens=previous.reserved_tokens,
        clamped_to=previous.clamped_to,
    )


def readmit(
    breaker: Breaker,
    request: CallRequest,
    previous: Admission,
    usage: TokenUsage | None,
    cost: int | None,
    span: SpanLike | None,
) -> Admission:
    """Close ``previous`` at ``usage``/``cost`` (its turn kept in flight) and admit the next attempt.

    Raises only deliberate errors (``BudgetExceeded``, ``BudgetStoreUnavailable``); the call is
    then over: the previous attempt's charge stands and the turn is settled with it.
    """
    if critical.PENDING:
        critical.drain()
    following = next_attempt(previous)
    if not previous.claim():  # settled already (cannot happen on the SDK's path): nothing to carry
        return previous
    chain: tuple[Run, ...] = previous.run.chain if previous.run is not None else ()
    charge = _Charge(cost or 0, usage.total if usage is not None else 0)
    denied = _runs(previous, following, chain, usage, cost)
    held = denied is None  # the runs hold the next attempt's reservation
    now = time.time()
    keyed: list[Scope] = []
    try:
        past = past_run_limit(chain) if chain else None
        if past is not None:  # the run's clock ran out while the SDK retried: a hard stop
            breaker._refuse_past(past, request, previous.run, span)  # raises unless approved
        if denied is None:
            keyed, denied = _keyed_window(breaker, request, previous, following, charge, now)
            if denied is not None:
                _unreserve_runs(following, chain)
                held = False
        if denied is not None:
            the_run = previous.run
            per_choice = following.max_output // max(1, request.choices)
            error = breaker._refusals.error(denied, request, per_choice, the_run)
            hard = denied.scope == "run" and denied.spent >= denied.limit
            breaker._refusals.refuse(error, request, the_run, span, hard=hard)  # raises unless approved
            following.approved = True
            with RUN_LOCK:
                for scope_run in chain:
                    scope_run.balance.reserve(following.reserved_usd, 0, following.reserved_tokens)
            held = True
            if not keyed and previous.leased:
                keyed = list(previous.scopes)  # the scopes the call reserved on before
            if keyed:
                _lease(breaker, previous, following, keyed, charge, now, check=False)
    except BaseException:
        # Refused, or the store failed closed: no next attempt. The previous attempt's charge
        # stands and the call's turn is settled with it, here, once.
        if held:
            _unreserve_runs(following, chain)
        _finish(breaker, previous, chain, charge)
        raise
    # The previous lease is settled after the next one is taken (see the module's docstring). It
    # keeps the turn only when no new lease carries it on (the store failed open, no user budget).
    if previous.leased:
        _settle_lease(breaker, previous, charge, turns=0 if following.leased else 1)
    if critical.PENDING:
        critical.drain()
    return following


class _Charge(NamedTuple):
    usd: int  # micro-dollars
    tokens: int


def _runs(
    previous: Admission, following: Admission, chain: tuple[Run, ...], usage: TokenUsage | None, cost: int | None
) -> Denied | None:
    """Close the previous attempt's money on every run and reserve the next one's, or refuse it."""
    charge_usd = cost or 0
    charge_tokens = usage.total if usage is not None else 0
    usd, tokens = following.reserved_usd, following.reserved_tokens
    denied: Denied | None = None
    with RUN_LOCK:
        for scope_run in chain:
            budget = scope_run.budget
            if budget is None:
                continue
            balance = scope_run.balance
            spent = balance.usd + charge_usd
            flying = balance.flight_usd - previous.reserved_usd
            limit = budget.usd_micros
            if limit is not None and spent + flying + usd > limit:
                denied = Denied("run", scope_run.run_id, "usd", limit, spent, flying, usd)
                break
            spent = balance.tokens + charge_tokens
            flying = balance.flight_tokens - previous.reserved_tokens
            limit = budget.tokens
            if limit is not None and spent + flying + tokens > limit:
                denied = Denied("run", scope_run.run_id, "tokens", limit, spent, flying, tokens)
                break
        for scope_run in chain:
            scope_run.balance.settle(previous.reserved_usd, previous.reserved_tokens, usage, cost, turns=0)
            if denied is None:
                scope_run.balance.reserve(usd, 0, tokens)
    return denied


def _keyed_window(
    breaker: Breaker, request: CallRequest, previous: Admission, following: Admission, charge: _Charge, now: float
) -> tuple[list[Scope], Denied | None]:
    """The next attempt's lease on the call's keyed scopes, or why it does not fit (raises: fail closed).

    The scopes are those the previous attempt held; resolved again only when it held none (the
    store failed open, or a budget callable failed)."""
    if previous.leased:
        keyed = list(previous.scopes)
    else:
        the_run = previous.run
        keyed, unresolved = (
            breaker._scopes.for_call(
                the_run.scopes if the_run is not None else None, request.provider, request.model, now
            )
            if breaker._scopes
            else ([], None)
        )
        if unresolved is not None:  # a budget callable raised: the store-outage policy decides
            name, exc = unresolved
            source = "the user_budget callable" if name == "user" else f"the budgets[{name!r}] callable"
            breaker._keyed.failed(following, exc, source=source)
            return [], None
    if not keyed:
        return [], None
    return keyed, _lease(breaker, previous, following, keyed, charge, now, check=True)


def _lease(
    breaker: Breaker,
    previous: Admission,
    following: Admission,
    keyed: list[Scope],
    charge: _Charge,
    now: float,
    *,
    check: bool,
) -> Denied | None:
    """Take the next attempt's lease on every keyed scope; the previous lease is still in flight."""
    held = {scope.store_key for scope in previous.scopes} if previous.leased else set()
    # What closing the previous lease will free on each scope it held: its reservation less its charge.
    freed = {stores.USD: previous.reserved_usd - charge.usd, stores.TOKENS: previous.reserved_tokens - charge.tokens}
    requests = []
    for scope in keyed:
        limits: dict[str, int] = {}
        if check:
            raised = freed if scope.store_key in held else {}
            # The turn was admitted with the call: carried, not checked again.
            limits = {metric: limit + raised.get(metric, 0) for metric, limit in scope.limits.items()
                      if metric != stores.TURNS}  # fmt: skip
        requests.append(stores.ScopeRequest(
            key=scope.store_key,
            limits=limits,
            amounts={stores.USD: following.reserved_usd, stores.TURNS: 1, stores.TOKENS: following.reserved_tokens},
            expires_at=scope.expires_at,
        ))  # fmt: skip
    lease_id = lease_ids.next()
    try:
        denial = breaker.store.reserve(lease_id, requests, now + breaker.settings.lease_seconds, now)
    except Exception as exc:
        breaker._keyed.failed(following, exc)  # raises when the store fails closed
        return None
    if denial is not None:
        scope = next((s for s in keyed if s.store_key == denial.key), keyed[0])
        back = freed.get(denial.metric, 0) if scope.store_key in held else 0
        spent, in_flight = denial.spent, denial.in_flight
        if back:  # the numbers as they are once the previous attempt is closed
            charged = charge.usd if denial.metric == stores.USD else charge.tokens
            spent += charged
            in_flight -= back + charged
        return Denied(scope.name, scope.key, denial.metric, denial.limit - back, spent, in_flight,
                      denial.requested, scope.budget.window, scope.window_end)  # fmt: skip
    following.lease_id = lease_id
    following.scopes = tuple(keyed)
    following.user_key = next((s.store_key for s in keyed if s.name == "user"), None)
    following.leased = True
    return None


def _unreserve_runs(following: Admission, chain: tuple[Run, ...]) -> None:
    """The next attempt is not admitted after all: give back what ``_runs`` reserved for it."""
    with RUN_LOCK:
        for scope_run in chain:
            scope_run.balance.unreserve(following.reserved_usd, 0, following.reserved_tokens)


def _finish(breaker: Breaker, previous: Admission, chain: tuple[Run, ...], charge: _Charge) -> None:
    """The call ends without a next attempt: its turn is settled, with the previous lease's charge."""
    with RUN_LOCK:
        for scope_run in chain:
            scope_run.balance.settle(0, 0, None, 0)
    if previous.leased:
        _settle_lease(breaker, previous, charge, turns=1)


def _settle_lease(breaker: Breaker, admission: Admission, charge: _Charge, *, turns: int) -> None:
    try:
        breaker.store.settle(
            admission.lease_id, {stores.USD: charge.usd, stores.TURNS: turns, stores.TOKENS: charge.tokens}, time.time()
        )
    except Exception as exc:
        # The lease will expire and be charged at its reserved amount: never lost.
        breaker.instruments.store_errors.add(1, {names.METRIC_ATTR_REASON: "settle"})
        log.warning("spendfuse: could not settle lease %s (%s); it will expire", admission.lease_id, exc)
