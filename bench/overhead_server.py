"""The loopback fake provider of ``bench_overhead.py``, in its own process.

    python bench/overhead_server.py [DELAY_MS]   # prints the port, serves until stdin closes

A separate process keeps the server's CPU time and GIL out of the measuring process: the client
pays for a real socket round trip, as with a remote API, and nothing else.
"""

from __future__ import annotations

import socketserver
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
BENCH = Path(__file__).resolve().parent
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

from overhead_common import RESET_EVERY, reply_for  # noqa: E402

from spendfuse.testing import FakeProvider, FakeServer  # noqa: E402


def main() -> None:
    # The handler writes the status line and headers, then the body, in separate send()s; with
    # Nagle's algorithm on, the body then waits for the client's delayed ACK (~40 ms on Linux),
    # which would make every loopback call cost 40 ms of nothing. Real APIs do not do that.
    socketserver.StreamRequestHandler.disable_nagle_algorithm = True
    lock = threading.Lock()
    served = 0
    delay = float(sys.argv[1]) / 1000 if len(sys.argv) > 1 else 0.0  # milliseconds before each reply
    provider: FakeProvider

    def respond(record: Any) -> Any:
        nonlocal served
        if delay:
            time.sleep(delay)  # a provider's think time: the client waits on its socket meanwhile
        with lock:
            served += 1
            forget = served % RESET_EVERY == 0
        if forget:
            # The request log would otherwise grow for the whole benchmark.
            provider.reset()
        return reply_for(record)

    provider = FakeProvider(responder=respond)
    with FakeServer(provider) as server:
        print(server.port, flush=True)
        sys.stdin.read()  # the orchestrator closes our stdin (or dies) to stop us


if __name__ == "__main__":
    main()
