"""``Breaker.admit`` + ``Breaker.settle`` alone on memory://: a run budget and a 1d user window.

    python bench/bench_breaker.py [--calls 50000] [--warmup 2000] [--scopes N]

A fixed short agent turn (system prompt + 4 messages, resent every call, as an agent loop does) and a
fixed usage; the loop times each admit and settle with ``perf_counter_ns`` and prints p50/p99.
``--memo`` also remembers the reported input tokens after each call, as the call path does (untimed),
so admissions take the prefix-memo hit path; on a prompt this short that costs more than it saves
(the memo's deep copies feed the garbage collector), it pays off on long transcripts.
``--scopes N`` adds N keyed scopes besides the user window (team, org, tenant, ...: windowed usd and
turns budgets that never bind), all reserved in the same memory:// call: run it with 0, 1, 3, 5 for the
cost of each extra scope.
No telemetry providers are installed (no-op OpenTelemetry), so only spendfuse's own work is timed.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import sys
import time
from pathlib import Path

if importlib.util.find_spec("spendfuse") is None:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MODEL = "claude-sonnet-4-5"
SYSTEM = "You are a careful support agent. Use the tools when a fact is needed; answer briefly."
TURNS = (
    ("user", "My order 4711 has not arrived. Can you check where it is?"),
    ("assistant", "Let me look up order 4711 for you."),
    ("user", "Thanks. It was supposed to arrive on Monday."),
    ("assistant", "I see it left the warehouse on Friday; checking the carrier now."),
)
BIG = 10**9


def percentile(values: list[int], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))] / 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=50_000)
    parser.add_argument("--warmup", type=int, default=2_000)
    parser.add_argument(
        "--memo", action="store_true", help="remember the reported input tokens after each call (prefix-memo hits)"
    )
    parser.add_argument("--scopes", type=int, default=0, help="extra keyed scopes besides the user window")
    options = parser.parse_args()
    extra = [f"scope{index}" for index in range(options.scopes)]

    import spendfuse
    from spendfuse import runtime
    from spendfuse.budgets.breaker import CallRequest
    from spendfuse.budgets.usage import TokenUsage

    spendfuse.instrument(
        run_budget=spendfuse.Budget(usd=BIG, turns=BIG),
        user_budget=spendfuse.Budget(usd=BIG, turns=BIG, window="1d"),
        store="memory://",
        warn_at=None,
        budgets={name: spendfuse.Budget(usd=BIG, turns=BIG, window="1d") for name in extra},
    )
    active = runtime.current()
    assert active is not None
    breaker = active.breaker
    body = {
        "model": MODEL,
        "max_tokens": 1024,
        "system": SYSTEM,
        "messages": [{"role": role, "content": text} for role, text in TURNS],
    }
    request = CallRequest(provider="anthropic", api="messages", model=MODEL, body=body, max_tokens=1024)
    usage = TokenUsage(input_tokens=900, output_tokens=60)
    clock = time.perf_counter_ns
    admit_ns: list[int] = []
    settle_ns: list[int] = []
    pair_ns: list[int] = []
    gc.collect()
    cpu_started = 0
    with spendfuse.run("bench-run", user_id="bench-user", scopes={name: "key" for name in extra}) as the_run:
        for index in range(options.warmup + options.calls):
            start = clock()
            admission = breaker.admit(request, the_run, None)
            middle = clock()
            breaker.settle(admission, usage, 3_600)
            end = clock()
            if options.memo:
                # What the call path does after a settled call (not timed: not the breaker's work);
                # the next resend is a prefix-memo hit.
                the_run.memo.remember("messages", body, usage.input_tokens)
            if index == options.warmup - 1:
                cpu_started = time.thread_time_ns()
            if index >= options.warmup:
                admit_ns.append(middle - start)
                settle_ns.append(end - middle)
                pair_ns.append(end - start)
    cpu_per_pair = (time.thread_time_ns() - cpu_started) / options.calls / 1000
    print(
        f"python {sys.version.split()[0]}, {options.calls} calls after {options.warmup} warm-up, "
        f"{1 + options.scopes} keyed scope(s)"
    )
    for label, values in (("admit", admit_ns), ("settle", settle_ns), ("admit + settle", pair_ns)):
        print(f"{label:<15} p50 {percentile(values, 0.5):7.2f} us   p99 {percentile(values, 0.99):7.2f} us")
    # CPU time of this thread per pair (timing included): less sensitive to other processes' load.
    print(f"thread CPU per admit + settle (mean, clock reads included): {cpu_per_pair:.2f} us")
    spendfuse.uninstrument()


if __name__ == "__main__":
    main()
