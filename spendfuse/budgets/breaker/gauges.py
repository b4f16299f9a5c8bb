"""The user-window gauges: spent and limit of the users seen lately, read from the store on collect."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from spendfuse.budgets import stores
from spendfuse.budgets.breaker.scopes import UserScope
from spendfuse.budgets.critical import GuardedLock
from spendfuse.telemetry import names

MICROS = 1_000_000
MAX_GAUGE_USERS = 200

GaugeRow = tuple[float, float, dict[str, str]]


class GaugeUsers:
    def __init__(self, store: Callable[[], stores.BudgetStore]) -> None:
        self._store = store
        self._lock = GuardedLock()
        self._users: OrderedDict[str, UserScope] = OrderedDict()
        self._last: UserScope | None = None

    def note(self, user: UserScope) -> None:
        if user is self._last or stores.USD not in user.limits:
            return  # the same user again (an agent loop): already the most recent
        self._last = user
        users = self._users
        with self._lock:
            users[user.user_id] = user
            users.move_to_end(user.user_id)
            while len(users) > MAX_GAUGE_USERS:
                users.popitem(last=False)

    def rows(self) -> list[GaugeRow]:
        now = time.time()
        with self._lock:
            users = list(self._users.values())
        rows: list[GaugeRow] = []
        store = self._store()
        for user in users:
            if user.window_end is not None and user.window_end <= now:
                continue
            usage = store.usage(user.key, now)
            spent = usage.spent.get(stores.USD, 0) + usage.in_flight.get(stores.USD, 0)
            attributes = {names.METRIC_ATTR_SCOPE: "user", names.USER_ID: user.user_id}
            if user.budget.window:
                attributes["spendfuse.window"] = user.budget.window
            rows.append((spent / MICROS, user.limits[stores.USD] / MICROS, attributes))
        return rows
