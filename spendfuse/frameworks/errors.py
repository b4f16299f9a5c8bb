"""Recognise a budget stop however a framework wrapped it.

Frameworks re-raise provider errors as their own (LiteLLM ``InternalServerError``, smolagents
``AgentGenerationError``, ...), sometimes with ``raise ... from``, sometimes only implicitly, and
sometimes by copying the message into a new exception. This follows ``__cause__`` and
``__context__`` (and the ``original_exception`` / ``exceptions`` attributes some wrappers keep).

A private stand-in until ``spendfuse.is_budget_stop`` lands; both answer the same question.
"""

from __future__ import annotations

from spendfuse.errors import BudgetExceeded

_LIMIT = 64  # exceptions examined; chains are short, a cycle must not loop forever


def find_budget_stop(error: BaseException | None) -> BudgetExceeded | None:
    """The ``BudgetExceeded`` behind ``error``, or None."""
    pending: list[BaseException] = [error] if error is not None else []
    seen: set[int] = set()
    while pending and len(seen) < _LIMIT:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, BudgetExceeded):
            return current
        for linked in (
            current.__cause__,
            current.__context__,
            getattr(current, "original_exception", None),
            getattr(current, "original_error", None),
        ):
            if isinstance(linked, BaseException):
                pending.append(linked)
        group = getattr(current, "exceptions", None)
        if isinstance(group, (list, tuple)):
            pending.extend(item for item in group if isinstance(item, BaseException))
    return None


def is_budget_stop(error: BaseException | None) -> bool:
    """Whether ``error`` is, or was caused by, a spendfuse budget stop."""
    return find_budget_stop(error) is not None
