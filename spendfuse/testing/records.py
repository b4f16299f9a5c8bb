"""What the fake provider remembers about each request it received."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from spendfuse.testing.errors_wire import ProviderName
from spendfuse.testing.replies import Reply
from spendfuse.testing.usage import Api, FakeUsage

Outcome = Literal["pending", "completed", "abandoned", "broken"]


@dataclass
class RecordedRequest:
    """One request as it reached the fake, plus how the fake answered it.

    ``headers`` has lower-case keys; ``json`` is the parsed body or None; ``time`` is the
    ``time.time()`` of arrival (before any configured latency). ``provider`` comes from the route,
    or from the headers for an unknown route; ``api`` is None for an unknown route.

    The fake fills in the answer side: ``status``, ``reply`` (the scripted ``Reply`` used, None for
    routing and validation errors), ``response_id``, ``usage`` (the usage computed for the answer,
    None when none is reported), ``events_sent`` (SSE events delivered so far) and ``outcome``:
    "completed" once the whole body went out, "abandoned" when the client stopped reading a stream
    early, "broken" after a scripted ``Reply.stream_failure``. Over a real socket an early stop is
    only noticed when a write fails, so a short stream may still read "completed".
    """

    index: int
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    json: Any
    provider: ProviderName
    api: Api | None
    stream: bool
    time: float
    status: int = 0
    reply: Reply | None = None
    response_id: str | None = None
    usage: FakeUsage | None = None
    events_sent: int = 0
    outcome: Outcome = field(default="pending")
