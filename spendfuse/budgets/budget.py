"""``Budget``: the limits of one scope, validated when built, and the UTC windows of user budgets."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from spendfuse.errors import ConfigError

BUDGET_FORM = (
    "comma-separated key=value pairs, keys usd (dollars), turns, tokens, repeats (whole numbers), "
    "seconds, window (1h|1d|7d|30d|month), e.g. 'usd=0.5,turns=20'"
)
WINDOWS: dict[str, int | None] = {"1h": 3600, "1d": 86400, "7d": 7 * 86400, "30d": 30 * 86400, "month": None}
MICROS_PER_USD = 1_000_000


def shown(value: object) -> str:
    """``repr(value)`` for an error message, short, and never raising (a 5000-digit int cannot be shown)."""
    try:
        text = repr(value)
    except Exception:
        return f"<{type(value).__name__}>"
    return text if len(text) <= 60 else text[:57] + "..."


def _check_number(name: str, value: object, *, integral: bool, where: str) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{where}{name}: {shown(value)} is not a number; accepted: {BUDGET_FORM}")
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        raise ConfigError(f"{where}{name}: {value!r} is not a finite number; accepted: {BUDGET_FORM}")
    # Limits are shown and compared as floats downstream (describe, remaining seconds, micro-dollars).
    scale = MICROS_PER_USD if name == "usd" else 1
    try:
        finite = math.isfinite(float(value) * scale)
    except OverflowError:
        finite = False
    if not finite:
        raise ConfigError(f"{where}{name}: {shown(value)} is too large; accepted: {BUDGET_FORM}")
    if value < 0:
        raise ConfigError(f"{where}{name}: {value!r} is negative; limits are >= 0")
    if integral and isinstance(value, float) and not value.is_integer():
        raise ConfigError(f"{where}{name}: {value!r} must be a whole number")


@dataclass(frozen=True, slots=True)
class Budget:
    """Limits of one scope. ``None`` means unlimited; ``0`` admits nothing.

    ``usd`` is in dollars; ``turns`` counts model calls; ``tokens`` counts input + output tokens;
    ``seconds`` is the run's wall clock; ``repeats`` is how many times the model may request the
    same tool with the same arguments within a run; ``window`` applies to user budgets only.
    """

    usd: float | None = None
    turns: int | None = None
    tokens: int | None = None
    seconds: float | None = None
    repeats: int | None = None
    window: str | None = None

    def __post_init__(self) -> None:
        self.validate()

    def validate(self, where: str = "Budget.") -> None:
        _check_number("usd", self.usd, integral=False, where=where)
        _check_number("turns", self.turns, integral=True, where=where)
        _check_number("tokens", self.tokens, integral=True, where=where)
        _check_number("seconds", self.seconds, integral=False, where=where)
        _check_number("repeats", self.repeats, integral=True, where=where)
        if self.window is not None and (not isinstance(self.window, str) or self.window not in WINDOWS):
            raise ConfigError(f"{where}window: {shown(self.window)} is not a window; accepted: {', '.join(WINDOWS)}")

    @property
    def usd_micros(self) -> int | None:
        # Round down: a $0.10 budget must never admit $0.1000001.
        return None if self.usd is None else math.floor(round(self.usd * MICROS_PER_USD, 6))

    @property
    def is_unlimited(self) -> bool:
        return (
            self.usd is None
            and self.turns is None
            and self.tokens is None
            and self.seconds is None
            and self.repeats is None
        )

    @classmethod
    def parse(cls, text: str, *, source: str = "budget") -> Budget:
        """Parse ``'usd=0.5,turns=20,window=1d'``; ``source`` names the variable in errors."""
        if not isinstance(text, str):
            raise ConfigError(f"{source}: {shown(text)} is not a string; accepted: {BUDGET_FORM}")
        values: dict[str, object] = {}
        for part in (p.strip() for p in text.split(",")):
            if not part:
                continue
            key, sep, raw = part.partition("=")
            key, raw = key.strip().lower(), raw.strip()
            if not sep or not raw:
                raise ConfigError(f"{source}: {part!r} is not key=value; accepted: {BUDGET_FORM}")
            if key == "window":
                values[key] = raw
                continue
            if key not in ("usd", "turns", "tokens", "seconds", "repeats"):
                raise ConfigError(f"{source}: unknown key {key!r}; accepted: {BUDGET_FORM}")
            try:
                number = float(raw.lstrip("$"))
            except ValueError:
                raise ConfigError(f"{source}: {key}={raw!r} is not a number; accepted: {BUDGET_FORM}") from None
            values[key] = int(number) if key in ("turns", "tokens", "repeats") and number.is_integer() else number
        return cls.from_mapping(values, source=source)

    @classmethod
    def from_mapping(cls, data: object, *, source: str = "budget") -> Budget:
        if isinstance(data, Budget):
            return data
        if isinstance(data, str):
            return cls.parse(data, source=source)
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: {shown(data)} is not a budget; accepted: a table or {BUDGET_FORM}")
        unknown = set(data) - {"usd", "turns", "tokens", "seconds", "repeats", "window"}
        if unknown:
            raise ConfigError(f"{source}: unknown key(s) {sorted(unknown, key=repr)}; accepted: {BUDGET_FORM}")
        budget = cls.__new__(cls)
        for name in ("usd", "turns", "tokens", "seconds", "repeats", "window"):
            object.__setattr__(budget, name, data.get(name))
        budget.validate(where=f"{source}.")
        if budget.turns is not None:
            object.__setattr__(budget, "turns", int(budget.turns))
        if budget.tokens is not None:
            object.__setattr__(budget, "tokens", int(budget.tokens))
        if budget.repeats is not None:
            object.__setattr__(budget, "repeats", int(budget.repeats))
        return budget

    def describe(self) -> str:
        parts = []
        if self.usd is not None:
            parts.append(f"${self.usd:g}")
        for name in ("turns", "tokens", "seconds", "repeats"):
            value = getattr(self, name)
            if value is not None:
                parts.append(f"{value:g} {name}")
        text = ", ".join(parts) or "unlimited"
        return f"{text} per {self.window}" if self.window else text


def user_scope_key(user_id: str, window: str | None, window_start: int | None) -> str:
    """The store key of a user's budget window: new keys per window, so nothing needs resetting."""
    return scope_key("user", user_id, window, window_start)


def scope_key(scope: str, key: str, window: str | None, window_start: int | None) -> str:
    """The store key of a scope's budget window (``team/1d/<start>/search``)."""
    if window is None or window_start is None:
        return f"{scope}/lifetime/{key}"
    return f"{scope}/{window}/{window_start}/{key}"


def window_bounds(window: str, now: float) -> tuple[int, int]:
    """Start and end (unix seconds) of the UTC-aligned window holding ``now``.

    Fixed windows are aligned to the unix epoch (so ``1d`` starts at 00:00 UTC and ``7d`` on a
    Thursday, the epoch's weekday); ``month`` is the calendar month in UTC.
    """
    length = WINDOWS[window]
    if length is not None:
        start = int(now // length) * length
        return start, start + length
    moment = datetime.fromtimestamp(now, tz=timezone.utc)
    first = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    following = (first + timedelta(days=32)).replace(day=1)
    return int(first.timestamp()), int(following.timestamp())
