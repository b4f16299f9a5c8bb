"""Profile one case in one mode of the overhead benchmark: where does spendfuse's time go?

    python bench/overhead_profile.py --mode telemetry --case anthropic/json/mock
    python bench/overhead_profile.py --mode budget-memory --case openai/stream/mock --pyinstrument

The calls are the benchmark's own (``overhead_worker``: same request, reply and telemetry
pipeline); cProfile's listing is restricted to spendfuse, OpenTelemetry and the SDKs' request
method, sorted by cumulative time. cProfile inflates the cost of small Python functions several
times over, so read the shares, not the microseconds; ``--pyinstrument`` (a sampling profiler,
``pip install pyinstrument``) distorts less. Loopback cases need ``--port`` of a running
``overhead_server.py``.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
from collections.abc import Callable
from pathlib import Path

BENCH = Path(__file__).resolve().parent
for _path in (str(BENCH.parent), str(BENCH)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from overhead_common import MODES, RESET_EVERY, Case  # noqa: E402
from overhead_worker import make_target, setup_mode  # noqa: E402

FOCUS = r"spendfuse/(instrumentation|budgets|runs|telemetry)|opentelemetry/sdk|_base_client.py.*\(request\)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", default="telemetry", choices=[mode for mode in MODES if mode != "budget-redis"])
    parser.add_argument("--case", default="anthropic/json/mock")
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--port", type=int, help="port of overhead_server.py, for loopback cases")
    parser.add_argument("--sqlite", default="/tmp/spendfuse-profile.db", help="database file of budget-sqlite")
    parser.add_argument("--pyinstrument", action="store_true", help="sample with pyinstrument instead of cProfile")
    parser.add_argument("--lines", type=int, default=40)
    args = parser.parse_args()

    stores = {"budget-memory": "memory://", "budget-sqlite": f"sqlite:///{args.sqlite}"}
    mode = setup_mode(args.mode, stores.get(args.mode))
    with mode.context:
        target = make_target(Case.parse(args.case), args.port)
        for _ in range(50):  # warm caches, connections and the estimator's memo first
            target.call()
        if args.pyinstrument:
            from pyinstrument import Profiler

            sampler = Profiler(interval=0.0002)
            sampler.start()
            run_calls(target.call, target.reset, args.calls)
            sampler.stop()
            print(sampler.output_text(unicode=True, color=False, show_all=False))
            return
        profile = cProfile.Profile()
        profile.enable()
        run_calls(target.call, target.reset, args.calls)
        profile.disable()
    stats = pstats.Stats(profile)
    stats.sort_stats("cumulative").print_stats(FOCUS, args.lines)


def run_calls(call: Callable[[], None], reset: Callable[[], None], count: int) -> None:
    for index in range(count):
        call()
        if index % RESET_EVERY == RESET_EVERY - 1:
            reset()


if __name__ == "__main__":
    main()
