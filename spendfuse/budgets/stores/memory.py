"""``memory://``: balances in this process, guarded by one lock.

The default store, and the one every run scope uses whatever the configured store is: a run lives
in one process, so its balance never needs a network round trip.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from spendfuse.budgets.critical import GuardedLock
from spendfuse.budgets.stores._common import check_distinct, nonzero_amounts
from spendfuse.budgets.stores.base import (
    METRICS,
    BudgetStore,
    Denial,
    ScopeRequest,
    ScopeUsage,
)


@dataclass(slots=True)
class _Lease:
    amounts: dict[str, dict[str, int]]  # scope key -> reserved amounts
    expires_at: float


@dataclass(slots=True)
class _Scope:
    spent: dict[str, int] = field(default_factory=lambda: dict.fromkeys(METRICS, 0))
    in_flight: dict[str, int] = field(default_factory=lambda: dict.fromkeys(METRICS, 0))
    leases: set[str] = field(default_factory=set)
    expires_at: float | None = None
    # No lease of the scope expires before this (a lower bound): reserve skips the expiry scan.
    next_expiry: float = math.inf


class MemoryStore(BudgetStore):
    def __init__(self, url: str = "memory://") -> None:
        self.url = url
        self._lock = GuardedLock()  # see spendfuse.budgets.critical
        self._scopes: dict[str, _Scope] = {}
        self._leases: dict[str, _Lease] = {}
        self._next_sweep = 0.0
        # The breaker resends one ScopeRequest object while a call's worst case stays the same.
        self._last_amounts: tuple[ScopeRequest | None, dict[str, int]] = (None, {})
        self._last_multi: tuple[tuple[ScopeRequest, ...], list[dict[str, int]]] = ((), [])

    def reserve(
        self, lease_id: str, scopes: Sequence[ScopeRequest], lease_expires_at: float, now: float
    ) -> Denial | None:
        if len(scopes) == 1:
            return self._reserve_one(lease_id, scopes[0], lease_expires_at, now)
        # An agent loop resends the same requests (the breaker caches one per scope while the worst
        # case stays the same): their checked, nonzero amounts are reused, as in _reserve_one.
        last, amounts = self._last_multi
        if len(last) != len(scopes) or any(a is not b for a, b in zip(last, scopes, strict=False)):
            check_distinct(scopes)
            amounts = [nonzero_amounts(request.amounts) for request in scopes]
            self._last_multi = (tuple(scopes), amounts)
        with self._lock:
            if lease_id in self._leases:
                return None  # a resent reservation is admitted once
            if now >= self._next_sweep:
                self._sweep(now)
            states = []
            for request in scopes:
                key = request.key
                state = self._scopes.get(key)
                if state is None:
                    state = self._scopes[key] = _Scope(expires_at=request.expires_at)
                elif state.next_expiry <= now:
                    self._expire_scope(state, now)
                spent, in_flight, wanted = state.spent, state.in_flight, request.amounts
                for metric, limit in request.limits.items():
                    requested = wanted.get(metric, 0)
                    used = spent.get(metric, 0)
                    flying = in_flight.get(metric, 0)
                    if used + flying + requested > limit:
                        return Denial(key, metric, limit, used, flying, requested)
                states.append(state)
            lease = _Lease({}, lease_expires_at)
            for request, state, reserved in zip(scopes, states, amounts, strict=True):
                for metric, amount in reserved.items():
                    state.in_flight[metric] = state.in_flight.get(metric, 0) + amount
                state.leases.add(lease_id)
                if lease_expires_at < state.next_expiry:
                    state.next_expiry = lease_expires_at
                lease.amounts[request.key] = reserved
            self._leases[lease_id] = lease
            return None

    def _reserve_one(self, lease_id: str, request: ScopeRequest, lease_expires_at: float, now: float) -> Denial | None:
        """``reserve`` of one scope (what the breaker sends), without the general case's lists."""
        last, reserved = self._last_amounts
        if last is not request:
            reserved = nonzero_amounts(request.amounts)
            self._last_amounts = (request, reserved)
        key = request.key
        with self._lock:
            if lease_id in self._leases:
                return None  # a resent reservation is admitted once
            if now >= self._next_sweep:
                self._sweep(now)
            state = self._scopes.get(key)
            if state is None:
                state = self._scopes[key] = _Scope(expires_at=request.expires_at)
            elif state.next_expiry <= now:
                self._expire_scope(state, now)
            spent, in_flight = state.spent, state.in_flight
            for metric, limit in request.limits.items():
                requested = reserved.get(metric, 0)
                used = spent.get(metric, 0)
                flying = in_flight.get(metric, 0)
                if used + flying + requested > limit:
                    return Denial(key, metric, limit, used, flying, requested)
            for metric, amount in reserved.items():
                in_flight[metric] = in_flight.get(metric, 0) + amount
            state.leases.add(lease_id)
            if lease_expires_at < state.next_expiry:
                state.next_expiry = lease_expires_at
            # ``reserved`` may be shared between leases: it is only ever read.
            self._leases[lease_id] = _Lease({key: reserved}, lease_expires_at)
            return None

    def settle(self, lease_id: str, amounts: Mapping[str, int], now: float) -> bool:
        for amount in amounts.values():
            if type(amount) is not int or amount < 0:  # the rare odd input: the shared checks
                amounts = nonzero_amounts(amounts)
                break
        with self._lock:
            lease = self._leases.pop(lease_id, None)
            if lease is None or not lease.amounts:
                return False
            for key, reserved in lease.amounts.items():
                state = self._scopes.get(key)
                if state is None:
                    continue
                self._drop(state, lease_id, reserved)
                spent = state.spent
                for metric, amount in amounts.items():
                    if amount:
                        spent[metric] = spent.get(metric, 0) + amount
            return True

    def expire(self, now: float) -> int:
        with self._lock:
            return self._expire_all(now)

    def usage(self, key: str, now: float) -> ScopeUsage:
        with self._lock:
            state = self._scopes.get(key)
            if state is None:
                return ScopeUsage()
            self._expire_scope(state, now)
            if state.expires_at is not None and state.expires_at <= now:
                if not state.leases:
                    del self._scopes[key]
                return ScopeUsage()
            return ScopeUsage(dict(state.spent), dict(state.in_flight), len(state.leases))

    def reset(self, key: str) -> None:
        with self._lock:
            state = self._scopes.pop(key, None)
            if state is None:
                return
            for lease_id in state.leases:
                lease = self._leases.get(lease_id)
                if lease is not None:
                    lease.amounts.pop(key, None)

    def forget(self, key: str) -> None:
        """Drop a finished run's scope; its leases are already settled."""
        with self._lock:
            state = self._scopes.get(key)
            if state is not None and not state.leases:
                del self._scopes[key]

    # -- internals (lock held) -------------------------------------------------------------

    def _drop(self, state: _Scope, lease_id: str, reserved: Mapping[str, int]) -> None:
        state.leases.discard(lease_id)
        for metric, amount in reserved.items():
            state.in_flight[metric] = state.in_flight.get(metric, 0) - amount

    def _charge(self, lease_id: str) -> None:
        lease = self._leases.pop(lease_id)
        for key, reserved in lease.amounts.items():
            state = self._scopes.get(key)
            if state is None:
                continue
            self._drop(state, lease_id, reserved)
            for metric, amount in reserved.items():
                state.spent[metric] = state.spent.get(metric, 0) + amount

    def _expire_scope(self, state: _Scope, now: float) -> None:
        if state.next_expiry > now:
            return
        leases = self._leases
        for lease_id in [lid for lid in state.leases if leases[lid].expires_at <= now]:
            self._charge(lease_id)
        state.next_expiry = min((leases[lid].expires_at for lid in state.leases), default=math.inf)

    def _expire_all(self, now: float) -> int:
        expired = [lid for lid, lease in self._leases.items() if lease.expires_at <= now]
        for lease_id in expired:
            self._charge(lease_id)
        return len(expired)

    def _sweep(self, now: float) -> None:
        # Forget user windows that ended; at most once a minute so reserve stays O(scopes).
        if now < self._next_sweep:
            return
        self._next_sweep = now + 60.0
        self._expire_all(now)
        for key in [k for k, s in self._scopes.items() if s.expires_at is not None and s.expires_at <= now]:
            if not self._scopes[key].leases:
                del self._scopes[key]
