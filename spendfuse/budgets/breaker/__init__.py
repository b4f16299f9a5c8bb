"""The breaker: admit a call only if its worst case fits every budget it touches (see ``core``)."""

from spendfuse.budgets.breaker.core import Breaker
from spendfuse.budgets.breaker.request import Admission, CallRequest, SpanLike

__all__ = ["Admission", "Breaker", "CallRequest", "SpanLike"]
