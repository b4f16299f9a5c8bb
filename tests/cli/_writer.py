"""One of several processes writing the same ledger at once: argv = ledger path, worker id, runs.

Runs and tool calls through the public API (no SDK import, so the processes start fast and overlap).
"""

from __future__ import annotations

import sys

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

import spendfuse
from spendfuse.ledger import LedgerExporter


@spendfuse.tool
def lookup(n: int) -> int:
    return n * 2


def main() -> int:
    ledger, worker, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    provider = TracerProvider()
    # Tiny batches and a short delay: many small transactions, so the writers really contend.
    provider.add_span_processor(
        BatchSpanProcessor(LedgerExporter(ledger), schedule_delay_millis=1, max_export_batch_size=4)
    )
    spendfuse.instrument(tracer_provider=provider)
    for number in range(count):
        with spendfuse.run(f"w{worker}-{number}", user_id=f"worker-{worker}"):
            lookup(1)
            lookup(2)
    provider.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
