"""One place decides what a finished call cost: its usage (reported or estimated) and its price.

``settle`` is called once per dispatched call, when its response or stream ends. It takes plain
data (what the request asked, what the admission reserved, what the answer reported) and hands
the result to the breaker, which replaces the reservation by it. The instrumentation only reads
the answer and writes the ``Settlement`` onto the call's span.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

from spendfuse.budgets.estimate import PrefixMemo, estimate_input_tokens
from spendfuse.budgets.usage import TokenUsage

if TYPE_CHECKING:
    from spendfuse.budgets.breaker import Admission, Breaker, CallRequest
    from spendfuse.budgets.pricing import PriceBook


class Answer(NamedTuple):
    """What the provider's answer told us, as far as it was read (a tuple: made once per call)."""

    answered: bool  # a response (or part of a stream) was read; False: an error or unreadable body
    usage: TokenUsage | None  # as reported by the provider
    output_seen: int  # output tokens estimated from what was received (streams cut short)
    complete: bool  # the response or stream was read to its end
    # "complete", "error", "unreadable", "abandoned", "closed", "cancelled", "expired" (a background
    # response never retrieved), "unanswered" (sent, no answer: charged at the reservation),
    # "refused" (a retry the budget no longer admitted)
    reason: str
    response_model: str | None = None  # the model that answered, as the response names it


@dataclass(frozen=True, slots=True)
class Settlement:
    usage: TokenUsage | None  # None: nothing was billed
    cost: int | None  # micro-dollars; None: the model has no known price
    estimated: bool  # usage is an estimate, not the provider's report
    reason: str


UNANSWERED = "unanswered"


def unanswered_usage(input_estimate: int, admission: Admission | None) -> TokenUsage:
    """What a request sent but never answered may have been billed: its worst case, as reserved."""
    return TokenUsage(input_tokens=input_estimate, output_tokens=admission.max_output if admission else 0)


def unanswered_charge(
    prices: PriceBook, request: CallRequest, admission: Admission | None, memo: PrefixMemo | None
) -> tuple[TokenUsage, int | None]:
    """The charge of one attempt that was sent and got no answer: its reservation, usd and tokens.

    The reserved amount itself, not the usage re-priced, so that what is charged is exactly what
    was held (cache-write and tiered prices included). A call admitted without a reservation
    (telemetry only) has its worst case computed here; ``None``: the model has no known price.
    """
    input_estimate = admission.input_estimate if admission is not None else -1
    if input_estimate < 0:
        input_estimate = estimate_input_tokens(request.provider, request.api, request.model, request.body, memo)
    usage = unanswered_usage(input_estimate, admission)
    rates = (
        admission.rates
        if admission is not None
        else prices.rates(request.provider, request.model, service_tier=request.service_tier, speed=request.speed)
    )
    if rates is None:
        return usage, None
    if admission is not None and admission.input_estimate >= 0:
        return usage, admission.reserved_usd
    return usage, prices.worst_case_micros(
        rates, input_tokens=usage.input_tokens, max_output_tokens=usage.output_tokens,
        cache_write=request.cache_write, cache_write_1h=request.cache_write_1h,
    )  # fmt: skip


def settled_usage(
    request: CallRequest, admission: Admission | None, answer: Answer, memo: PrefixMemo | None
) -> tuple[TokenUsage | None, bool]:
    """Reported usage, or an estimate of what was received when the provider sent none."""
    input_estimate = admission.input_estimate if admission is not None else 0
    if input_estimate < 0 and (not answer.answered or answer.usage is None or not answer.complete):
        # Telemetry-only calls skip the estimate at admission; the rare call without reported
        # usage makes it here.
        input_estimate = estimate_input_tokens(request.provider, request.api, request.model, request.body, memo)
    if not answer.answered:
        if answer.reason == UNANSWERED:
            return unanswered_usage(input_estimate, admission), True
        if answer.reason in ("unreadable", "expired") and admission is not None:
            # A body we could not read may still have been billed in full: charge the worst case.
            worst = TokenUsage(input_tokens=input_estimate, output_tokens=admission.max_output)
            if request.tool_uses is not None:  # and every server-tool use the request allowed
                (worst.web_search_uses, worst.web_fetch_uses, worst.file_search_uses,
                 worst.code_execution_uses) = request.tool_uses  # fmt: skip
            return worst, True
        return None, False
    usage, received = answer.usage, answer.output_seen
    if admission is not None and received > admission.max_output:
        # The provider never returns more than the request's output cap: an estimate above it
        # would charge more than the reserved worst case, past the limit that admitted the call.
        received = admission.max_output
    if usage is not None and answer.complete:
        return usage, False
    if usage is None:
        if not answer.complete and received == 0 and answer.reason == "error":
            return None, False
        return TokenUsage(input_tokens=input_estimate, output_tokens=received), True
    if usage.output_tokens < received:  # stream cut before the final usage arrived
        return dataclasses.replace(usage, output_tokens=received), True
    return usage, not answer.complete


def settle(
    breaker: Breaker,
    prices: PriceBook,
    request: CallRequest,
    admission: Admission | None,
    answer: Answer,
    memo: PrefixMemo | None = None,
) -> Settlement:
    """Price the call's usage and settle its reservation (when it had one); exactly once per call.

    OpenAI's reasoning tokens are part of its output tokens: they are never priced on their own.
    A request model the price book does not know (an Azure deployment name, an alias) is priced
    by the model that answered; unknown after both, the cost is unknown (None), never $0.
    """
    if answer.reason == UNANSWERED:
        charged, charge = unanswered_charge(prices, request, admission, memo)
        if admission is not None:
            breaker.settle(admission, charged, charge)
        return Settlement(charged, charge, True, answer.reason)
    usage, estimated = settled_usage(request, admission, answer, memo)
    rates = (
        admission.rates
        if admission is not None
        else prices.rates(request.provider, request.model, service_tier=request.service_tier, speed=request.speed)
    )
    answered_by = answer.response_model
    if rates is None and isinstance(answered_by, str) and answered_by and answered_by != request.model:
        rates = prices.rates(request.provider, answered_by, service_tier=request.service_tier, speed=request.speed)
    cost: int | None
    if usage is None:
        cost = 0
    elif rates is None:
        cost = None
    else:
        cost = prices.cost_micros(rates, usage)
    if admission is not None:
        breaker.settle(admission, usage, cost)
    return Settlement(usage, cost, estimated, answer.reason)
