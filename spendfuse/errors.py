"""Every error spendfuse raises on purpose.

None of them subclasses a provider SDK error: SDK and tenacity retry loops catch those, and a
budget refusal retried forever is the very loop we exist to stop.
"""

from __future__ import annotations

from datetime import datetime


class SpendfuseError(Exception):
    """Base of spendfuse's deliberate errors."""


class ConfigError(SpendfuseError, ValueError):
    """A malformed setting; the message names the key or variable and the accepted form."""


class BudgetExceeded(SpendfuseError):
    """A call was refused before it left the process because it could break a budget.

    Numbers are in the limit's own unit: USD as float dollars, the rest as counts or seconds.
    """

    limit_name = ""

    def __init__(
        self,
        message: str,
        *,
        scope: str,
        key: str,
        limit: str,
        limit_value: float,
        spent: float,
        requested: float,
        in_flight: float = 0.0,
        window_resets_at: datetime | None = None,
        run_id: str | None = None,
        user_id: str | None = None,
        model: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.scope = scope
        self.key = key
        self.limit = limit
        self.limit_value = limit_value
        self.spent = spent
        self.in_flight = in_flight
        self.requested = requested
        self.window_resets_at = window_resets_at
        self.run_id = run_id
        self.user_id = user_id
        self.model = model
        self.window: str | None = None  # user scopes: the window name ("1d", "month", ...)
        # True when the run was already refused for this limit: a retry of a refusal, not a new trip.
        self.repeated = False

    def __reduce__(self):  # type: ignore[no-untyped-def]
        # Keyword-only constructor: make the error survive pickling (multiprocessing, Celery).
        return (_rebuild, (type(self), self.message, self.__dict__.copy()))


def _rebuild(cls: type[BudgetExceeded], message: str, state: dict[str, object]) -> BudgetExceeded:
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(state)
    return error


class CostLimitExceeded(BudgetExceeded):
    limit_name = "usd"


class TurnLimitExceeded(BudgetExceeded):
    limit_name = "turns"


class TokenLimitExceeded(BudgetExceeded):
    limit_name = "tokens"


class TimeLimitExceeded(BudgetExceeded):
    limit_name = "seconds"


class RepeatLimitExceeded(BudgetExceeded):
    limit_name = "repeats"


ERROR_BY_LIMIT: dict[str, type[BudgetExceeded]] = {
    cls.limit_name: cls
    for cls in (CostLimitExceeded, TurnLimitExceeded, TokenLimitExceeded, TimeLimitExceeded, RepeatLimitExceeded)
}


def is_budget_stop(error: BaseException | None) -> bool:
    """True when ``error`` is, wraps or was raised while handling a ``BudgetExceeded``.

    Frameworks wrap what a model call raised (LangChain, LiteLLM, tenacity's ``RetryError``, an
    agent's own exception): the search follows ``__cause__`` and ``__context__``, the
    ``exceptions`` of exception groups and tenacity's ``last_attempt``, and stops at a cycle.
    """
    seen: set[int] = set()
    todo: list[BaseException] = [] if error is None else [error]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, BudgetExceeded):
            return True
        for linked in (current.__cause__, current.__context__):
            if linked is not None:
                todo.append(linked)
        nested = getattr(current, "exceptions", None)
        if isinstance(nested, (list, tuple)):
            todo.extend(e for e in nested if isinstance(e, BaseException))
        attempt = getattr(current, "last_attempt", None)  # tenacity.RetryError
        if attempt is not None:
            try:
                inner = attempt.exception(timeout=0)  # never wait on a future that is not done
            except BaseException:  # a cancelled or unfinished future: nothing to follow
                inner = None
            if isinstance(inner, BaseException):
                todo.append(inner)
    return False


def retry_unless_budget_stop(error: BaseException) -> bool:
    """A retry predicate: retry anything but a budget stop.

    tenacity: ``retry=tenacity.retry_if_exception(spendfuse.retry_unless_budget_stop)``;
    LangChain: ``runnable.with_retry(retry_if_exception_type=...)`` takes types only, so raise
    through ``spendfuse.BudgetExceeded`` (never a subclass of a provider error, so provider-error
    retries skip it) or filter with this predicate in your own loop.
    """
    return not is_budget_stop(error)


class UnpricedModelError(SpendfuseError):
    """A USD limit applies to a call whose model has no known price."""

    def __init__(self, model: str, provider: str) -> None:
        super().__init__(
            f"no price known for {provider} model {model!r}, and a USD budget applies to this call; "
            f"add one with spendfuse.instrument(prices={{{model!r}: {{'input': 3.0, 'output': 15.0}}}}) "
            "(USD per million tokens) or a [prices] table in the spendfuse TOML file; for a deployment "
            f"or alias, name the model it serves: spendfuse.instrument(deployments={{{model!r}: 'gpt-4o'}})"
        )
        self.model = model
        self.provider = provider


class BudgetStoreUnavailable(SpendfuseError):
    """The budget store did not answer in time and store_failure is "closed"."""
