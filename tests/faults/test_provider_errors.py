"""Provider failures on every call shape of both SDKs.

For each fault the same call first runs without spendfuse, then instrumented inside a run with a
user budget. Instrumented, the caller gets exactly the exception the bare SDK raised (same type), the
provider sees the same number of requests, the run and the user's store hold no reservation, the
one ``chat`` span is ended with ``error.type``, and the call settles once (one turn, one duration
point). Money: a call the provider answered with an error status, or whose request never left
(connection refused), costs exactly 0; what did arrive is charged; a success body the SDK could not
parse is charged its reserved worst case (it was billed, unread); a request that was sent and never
answered (client timeout, connection reset or closed after the body left) may have been billed by
the provider, so it stays charged at its reservation, marked estimated (DESIGN §4, "Settle").
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx2
import pytest

import spendfuse
from spendfuse import runtime
from spendfuse.testing import FakeProvider, FakeServer, FakeUsage, Reply, clients

from ._calls import (
    MAX_TOKENS,
    SHAPE_IDS,
    SHAPES,
    USER_KEY,
    Shape,
    SpanTracker,
    attributes_of,
    client_for,
    create,
    histogram_count,
    micros,
    perform,
)

USER = "fault-user"


class RaisingTransport(httpx2.BaseTransport, httpx2.AsyncBaseTransport):
    """A transport whose every request fails the way a dead network does."""

    def __init__(self, make_error: Callable[[httpx2.Request], Exception]) -> None:
        self.make_error = make_error
        self.calls = 0

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        self.calls += 1
        raise self.make_error(request)

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        self.calls += 1
        raise self.make_error(request)


@dataclass(frozen=True)
class Fault:
    name: str
    via: str  # "mock" (in-process transport), "server" (real loopback socket) or "transport" (raising)
    reply: Callable[[], Reply] | None = None
    error: Callable[[httpx2.Request], Exception] | None = None
    latency: float = 0.0
    client_timeout: float | None = None
    billable: bool = False  # something billable reached the client before the end
    # Sent, and no answer came back (before any response line): charged at the reservation.
    unanswered: bool = False

    def unanswered_on(self, shape: Shape) -> bool:
        # A stream reset after 0 events was answered (its response line came): a broken stream.
        return self.unanswered and not (self.name == "reset-before-body" and shape.stream)


FAULTS = [
    Fault("http-429", "mock", lambda: Reply.error(429)),
    Fault("http-500", "mock", lambda: Reply.error(500)),
    Fault("http-529", "mock", lambda: Reply.error(529)),
    Fault("reset-before-body", "server", lambda: Reply.stream_failure(after_events=0), unanswered=True),
    Fault("reset-mid-body", "server", lambda: Reply.stream_failure(after_events=4), billable=True),
    Fault("connect-refused", "transport", error=lambda r: httpx2.ConnectError("Connection refused", request=r)),
    Fault(
        "read-reset",
        "transport",
        error=lambda r: httpx2.ReadError("Connection reset by peer", request=r),
        unanswered=True,
    ),
    Fault("timeout", "server", latency=0.6, client_timeout=0.1, unanswered=True),
    Fault("malformed-json", "mock", Reply.malformed_json),
    Fault("missing-usage", "mock", lambda: Reply.no_usage("It is sunny in Paris today."), billable=True),
]


@dataclass
class Source:
    make_client: Callable[[], Any]
    requests: Callable[[], int]


@contextmanager
def source(fault: Fault, shape: Shape) -> Iterator[Source]:
    """A fresh provider set up to fail this way, and a factory of the shape's client pointed at it."""
    options: dict[str, Any] = {}
    if fault.client_timeout is not None:
        options["timeout"] = fault.client_timeout
    prefix = "async_" if shape.is_async else ""
    if fault.via == "transport":
        assert fault.error is not None
        transport = RaisingTransport(fault.error)
        factory = getattr(clients, f"{prefix}{shape.sdk}_client")
        yield Source(lambda: factory(transport=transport, **options), lambda: transport.calls)
        return
    fake = FakeProvider(latency=fault.latency, usage=FakeUsage(1000, 200))
    if fault.reply is not None:
        fake.enqueue(fault.reply())
    if fault.via == "mock":
        yield Source(lambda: getattr(fake, f"{prefix}{shape.sdk}_client")(**options), lambda: fake.request_count)
        return
    with FakeServer(fake) as server:
        yield Source(lambda: getattr(server, f"{prefix}{shape.sdk}_client")(**options), lambda: fake.request_count)


def store_usage(user: str) -> Any:
    active = runtime.current()
    assert active is not None
    return active.breaker.store.usage(USER_KEY.format(user=user), 0.0)


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("fault", FAULTS, ids=[fault.name for fault in FAULTS])
def test_provider_fault(fault: Fault, shape: Shape, instrument: Any, telemetry: Any, tracker: SpanTracker) -> None:
    with source(fault, shape) as bare:
        expected = perform(shape, bare.make_client)
        expected_requests = bare.requests()
    if fault.billable:
        assert expected is None or fault.via == "server", "the fault scenario changed"
    else:
        assert expected is not None, "the fault scenario no longer fails without spendfuse"

    instrument(user_budget={"usd": 100})
    with source(fault, shape) as faulty, spendfuse.run("faulty", user_id=USER, budget=spendfuse.Budget(usd=5)) as run:
        error = perform(shape, faulty.make_client)
        requests = faulty.requests()

    # The caller sees what the bare SDK raised, and the provider saw the same traffic.
    assert type(error) is type(expected), (error, expected)
    assert not isinstance(error, spendfuse.BudgetExceeded)
    assert requests == expected_requests >= 1

    # Nothing stays reserved, anywhere.
    balance = run.balance
    assert (balance.flight_usd, balance.flight_turns, balance.flight_tokens) == (0, 0, 0)
    usage = store_usage(USER)
    assert usage.leases == 0 and all(value == 0 for value in usage.in_flight.values()), usage

    # Settled exactly once: one turn, one chat span started and ended, one duration point.
    assert run.spent.turns == 1 and usage.spent["turns"] == 1
    assert len(tracker.chat_started()) == 1 and len(tracker.chat_ended()) == 1
    assert tracker.open_spans() == []
    assert histogram_count(telemetry, "gen_ai.client.operation.duration") == 1
    span = tracker.chat_ended()[0]
    attributes = attributes_of(span)

    # Money: exactly what the store and the run agree on; zero when nothing billable arrived.
    assert usage.spent["usd"] == run.spent.usd_micros
    assert "spendfuse.cost.unknown" not in attributes
    reserved = micros(attributes["spendfuse.reserved.usd"])
    assert 0 <= run.spent.usd_micros <= reserved
    if error is not None:
        assert attributes["error.type"] == type(error).__qualname__
        assert span.status.status_code.name == "ERROR"
    if fault.name == "malformed-json" and not shape.stream:
        # A success body nobody could read was billed all the same: the worst case is charged.
        assert run.spent.usd_micros == reserved > 0
        assert attributes["spendfuse.usage.estimated"] is True
    elif fault.unanswered_on(shape):
        # Sent and never answered: possibly billed, so charged at its reservation, an estimate.
        assert run.spent.usd_micros == reserved > 0
        assert attributes["spendfuse.usage.estimated"] is True
        assert run.spent.output_tokens == attributes["gen_ai.usage.output_tokens"] == MAX_TOKENS
        assert run.spent.tokens == usage.spent["tokens"]
        assert attributes["spendfuse.attempts"] == 1
    elif not fault.billable:
        assert run.spent.usd_micros == 0 and run.spent.tokens == 0
        assert attributes["spendfuse.cost.usd"] == 0.0
    elif fault.name == "missing-usage":
        assert error is None
        assert attributes["spendfuse.usage.estimated"] is True
        assert run.spent.usd_micros > 0 and attributes["gen_ai.usage.output_tokens"] >= 1
    assert run.spent.usd_micros == micros(attributes["spendfuse.cost.usd"])


UNANSWERED_FAULTS = [fault for fault in FAULTS if fault.unanswered]


@pytest.mark.parametrize("shape", [shape for shape in SHAPES if not shape.stream],
                         ids=[shape.id for shape in SHAPES if not shape.stream])  # fmt: skip
@pytest.mark.parametrize("fault", UNANSWERED_FAULTS, ids=[fault.name for fault in UNANSWERED_FAULTS])
def test_unanswered_released_costs_nothing(fault: Fault, shape: Shape, instrument: Any, tracker: SpanTracker) -> None:
    """``unanswered="released"``: a request sent and never answered is charged nothing."""
    instrument(user_budget={"usd": 100}, unanswered="released")
    with source(fault, shape) as faulty, spendfuse.run("released", user_id=USER, budget=spendfuse.Budget(usd=5)) as run:
        error = perform(shape, faulty.make_client)
    assert error is not None and not isinstance(error, spendfuse.BudgetExceeded)
    usage = store_usage(USER)
    assert usage.leases == 0 and all(value == 0 for value in usage.in_flight.values()), usage
    assert (run.spent.turns, run.spent.usd_micros, run.spent.tokens) == (1, 0, 0)
    assert (usage.spent["turns"], usage.spent["usd"], usage.spent["tokens"]) == (1, 0, 0)
    attributes = attributes_of(tracker.chat_ended()[0])
    assert attributes["spendfuse.cost.usd"] == 0.0
    assert "spendfuse.usage.estimated" not in attributes


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_sdk_retries_are_one_turn_settled_once(shape: Shape, instrument: Any, tracker: SpanTracker) -> None:
    instrument()
    fake = FakeProvider(usage=FakeUsage(1000, 200))
    fake.enqueue(Reply.error(500, retry_after=0.01), Reply.error(529, retry_after=0.01), Reply.text("Sunny."))
    with spendfuse.run("retried", budget=spendfuse.Budget(usd=5)) as run:
        error = perform(
            shape, lambda: getattr(fake, f"{'async_' if shape.is_async else ''}{shape.sdk}_client")(max_retries=2)
        )
    assert error is None
    assert fake.request_count == 3
    # claude-sonnet-4-5 $3/$15 per MTok, gpt-4o $2.50/$10: 1000 input and 200 output tokens.
    assert run.spent.usd_micros == (6_000 if shape.sdk == "anthropic" else 4_500)
    assert run.spent.turns == 1
    assert run.balance.flight_usd == 0 and run.balance.flight_turns == 0
    assert len(tracker.chat_ended()) == 1 and tracker.open_spans() == []


def test_the_exception_object_is_the_sdks_own(instrument: Any) -> None:
    """Not a copy or a wrapper: the very object, with its response and request id."""
    import anthropic

    instrument()
    fake = FakeProvider()
    fake.enqueue(Reply.error(429, retry_after=30))
    client = fake.anthropic_client()
    with pytest.raises(anthropic.RateLimitError) as caught, spendfuse.run("same"):
        create(SHAPES[0], client)
    error = caught.value
    assert error.status_code == 429
    assert error.response.headers["retry-after"] == "30"
    assert error.request_id is not None and error.request_id.startswith("req_fake_")
    assert error.__cause__ is None or not isinstance(error.__cause__, spendfuse.BudgetExceeded)


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_missing_usage_is_estimated_from_the_reply_text(shape: Shape, instrument: Any, tracker: SpanTracker) -> None:
    """No usage in the reply: the output is estimated at ~3 characters per token (never 0 for a
    reply that has text), marked as an estimate, and priced; the cost is known."""
    text = "The forecast for Paris: sunny, 24 degrees, light wind from the west."
    instrument()
    fake = FakeProvider()
    fake.enqueue(Reply.no_usage(text))
    with spendfuse.run("no-usage") as run:
        error = perform(shape, lambda: client_for(shape, fake))
    assert error is None
    attributes = attributes_of(tracker.chat_ended()[0])
    estimate = (len(text) + 2) // 3
    if shape.stream:  # at least one token per delta, or the character estimate
        assert attributes["gen_ai.usage.output_tokens"] >= estimate
    else:
        assert attributes["gen_ai.usage.output_tokens"] == estimate
    assert attributes["spendfuse.usage.estimated"] is True
    assert "spendfuse.cost.unknown" not in attributes
    assert run.spent.output_tokens == attributes["gen_ai.usage.output_tokens"]
    assert run.spent.usd_micros == micros(attributes["spendfuse.cost.usd"]) > 0


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_an_estimate_never_exceeds_the_output_cap(shape: Shape, instrument: Any, tracker: SpanTracker) -> None:
    """A long reply without usage, cut by the provider at max_tokens: at ~3 characters per token the
    text reads as more tokens than the provider can return. The estimate stops at max_tokens, so the
    charge stays within the worst case the budget admitted."""
    instrument()
    fake = FakeProvider()
    fake.enqueue(Reply.no_usage(" ".join(["word"] * 400)))  # the fake stops it at 64 words, 319 chars
    with spendfuse.run("capped") as run:
        assert perform(shape, lambda: client_for(shape, fake), max_tokens=64) is None
    attributes = attributes_of(tracker.chat_ended()[0])
    assert attributes["gen_ai.usage.output_tokens"] == 64
    assert attributes["spendfuse.usage.estimated"] is True
    assert run.spent.usd_micros <= micros(attributes["spendfuse.reserved.usd"])
