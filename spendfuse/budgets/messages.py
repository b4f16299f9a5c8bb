"""Build ``BudgetExceeded`` errors with messages a tired on-call engineer understands."""

from __future__ import annotations

from datetime import datetime, timezone

from spendfuse.errors import ERROR_BY_LIMIT, BudgetExceeded

MICROS = 1_000_000


def people_dollars(value: float) -> str:
    """Dollars rounded for a person: cents from $1 up, else at most 2 significant digits
    ($0.00018, $0.0098); the warnings, the CLI and the demo all say money this way."""
    if value == 0:
        return "$0"
    if abs(value) >= 1:
        return f"${value:,.2f}"
    if abs(value) < 0.000001:
        return "<$0.000001"
    whole, _, decimals = f"{float(f'{value:.2g}'):.6f}".partition(".")
    return f"${whole}.{decimals.rstrip('0').ljust(2, '0')}"


def _money(micros: int) -> str:
    return f"${micros / MICROS:.4f}"


def _limit_money(micros: int) -> str:
    dollars = micros / MICROS
    return f"${dollars:.2f}" if round(dollars, 2) == dollars else f"${dollars:.4f}"


def _who(scope: str, key: str, window: str | None) -> str:
    if scope == "run":
        return f"run {key!r}"
    return f"{scope} {key!r}" + (f" ({window} window)" if window else "")


def _which(scope: str, key: str) -> str:
    """The setting to change, for a keyed scope's budget."""
    if scope == "run":
        return "the budget"
    if scope == "user":
        return f"user_budget for {key!r}"
    return f"budgets[{scope!r}] for {key!r}"


def _in(scope: str, key: str) -> str:
    return "" if scope == "run" else " in " + _which(scope, key)


def budget_error(
    *,
    scope: str,
    key: str,
    limit: str,
    limit_value: int | float,
    spent: int | float,
    in_flight: int | float,
    requested: int | float,
    model: str | None,
    max_tokens: int | None,
    run_id: str | None,
    user_id: str | None,
    window: str | None = None,
    window_resets_at: float | None = None,
) -> BudgetExceeded:
    """Numbers come in the store's units (micro-dollars for usd) and leave in the API's (dollars)."""
    who = _who(scope, key, window)
    call = f"{model}, max_tokens={max_tokens}" if model else "this call"
    resets = datetime.fromtimestamp(window_resets_at, tz=timezone.utc) if window_resets_at is not None else None
    reset_hint = f"; the window resets at {resets:%Y-%m-%d %H:%M} UTC" if resets is not None else ""
    flying = ""
    if limit == "usd":
        if in_flight:
            flying = f" (+{_money(int(in_flight))} reserved by calls in flight)"
        message = (
            f"{who} would exceed its {_limit_money(int(limit_value))} budget: {_money(int(spent))} spent{flying}, "
            f"this call could cost up to {_money(int(requested))} ({call}); "
            f"raise {_which(scope, key)} or lower max_tokens{reset_hint}"
        )
        values = (limit_value / MICROS, spent / MICROS, requested / MICROS, in_flight / MICROS)
    elif limit == "turns":
        if in_flight:
            flying = f" (+{int(in_flight)} in flight)"
        message = (
            f"{who} has used {int(spent)} of its {int(limit_value)} turns{flying}; "
            f"refusing another model call ({call}); raise turns{_in(scope, key)} or end the run{reset_hint}"
        )
        values = (limit_value, spent, requested, in_flight)
    elif limit == "tokens":
        if in_flight:
            flying = f" (+{int(in_flight)} reserved in flight)"
        message = (
            f"{who} would exceed its {int(limit_value)}-token budget: {int(spent)} used{flying}, "
            f"this call could use up to {int(requested)} ({call}); "
            f"raise tokens{_in(scope, key)} or lower max_tokens{reset_hint}"
        )
        values = (limit_value, spent, requested, in_flight)
    elif limit == "seconds":
        message = (
            f"{who} has run {float(spent):.1f}s, past its {float(limit_value):g}s limit; "
            f"refusing another model call ({call}); raise seconds or split the task"
        )
        values = (limit_value, spent, requested, in_flight)
    else:  # repeats
        message = (
            f"{who} is stuck in a loop: the model requested the same tool call {int(spent)} times "
            f"(limit {int(limit_value)}); refusing another model call ({call}); "
            "fix the tool's result or the prompt, or raise repeats"
        )
        values = (limit_value, spent, requested, in_flight)
    cls = ERROR_BY_LIMIT.get(limit, BudgetExceeded)
    error = cls(
        message,
        scope=scope,
        key=key,
        limit=limit,
        limit_value=values[0],
        spent=values[1],
        requested=values[2],
        in_flight=values[3],
        window_resets_at=resets,
        run_id=run_id,
        user_id=user_id,
        model=model,
    )
    error.window = window
    return error
