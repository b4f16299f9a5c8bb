"""Where spendfuse's microseconds go: the top spendfuse functions under cProfile, per call.

    python bench/overhead_profile.py                                   # no-op providers, all four cases
    python bench/overhead_profile.py --mode spendfuse --case openai/stream50 --calls 3000
    python bench/overhead_profile.py --include opentelemetry           # the OpenTelemetry SDK's too

The calls are the benchmark's own (``overhead_worker``: same request, reply, mock transport and
providers). Per case, after warm-up calls, ``--calls`` calls run under cProfile; the listing keeps
functions defined in spendfuse (not ``spendfuse.testing``: that is the fake provider answering) plus
any ``--include`` path fragment, by self time and by cumulative time, in µs per call. The default
mode, spendfuse-noop, leaves OpenTelemetry's SDK out, so what remains is spendfuse's own work.
cProfile inflates small Python functions several times over: read shares and rankings, not absolute
microseconds (the benchmark gives those). It profiles the calling thread only: work another thread
does (the batch span processor's export, or any telemetry thread) is not listed.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
for _path in (str(BENCH.parent), str(BENCH)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from overhead_common import ALL_CASES, MODES, PEER_VENV, RESET_EVERY, Case  # noqa: E402
from overhead_worker import make_target, setup_mode  # noqa: E402


def kept(filename: str, include: list[str]) -> bool:
    path = filename.replace("\\", "/")
    if "/spendfuse/" in path and "/spendfuse/testing/" not in path and "/bench/" not in path:
        return True
    return any(fragment in path for fragment in include)


def short(key: tuple[str, int, str]) -> str:
    filename, line, name = key
    path = filename.replace("\\", "/")
    for marker in ("/spendfuse/", "/site-packages/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            if marker == "/spendfuse/":
                path = "spendfuse/" + path
            break
    return f"{path}:{line}({name})"


def profile_case(case: Case, calls: int, warmup: int, include: list[str], lines: int) -> None:
    target = make_target(case)
    for _ in range(warmup):  # caches, the estimator's memo, lazily built state
        target.call()
    target.reset()
    profiler = cProfile.Profile()
    profiler.enable()
    for index in range(calls):
        target.call()
        if index % RESET_EVERY == RESET_EVERY - 1:
            target.reset()
    profiler.disable()
    stats: dict[tuple[str, int, str], Any] = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    rows = [(key, value) for key, value in stats.items() if kept(key[0], include)]
    total_self = sum(value[2] for _key, value in rows) / calls * 1e6
    everything = sum(value[2] for value in stats.values()) / calls * 1e6
    print(
        f"\n=== {case.name}: {calls} calls; kept functions' self time {total_self:,.1f} µs/call "
        f"of {everything:,.1f} µs/call profiled (cProfile-inflated) ==="
    )
    for title, index in (("by self time", 2), ("by cumulative time", 3)):
        print(f"\n  top {lines} {title}:  µs/call self | µs/call cumulative | calls/call | function")
        for key, value in sorted(rows, key=lambda row: row[1][index], reverse=True)[:lines]:
            _cc, ncalls, tottime, cumtime, _callers = value
            print(
                f"  {tottime / calls * 1e6:10.2f} | {cumtime / calls * 1e6:10.2f} | {ncalls / calls:8.1f} | "
                f"{short(key)}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    runnable = [mode for mode in MODES if mode != "raw" and mode not in PEER_VENV]
    parser.add_argument("--mode", default="spendfuse-noop", choices=runnable)
    parser.add_argument("--case", default="", help="provider/shape (default: all four)")
    parser.add_argument("--calls", type=int, default=2000, help="profiled calls per case")
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--include", default="", help="comma-separated path fragments to keep too, e.g. opentelemetry")
    parser.add_argument("--lines", type=int, default=20)
    args = parser.parse_args()

    cases = [Case.parse(args.case)] if args.case else list(ALL_CASES)
    include = [fragment for fragment in args.include.split(",") if fragment]
    mode = setup_mode(args.mode)
    print(f"mode {args.mode}; streams are profiled from the request to the last chunk consumed")
    with mode.context:
        for case in cases:
            calls = args.calls if not case.stream else max(1, args.calls // 4)
            profile_case(case, calls, args.warmup, include, args.lines)
    mode.flush(True)


if __name__ == "__main__":
    main()
