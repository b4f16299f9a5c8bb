"""A run's in-process balance and the read-only views ``run.spent`` / ``run.remaining`` expose.

Run balances never leave the process (a run lives in one process), so they skip the store and are
reserved under one module lock: reserving a run and all its parents stays atomic and sub-microsecond.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from spendfuse.budgets.critical import GuardedLock

if TYPE_CHECKING:
    from spendfuse.budgets.usage import TokenUsage

# Guarded: a stream settled by the garbage collector while this thread holds it is deferred, not
# deadlocked (see spendfuse.budgets.critical).
RUN_LOCK = GuardedLock()

MICROS = 1_000_000


@dataclass(slots=True)
class Balance:
    """Integers only: ``usd`` in micro-dollars."""

    usd: int = 0
    turns: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    # In flight: reserved worst cases of calls not yet settled.
    flight_usd: int = 0
    flight_turns: int = 0
    flight_tokens: int = 0
    unknown_cost_calls: int = 0

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    # The arithmetic below runs with RUN_LOCK held by the caller (the breaker), for every run of a
    # chain at once.

    def reserve(self, usd: int, turns: int, tokens: int) -> None:
        self.flight_usd += usd
        self.flight_turns += turns
        self.flight_tokens += tokens

    def unreserve(self, usd: int, turns: int, tokens: int) -> None:
        self.flight_usd -= usd
        self.flight_turns -= turns
        self.flight_tokens -= tokens

    def settle(
        self, reserved_usd: int, reserved_tokens: int, usage: TokenUsage | None, cost: int | None, turns: int = 1
    ) -> None:
        """Replace one call's reservation (one turn) by what it used; ``usage`` None: nothing billed,
        ``cost`` None: billed at a price nobody knows (counted, never taken as $0 silently).

        ``turns=0`` closes one attempt of a call the SDK retries: its money is settled while the
        call's turn stays in flight until the call itself ends."""
        self.flight_usd -= reserved_usd
        self.flight_turns -= turns
        self.flight_tokens -= reserved_tokens
        self.turns += turns
        if cost:
            self.usd += cost
        if usage is not None:
            self.input_tokens += usage.input_tokens
            self.output_tokens += usage.output_tokens
            self.cache_read_tokens += usage.cache_read_tokens
            self.cache_write_tokens += usage.cache_write_tokens
            if cost is None:
                self.unknown_cost_calls += 1


@dataclass(frozen=True, slots=True)
class Spent:
    """What a run has spent (settled calls; nested runs included). ``usd`` in dollars."""

    usd: float
    usd_micros: int
    turns: int
    tokens: int
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    in_flight_usd: float
    unknown_cost_calls: int

    @classmethod
    def of(cls, balance: Balance) -> Spent:
        with RUN_LOCK:
            return cls(
                usd=balance.usd / MICROS,
                usd_micros=balance.usd,
                turns=balance.turns,
                tokens=balance.tokens,
                input_tokens=balance.input_tokens,
                output_tokens=balance.output_tokens,
                cache_read_tokens=balance.cache_read_tokens,
                cache_write_tokens=balance.cache_write_tokens,
                in_flight_usd=balance.flight_usd / MICROS,
                unknown_cost_calls=balance.unknown_cost_calls,
            )


@dataclass(frozen=True, slots=True)
class Remaining:
    """What is left of a run's own budget; ``None`` where that limit is unset."""

    usd: float | None
    turns: int | None
    tokens: int | None
    seconds: float | None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
