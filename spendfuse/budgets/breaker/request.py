"""The breaker's data: what a call asks for, what it holds once admitted, why it was refused."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from opentelemetry.trace import Status

    from spendfuse.budgets.breaker.scopes import Scope
    from spendfuse.budgets.pricing import Rates
    from spendfuse.runs.run import Run


class SpanLike(Protocol):
    """The part of a span the breaker writes: a live OpenTelemetry span or a plain-data stand-in."""

    def set_attribute(self, key: str, value: Any) -> Any: ...

    def add_event(self, name: str, attributes: Any = ...) -> Any: ...

    def set_status(self, status: Status) -> Any: ...


@dataclass(slots=True)
class CallRequest:
    """What the breaker needs to know about one model call, extracted from the request body."""

    provider: str
    api: str
    model: str
    body: Mapping[str, Any]
    max_tokens: int | None  # per choice, as the request sends it; None: the model's maximum
    cache_write: bool = False
    cache_write_1h: bool = False
    service_tier: str | None = None
    speed: str | None = None
    # OpenAI ``n``: every choice may generate up to the output cap, and each is billed.
    choices: int = 1
    # The most uses of each server-side tool (web search, web fetch, file search, code execution)
    # the request allows, each billed per use; None: no server tools.
    tool_uses: tuple[int, int, int, int] | None = None


@dataclass(slots=True)
class Admission:
    """A reservation held by one call until it is settled or released (exactly once)."""

    run: Run | None
    rates: Rates | None
    input_estimate: int
    max_output: int
    reserved_usd: int
    reserved_tokens: int
    lease_id: str = ""
    user_key: str | None = None  # the user scope's store key, when the call touched one
    # One lease in the store holds the reservation on every keyed scope of the call.
    leased: bool = False
    scopes: tuple[Scope, ...] = ()
    clamped_to: int | None = None
    approved: bool = False
    fail_open: bool = False
    # One ticket: the first claim takes it. ``next`` on a count is atomic and takes no lock, so a
    # claim made from a finalizer in the middle of another claim can neither block nor double-settle.
    _tickets: itertools.count[int] = field(default_factory=itertools.count)

    def claim(self) -> bool:
        """True for the first caller only: settlement happens exactly once."""
        return next(self._tickets) == 0


@dataclass(slots=True)
class Denied:
    """The first limit a call did not fit: numbers in the store's units (micro-dollars for usd)."""

    scope: str
    key: str
    metric: str
    limit: int
    spent: int
    in_flight: int
    requested: int
    window: str | None = None
    window_end: float | None = None
