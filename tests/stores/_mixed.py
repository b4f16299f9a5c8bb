"""Child side of test_mixed_load: threads x asyncio tasks finishing, abandoning and cancelling streams."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import gc
import threading
from typing import Any

MODEL = "claude-sonnet-4-5"
MESSAGES = [{"role": "user", "content": "Write a short poem about budgets."}]
USER = "mixed-user"
GC_THRESHOLD = 25


def mixed_process(store_url: str, threads: int, tasks: int, rounds: int, results: Any) -> None:
    import spendfuse
    from spendfuse.testing import FakeProvider, FakeUsage

    # Frequent collections: a dropped stream's finalizer then runs at arbitrary allocations, on any
    # thread, inside whatever that thread holds (the run lock, the store's lock, a transaction).
    gc.set_threshold(GC_THRESHOLD, 1, 1)
    spendfuse.instrument(store=store_url, store_timeout=30.0, user_budget={"usd": 1000, "window": "1d"}, warn_at=None)
    fake = FakeProvider(usage=FakeUsage(input_tokens=300, output_tokens=40), chunk_delay=0.0005)

    async def agent(index: int) -> None:
        client = fake.async_anthropic_client()
        with spendfuse.run(user_id=USER):
            for turn in range(rounds):
                kind = (index + turn) % 4
                if kind == 0:
                    await client.messages.create(model=MODEL, max_tokens=128, messages=MESSAGES)
                elif kind == 1:  # abandoned half-read, dropped where only the collector frees it
                    stream = await client.messages.create(model=MODEL, max_tokens=128, messages=MESSAGES, stream=True)
                    async for _event in stream:
                        break
                    cycle: list[Any] = [stream]
                    cycle.append(cycle)
                    del stream, cycle
                elif kind == 2:  # cancelled mid-stream

                    async def read() -> None:
                        stream = await client.messages.create(
                            model=MODEL, max_tokens=128, messages=MESSAGES, stream=True
                        )
                        async for _event in stream:
                            await asyncio.sleep(0.01)

                    reader = asyncio.ensure_future(read())
                    await asyncio.sleep(0.002)
                    reader.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await reader
                else:
                    stream = await client.messages.create(model=MODEL, max_tokens=128, messages=MESSAGES, stream=True)
                    async for _event in stream:
                        pass

    def sync_agent() -> None:
        client = fake.anthropic_client()
        with spendfuse.run(user_id=USER):
            for turn in range(rounds * tasks):
                stream = client.messages.create(model=MODEL, max_tokens=128, messages=MESSAGES, stream=True)
                for _event in stream:
                    if turn % 2:
                        break  # abandoned: the SDK stream is its own cycle, only the collector frees it
                del stream

    def thread_main() -> None:
        async def main() -> None:
            await asyncio.gather(*(agent(index) for index in range(tasks)))

        asyncio.run(main())

    targets = [thread_main if index % 2 else sync_agent for index in range(threads)]
    workers = [threading.Thread(target=contextvars.copy_context().run, args=(target,)) for target in targets]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    results.put(fake.request_count)
    # A clean exit: whatever is still unsettled must be settled by the time the process is gone.
