"""The scope-window gauges: spent and limit of the scopes seen lately, read from the store on collect.

User windows are always gauged (labelled with the user id, as before scopes existed); other scopes
only when named in ``metric_scopes``: a gauge row per key is a metric series per key.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Sequence

from spendfuse.budgets import stores
from spendfuse.budgets.breaker.scopes import Scope
from spendfuse.budgets.critical import GuardedLock
from spendfuse.telemetry import names

MICROS = 1_000_000
MAX_GAUGE_USERS = 200

GaugeRow = tuple[float, float, dict[str, str]]


class GaugeUsers:
    def __init__(self, store: Callable[[], stores.BudgetStore], metric_scopes: Collection[str] = ()) -> None:
        self._store = store
        self._metric_scopes = frozenset(metric_scopes) | {"user"}
        self._lock = GuardedLock()
        self._scopes: OrderedDict[tuple[str, str], Scope] = OrderedDict()
        self._last: Sequence[Scope] | None = None

    def note(self, scopes: Sequence[Scope]) -> None:
        last = self._last
        if last is not None and len(last) == len(scopes) and all(a is b for a, b in zip(last, scopes, strict=True)):
            return  # the same scopes again (an agent loop): already the most recent
        self._last = scopes
        wanted = [s for s in scopes if s.name in self._metric_scopes and stores.USD in s.limits]
        if not wanted:
            return
        with self._lock:
            for scope in wanted:
                marker = (scope.name, scope.key)
                self._scopes[marker] = scope
                self._scopes.move_to_end(marker)
            while len(self._scopes) > MAX_GAUGE_USERS:
                self._scopes.popitem(last=False)

    def rows(self) -> list[GaugeRow]:
        now = time.time()
        with self._lock:
            scopes = list(self._scopes.values())
        rows: list[GaugeRow] = []
        store = self._store()
        for scope in scopes:
            if scope.window_end is not None and scope.window_end <= now:
                continue
            usage = store.usage(scope.store_key, now)
            spent = usage.spent.get(stores.USD, 0) + usage.in_flight.get(stores.USD, 0)
            attributes = {names.METRIC_ATTR_SCOPE: scope.name}
            if scope.name == "user":
                attributes[names.USER_ID] = scope.key
            else:
                # One label name for every scope's key, so one query and one alert cover them all.
                attributes[names.METRIC_ATTR_SCOPE_KEY] = scope.key
            if scope.budget.window:
                attributes["spendfuse.window"] = scope.budget.window
            rows.append((spent / MICROS, scope.limits[stores.USD] / MICROS, attributes))
        return rows
