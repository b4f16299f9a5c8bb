"""The one storage interface every budget store implements.

A *scope* is one balance (a user's window, a run). Its state is what was spent plus the leases in
flight. The breaker asks a store to reserve a call's worst case on several scopes at once; the
store admits only if ``spent + in_flight + amount <= limit`` holds for every limited metric of every
scope, and then records the reservation as a lease on all of them, or on none.

Amounts are integers: ``usd`` in micro-dollars, ``turns`` and ``tokens`` as counts. Times are unix
seconds (``time.time()``) supplied by the caller, so every backend expires leases the same way.

Implementations: ``memory://`` (this process), ``sqlite:///path`` (processes of one host),
``redis://`` (a fleet). They must pass the same contract suite (tests/stores/).
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

USD = "usd"  # micro-dollars
TURNS = "turns"
TOKENS = "tokens"
METRICS: tuple[str, ...] = (USD, TURNS, TOKENS)


@dataclass(frozen=True, slots=True)
class ScopeRequest:
    """One scope a reservation touches.

    ``key`` is opaque to the store (it may hold any characters a user id may hold); ``limits`` has
    only the limited metrics; ``expires_at`` is when the scope itself can be forgotten (the end of a
    user window plus slack), ``None`` for scopes that live as long as the process.
    """

    key: str
    limits: Mapping[str, int]
    amounts: Mapping[str, int]
    expires_at: float | None = None


@dataclass(frozen=True, slots=True)
class Denial:
    """Why a reservation was refused: the first scope and metric that would not fit."""

    key: str
    metric: str
    limit: int
    spent: int
    in_flight: int
    requested: int


@dataclass(slots=True)
class ScopeUsage:
    """A scope's balance: ``spent`` (settled and expired leases) and ``in_flight`` (live leases)."""

    spent: dict[str, int] = field(default_factory=lambda: dict.fromkeys(METRICS, 0))
    in_flight: dict[str, int] = field(default_factory=lambda: dict.fromkeys(METRICS, 0))
    leases: int = 0


class StoreUnavailableError(Exception):
    """A backend could not answer in time. The breaker maps this to its store-failure policy."""


class BudgetStore(abc.ABC):
    """Reserve / settle / release / expire, plus reads for the CLI and the gauges."""

    url: str = ""

    @abc.abstractmethod
    def reserve(
        self, lease_id: str, scopes: Sequence[ScopeRequest], lease_expires_at: float, now: float
    ) -> Denial | None:
        """Atomically reserve ``amounts`` on every scope, or nothing. ``None`` means admitted.

        Before checking, leases past their expiry on the touched scopes are charged at their
        reserved amount (moved into ``spent``).
        """

    @abc.abstractmethod
    def settle(self, lease_id: str, amounts: Mapping[str, int], now: float) -> bool:
        """Replace the lease by ``amounts`` spent on every scope it touched.

        Returns False when the lease was unknown (already settled, released or expired and
        charged): settling is exactly-once, a second settle changes nothing.
        """

    def release(self, lease_id: str, now: float) -> bool:
        """Drop the lease without charging anything."""
        return self.settle(lease_id, {}, now)

    @abc.abstractmethod
    def expire(self, now: float) -> int:
        """Charge every expired lease at its reserved amount; returns how many were charged."""

    @abc.abstractmethod
    def usage(self, key: str, now: float) -> ScopeUsage:
        """The scope's balance after expiring its stale leases; zeros for an unknown scope."""

    @abc.abstractmethod
    def reset(self, key: str) -> None:
        """Forget the scope's spend (an admin action); live leases on it are dropped too."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections and files."""


def check_fits(
    key: str,
    limits: Mapping[str, int],
    amounts: Mapping[str, int],
    spent: Mapping[str, int],
    in_flight: Mapping[str, int],
) -> Denial | None:
    """The admission rule shared by the Python backends: ``spent + in_flight + amount <= limit``."""
    for metric, limit in limits.items():
        requested = amounts.get(metric, 0)
        used = spent.get(metric, 0)
        flying = in_flight.get(metric, 0)
        if used + flying + requested > limit:
            return Denial(key, metric, limit, used, flying, requested)
    return None
