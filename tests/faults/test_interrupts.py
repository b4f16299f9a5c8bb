"""KeyboardInterrupt and task cancellation in the middle of a call or of a stream.

Whatever interrupts the call, afterwards: no reservation is left on the run or the user, the
``chat`` span is ended, and the call counted exactly one turn.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest

import spendfuse
from spendfuse import runtime
from spendfuse.testing import FakeProvider, FakeUsage, RecordedRequest, Reply, clients

from ._calls import SHAPES, USER_KEY, Shape, SpanTracker, attributes_of, client_for, create, micros

USER = "interrupted"
LONG_TEXT = " ".join(f"word{index}" for index in range(200))
SYNC = [shape for shape in SHAPES if not shape.is_async]
SYNC_STREAMS = [shape for shape in SYNC if shape.stream]
ASYNC = [shape for shape in SHAPES if shape.is_async]
ASYNC_STREAMS = [shape for shape in ASYNC if shape.stream]


def ids(shapes: list[Shape]) -> list[str]:
    return [shape.id for shape in shapes]


def assert_clean(run: spendfuse.Run, tracker: SpanTracker, *, error_type: str | None) -> dict[str, Any]:
    """No reservation anywhere, one ended chat span, one turn; returns the span's attributes."""
    balance = run.balance
    assert (balance.flight_usd, balance.flight_turns, balance.flight_tokens) == (0, 0, 0)
    active = runtime.current()
    assert active is not None
    usage = active.breaker.store.usage(USER_KEY.format(user=USER), 0.0)
    assert usage.leases == 0 and all(value == 0 for value in usage.in_flight.values()), usage
    assert usage.spent["turns"] == 1 and usage.spent["usd"] == run.spent.usd_micros
    assert run.spent.turns == 1
    assert tracker.open_spans() == []
    chats = tracker.chat_ended()
    assert len(chats) == 1
    attributes = attributes_of(chats[0])
    if error_type is not None:
        assert attributes["error.type"] == error_type
    reserved = micros(attributes["spendfuse.reserved.usd"])
    assert 0 <= run.spent.usd_micros <= reserved
    return attributes


@pytest.fixture
def budgeted(instrument: Any) -> None:
    instrument(user_budget={"usd": 100})


def interrupt(_request: RecordedRequest) -> Reply:
    raise KeyboardInterrupt


@pytest.mark.parametrize("shape", SYNC, ids=ids(SYNC))
def test_keyboard_interrupt_while_waiting_for_the_response(shape: Shape, budgeted: None, tracker: SpanTracker) -> None:
    fake = FakeProvider(responder=interrupt)
    client = client_for(shape, fake)
    with spendfuse.run("ki-call", user_id=USER, budget=spendfuse.Budget(usd=5)) as run:
        with pytest.raises(KeyboardInterrupt):
            create(shape, client)
        assert fake.request_count == 1
    attributes = assert_clean(run, tracker, error_type="KeyboardInterrupt")
    assert run.spent.usd_micros == 0 and attributes["spendfuse.cost.usd"] == 0.0


@pytest.mark.parametrize("closing", ["dropped", "with-block"])
@pytest.mark.parametrize("shape", SYNC_STREAMS, ids=ids(SYNC_STREAMS))
def test_keyboard_interrupt_in_the_callers_loop(
    shape: Shape, closing: str, budgeted: None, tracker: SpanTracker
) -> None:
    fake = FakeProvider(usage=FakeUsage(1000, 200))
    fake.enqueue(Reply.text(LONG_TEXT))
    client = client_for(shape, fake)
    with spendfuse.run("ki-loop", user_id=USER, budget=spendfuse.Budget(usd=5)) as run:
        with pytest.raises(KeyboardInterrupt):
            if closing == "with-block":
                with create(shape, client) as stream:
                    for index, _ in enumerate(stream):
                        if index == 5:
                            raise KeyboardInterrupt
            else:
                stream = create(shape, client)
                for index, _ in enumerate(stream):
                    if index == 5:
                        raise KeyboardInterrupt
        del stream
        gc.collect()
    attributes = assert_clean(run, tracker, error_type=None)
    assert attributes["spendfuse.stream.end"] == ("closed" if closing == "with-block" else "abandoned")
    # Cut short: charged for what arrived (an estimate), never nothing and never the worst case.
    assert attributes["spendfuse.usage.estimated"] is True
    assert run.spent.usd_micros > 0


class _Interrupting(httpx2.SyncByteStream):
    def __init__(self, inner: Any, after: int) -> None:
        self.inner, self.after = inner, after

    def __iter__(self) -> Iterator[bytes]:
        for index, chunk in enumerate(self.inner):
            if index == self.after:
                raise KeyboardInterrupt
            yield chunk

    def close(self) -> None:
        self.inner.close()


class InterruptingTransport(httpx2.BaseTransport):
    """The fake provider's answer, whose body raises KeyboardInterrupt after ``after`` chunks."""

    def __init__(self, fake: FakeProvider, after: int) -> None:
        self.inner = fake.transport()
        self.after = after

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        response = self.inner.handle_request(request)
        return httpx2.Response(
            response.status_code, headers=response.headers, stream=_Interrupting(response.stream, self.after)
        )


@pytest.mark.parametrize("shape", SYNC_STREAMS, ids=ids(SYNC_STREAMS))
def test_keyboard_interrupt_while_reading_the_stream(shape: Shape, budgeted: None, tracker: SpanTracker) -> None:
    fake = FakeProvider(usage=FakeUsage(1000, 200))
    fake.enqueue(Reply.text(LONG_TEXT))
    client = getattr(clients, f"{shape.sdk}_client")(transport=InterruptingTransport(fake, after=6))
    received = 0
    with spendfuse.run("ki-read", user_id=USER, budget=spendfuse.Budget(usd=5)) as run:
        with pytest.raises(KeyboardInterrupt):
            for _ in create(shape, client):
                received += 1
        gc.collect()
    assert received >= 1
    attributes = assert_clean(run, tracker, error_type="KeyboardInterrupt")
    assert attributes["spendfuse.stream.end"] == "error"
    assert run.spent.usd_micros > 0


async def _wait_until(condition: Any, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.005)


@pytest.mark.parametrize("shape", ASYNC, ids=ids(ASYNC))
def test_task_cancelled_while_waiting_for_the_response(shape: Shape, budgeted: None, tracker: SpanTracker) -> None:
    fake = FakeProvider(latency=30.0)

    async def main() -> spendfuse.Run:
        async with spendfuse.run("cancel-call", user_id=USER, budget=spendfuse.Budget(usd=5)) as run:
            client = client_for(shape, fake)

            async def call() -> None:
                try:
                    await create(shape, client)
                finally:
                    await client.close()

            task = asyncio.create_task(call())
            await _wait_until(lambda: fake.request_count == 1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        return run

    run = asyncio.run(main())
    attributes = assert_clean(run, tracker, error_type="CancelledError")
    assert run.spent.usd_micros == 0 and attributes["spendfuse.cost.usd"] == 0.0


@pytest.mark.parametrize("shape", ASYNC_STREAMS, ids=ids(ASYNC_STREAMS))
def test_task_cancelled_mid_stream(shape: Shape, budgeted: None, tracker: SpanTracker) -> None:
    fake = FakeProvider(chunk_delay=0.02, usage=FakeUsage(1000, 200))
    fake.enqueue(Reply.text(LONG_TEXT))
    received: list[object] = []

    async def main() -> spendfuse.Run:
        async with spendfuse.run("cancel-stream", user_id=USER, budget=spendfuse.Budget(usd=5)) as run:
            client = client_for(shape, fake)

            async def consume() -> None:
                try:
                    async for item in await create(shape, client):
                        received.append(item)
                finally:
                    await client.close()

            task = asyncio.create_task(consume())
            await _wait_until(lambda: len(received) >= 5)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        return run

    run = asyncio.run(main())
    gc.collect()
    attributes = assert_clean(run, tracker, error_type="CancelledError")
    assert attributes["spendfuse.stream.end"] == "cancelled"
    assert attributes["spendfuse.usage.estimated"] is True
    assert 5 <= len(received) < 100
    assert run.spent.usd_micros > 0
