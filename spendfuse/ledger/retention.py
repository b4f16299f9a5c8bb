"""When to prune the ledger: on a write, at most once an hour per process.

Pruning on the write path (rather than a scheduled job) keeps the ledger bounded with nothing else
to run; doing it rarely keeps the DELETE off almost every batch.
"""

from __future__ import annotations

import time
from collections.abc import Callable

PRUNE_INTERVAL_SECONDS = 3600.0
NANOS = 1_000_000_000


class Retention:
    def __init__(self, days: float | None, *, clock: Callable[[], float] = time.time) -> None:
        self.days = days
        self._clock = clock
        self._last: float | None = None

    def due(self) -> int | None:
        """The cutoff (unix nanoseconds) when a prune is due now, else None; marks it done."""
        if self.days is None:
            return None
        now = self._clock()
        if self._last is not None and now - self._last < PRUNE_INTERVAL_SECONDS:
            return None
        self._last = now
        return int((now - self.days * 86400) * NANOS)
