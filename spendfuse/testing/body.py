"""What the router hands to a transport: a status, headers and a body that is either complete
bytes or a lazily generated event stream.

The stream does its own bookkeeping (events sent, how it ended) so both transports -- the
``httpx2`` mock and the loopback server -- report the same facts; they only add pacing and
delivery.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Literal, NoReturn

StreamOutcome = Literal["completed", "abandoned", "broken"]


class StreamBroken(Exception):
    """Raised by ``EventStream.next_chunk`` where a scripted failure cuts the connection."""


def sse_event(data: object, event: str | None = None) -> bytes:
    """One Server-Sent Event; ``data`` is JSON-encoded unless it is already a string."""
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    head = f"event: {event}\n" if event is not None else ""
    return f"{head}data: {payload}\n\n".encode()


class EventStream:
    """A body produced one chunk (one SSE event) at a time, on demand.

    ``break_after`` set means the connection breaks once that many chunks went out, or at the
    end of the chunks if there are fewer: a scripted failure always fails.
    """

    def __init__(
        self,
        chunks: Iterable[bytes],
        *,
        break_after: int | None,
        on_chunk: Callable[[], None],
        on_end: Callable[[StreamOutcome], None],
    ) -> None:
        self._chunks: Iterator[bytes] = iter(chunks)
        self._break_after = break_after
        self._on_chunk = on_chunk
        self._on_end = on_end
        self._lookahead: bytes | None = None
        self._sent = 0
        self._finished = False

    def next_chunk(self) -> bytes | None:
        """The next chunk, or None at the clean end; raises ``StreamBroken`` where scripted.

        The stream counts as completed as soon as its last chunk is handed out: SDKs stop reading
        at the final event (``[DONE]``, ``message_stop``) and close without waiting for EOF.
        """
        if self._finished:
            return None
        if self._break_after is not None and self._sent >= self._break_after:
            self._break()
        chunk = next(self._chunks, None) if self._lookahead is None else self._lookahead
        if chunk is None:
            if self._break_after is not None:
                self._break()
            self._finish("completed")
            return None
        # One chunk of lookahead tells whether this one is the last.
        self._lookahead = next(self._chunks, None)
        self._sent += 1
        self._on_chunk()
        if self._lookahead is None and self._break_after is None:
            self._finish("completed")
        return chunk

    def paced(self, delay: float) -> Iterator[bytes]:
        """All chunks, ``delay`` seconds apart; raises ``StreamBroken`` where scripted."""
        chunk = self.next_chunk()
        while chunk is not None:
            yield chunk
            if delay > 0:
                time.sleep(delay)
            chunk = self.next_chunk()

    async def apaced(self, delay: float) -> AsyncIterator[bytes]:
        """``paced`` for the event loop: waits with ``asyncio.sleep``."""
        chunk = self.next_chunk()
        while chunk is not None:
            yield chunk
            if delay > 0:
                await asyncio.sleep(delay)
            chunk = self.next_chunk()

    def close(self) -> None:
        """The consumer went away; a stream that had not ended counts as abandoned."""
        if not self._finished:
            self._finish("abandoned")

    def _break(self) -> NoReturn:
        self._finish("broken")
        raise StreamBroken(f"fake provider: connection broken after {self._sent} events")

    def _finish(self, outcome: StreamOutcome) -> None:
        self._finished = True
        self._on_end(outcome)


@dataclass
class PreparedResponse:
    status: int
    headers: dict[str, str]
    body: bytes | EventStream
