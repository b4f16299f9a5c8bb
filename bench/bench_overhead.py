"""What spendfuse costs per model call in CPU time, next to the raw SDK and to peer instrumentations
(issue 12, items 2 and 5).

    python bench/setup_peers.py                # once: the peers' venvs under .bench-venvs/
    python bench/bench_overhead.py --quick     # ~3 min on 2 busy cores: 2 rounds, few calls
    python bench/bench_overhead.py             # the full run, ~14 min on 2 busy cores: 5 rounds
    python bench/bench_overhead.py --modes spendfuse,openllmetry --cases openai/json --skip import,rss

Modes (``overhead_common.MODES``), each in a fresh process per round (``overhead_worker.py``; peer
modes with their venv's interpreter): raw, spendfuse-noop, spendfuse, spendfuse-budgets, openllmetry,
openllmetry-nocontent, otel-openai-v2. Cases: Anthropic Messages and OpenAI Chat Completions, JSON
and 50-chunk streams, on the fake provider's in-process httpx2 MockTransport (no I/O: every
microsecond is CPU).

The measure is **process CPU time of all threads** (``time.process_time_ns``), per block of calls,
from before the block's first call to after a force-flush of the TracerProvider (its
BatchSpanProcessor exports every span the block queued) and the MeterProvider (the metric reader
collects and exports) at its end: work handed to another thread is done, and counted, inside the
block. Every process but raw alternates blocks of instrumented and raw calls (ABBA), uninstrumenting
in between; a mode's cost is the median instrumented block minus the median raw block of the same
process (CPU per call), then the median over rounds. The ratio is raw-call CPU plus that cost over
raw-call CPU (raw blocks without their flush): the flush's fixed cost, the same on both sides,
cancels in the difference and is kept out of the ratio's denominator. Caller wall time is reported
too but judges nothing: work moved to a thread leaves the caller's clock and still costs the process.

Also: spendfuse's per-event and per-stream cost alone on recorded stream events (the 0.5 µs/chunk and
10 µs/stream targets), the breaker alone on memory://, ``import spendfuse.auto`` beyond importing the
SDKs (fresh interpreters, ``-X importtime`` offenders), RSS over many instrumented calls.

Writes a Markdown report to ``bench/results.md`` (``--output``) and, with ``--json FILE``, every sample.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
for _path in (str(ROOT), str(BENCH)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from overhead_common import ALL_CASES, MODE_PROVIDERS, MODES, PEER_VENV, Case  # noqa: E402
from setup_peers import python_of, status_of  # noqa: E402

TARGET_NOOP_CALL_US = 25.0  # spendfuse's own work per call, no-op providers
TARGET_CHUNK_US = 0.5  # per stream chunk
TARGET_STREAM_US = 10.0  # once per stream
TARGET_BREAKER_US = 10.0  # admit + settle p50, memory://
TARGET_RATIO = 1.15  # process CPU, all threads, real SDK providers
TARGET_VS_OPENLLMETRY = 0.25  # spendfuse's added CPU over OpenLLMetry's
TARGET_IMPORT_MS = 100.0  # import spendfuse.auto beyond the SDKs


@dataclass(frozen=True)
class Plan:
    rounds: int
    warmup: int
    json_calls: int  # per side (instrumented, raw) and process
    stream_calls: int
    json_block: int
    stream_block: int
    chunk_rounds: int
    chunk_repeat: int
    breaker_calls: int
    import_runs: int
    rss_calls: int
    rss_every: int


QUICK = Plan(
    rounds=2,
    warmup=10,
    json_calls=40,
    stream_calls=12,
    json_block=10,
    stream_block=3,
    chunk_rounds=5,
    chunk_repeat=200,
    breaker_calls=5_000,
    import_runs=3,
    rss_calls=2_000,
    rss_every=500,
)
FULL = Plan(
    rounds=5,
    warmup=40,
    json_calls=300,
    stream_calls=80,
    json_block=20,
    stream_block=5,
    chunk_rounds=21,
    chunk_repeat=300,
    breaker_calls=50_000,
    import_runs=9,
    rss_calls=20_000,
    rss_every=2_000,
)
# Mostly JSON calls keep the RSS run short; streams are there because their watchers (a generator
# and a finalizer per stream) are where a leak would hide.
RSS_SCHEDULE = ["anthropic/json"] * 4 + ["openai/json"] * 4 + ["anthropic/stream50", "openai/stream50"]


# -- workers -----------------------------------------------------------------------------------


def interpreter(mode: str) -> tuple[str | None, str | None]:
    """(python to run the mode's worker with, or None; the reason when None)."""
    venv = PEER_VENV.get(mode)
    if venv is None:
        return sys.executable, None
    status = status_of(venv)
    if not status.get("ok"):
        return None, str(status.get("error"))
    return str(python_of(venv)), None


def run_worker(spec: dict[str, Any], python: str = sys.executable, timeout: float = 1800) -> dict[str, Any]:
    # The local ledger is off: every mode exports to the same no-op exporters, so only the
    # instrumentation differs (the ledger is one more exporter, a cost of its own, not of the call path).
    env = {**os.environ, "SPENDFUSE_LEDGER": "off"}
    completed = subprocess.run(
        [python, str(BENCH / "overhead_worker.py"), json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    if completed.returncode != 0 or not completed.stdout.strip():
        raise RuntimeError(
            f"worker {spec.get('task')}/{spec.get('mode')} failed ({completed.returncode}):\n"
            + completed.stderr[-3000:]
        )
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    if "internal error" in completed.stderr:
        # spendfuse logs and carries on; a benchmark of a silently failing path would flatter it.
        result["warnings"] = completed.stderr[-2000:]
    return result


# -- statistics --------------------------------------------------------------------------------


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


@dataclass
class Cell:
    """One case in one mode, one value per round (µs unless named otherwise)."""

    raw_call_us: list[float]  # raw blocks' CPU per call without their flush: the raw SDK call
    delta_us: list[float]  # instrumented minus raw block CPU per call, flushes included: the cost
    ratio: list[float]  # (raw call + cost) / raw call
    per_call_delta_us: list[float]  # the same from single calls' CPU medians (no block-end flush)
    wall_delta_us: list[float]  # caller's wall p50 difference (for reference only)
    flush_raw_us: list[float]  # CPU of one end-of-block flush in raw blocks (idle providers)
    spans_on: list[float]
    spans_off: list[float]
    chunks: int = 0

    @classmethod
    def empty(cls) -> Cell:
        return cls([], [], [], [], [], [], [], [])


Results = dict[str, dict[str, Cell]]  # case name -> mode -> Cell


def collect(rounds: list[dict[str, Any]], modes: Sequence[str], cases: Sequence[Case]) -> Results:
    results: Results = {case.name: {mode: Cell.empty() for mode in modes} for case in cases}
    for one_round in rounds:
        for mode in modes:
            output = one_round.get(mode)
            if output is None:
                continue
            for case in cases:
                entry = output["cases"].get(case.name)
                if entry is None:
                    continue
                cell = results[case.name][mode]
                cell.chunks = int(entry["chunks"])
                off = entry["raw"]
                size = len(off["cpu_ns"]) // len(off["block_cpu_ns"])  # calls per block
                raw_calls = [
                    (block - flush / size) / 1000
                    for block, flush in zip(off["block_cpu_ns"], off["flush_cpu_ns"], strict=True)
                ]
                raw_call = median(raw_calls)
                cell.raw_call_us.append(raw_call)
                cell.flush_raw_us.append(median(off["flush_cpu_ns"]) / 1000)
                cell.spans_off.append(statistics.mean(off["spans"]))
                on = entry.get("instrumented")
                if on is None:  # raw mode
                    continue
                delta = (median(on["block_cpu_ns"]) - median(off["block_cpu_ns"])) / 1000
                cell.delta_us.append(delta)
                cell.ratio.append((raw_call + delta) / raw_call)
                cell.per_call_delta_us.append((median(on["cpu_ns"]) - median(off["cpu_ns"])) / 1000)
                cell.wall_delta_us.append((median(on["wall_ns"]) - median(off["wall_ns"])) / 1000)
                cell.spans_on.append(statistics.mean(on["spans"]))
    return results


def chunk_split(entry: dict[str, Any]) -> tuple[list[float], list[float]]:
    """Per round: (spendfuse's µs per event, µs once per stream) from the short and long streams."""
    short, long = entry["events"], entry["long_events"]
    per_event, per_stream = [], []
    for rnd in range(len(entry["bare_ns"])):
        short_extra = (entry["watched_ns"][rnd] - entry["bare_ns"][rnd]) * short
        long_extra = (entry["long_watched_ns"][rnd] - entry["long_bare_ns"][rnd]) * long
        event = (long_extra - short_extra) / (long - short)
        per_event.append(event / 1000)
        per_stream.append((short_extra - event * short) / 1000)
    return per_event, per_stream


# -- import time -------------------------------------------------------------------------------


_IMPORTTIME = re.compile(r"^import time:\s*(\d+)\s*\|\s*(\d+)\s*\|(\s*)(\S+)\s*$")


_TIMED_IMPORT = """
import json, time
start = time.perf_counter()
import anthropic, openai
sdks = time.perf_counter()
cpu = time.process_time()
import spendfuse.auto
print(json.dumps({"sdks_ms": (sdks - start) * 1000, "auto_ms": (time.perf_counter() - sdks) * 1000,
                  "auto_cpu_ms": (time.process_time() - cpu) * 1000}))
"""


def bench_import(runs: int, workdir: Path) -> dict[str, Any]:
    """Fresh interpreters: ``import anthropic, openai``, then ``import spendfuse.auto`` timed alone
    inside the process (wall and CPU; the interpreter's start-up and exit and the SDKs' own import
    stay out of it), and ``-X importtime`` of the same for the modules spendfuse.auto adds."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPENDFUSE_", "OTEL_", "TRACELOOP_"))}
    env["PYTHONPATH"] = str(ROOT)
    # The default when no OTLP endpoint is set: a local ledger, here in a scratch file.
    env["SPENDFUSE_LEDGER"] = str(workdir / "ledger.db")
    subprocess.run([sys.executable, "-c", _TIMED_IMPORT], env=env, check=True, capture_output=True)  # file cache
    timed: dict[str, list[float]] = defaultdict(list)
    self_us: dict[str, list[int]] = defaultdict(list)
    new_modules_ms: list[float] = []
    for _ in range(runs):
        done = subprocess.run(
            [sys.executable, "-c", _TIMED_IMPORT], env=env, check=True, capture_output=True, text=True
        )
        for key, value in json.loads(done.stdout.strip().splitlines()[-1]).items():
            timed[key].append(value)
        traced = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", "import anthropic, openai; import spendfuse.auto"],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        lines = [m for line in traced.stderr.splitlines() if (m := _IMPORTTIME.match(line))]
        # Post-order: a package's line follows its imports'. What comes after the top-level
        # `openai` line was imported by `import spendfuse.auto`, on top of the SDKs.
        tops = [i for i, m in enumerate(lines) if m.group(3) == " " and m.group(4) == "openai"]
        after = lines[tops[-1] + 1 :] if tops else lines
        for match in after:
            self_us[match.group(4)].append(int(match.group(1)))
        new_modules_ms.append(sum(int(match.group(1)) for match in after) / 1000)
    per_package: dict[str, float] = defaultdict(float)
    modules = {name: median(values) for name, values in self_us.items()}
    for name, value in modules.items():
        per_package[name.split(".")[0]] += value / 1000
    return {
        **{key: median(values) for key, values in timed.items()},
        "importtime_new_ms": median(new_modules_ms),
        "top_modules": sorted(((value / 1000, name) for name, value in modules.items()), reverse=True)[:15],
        "top_packages": sorted(((value, name) for name, value in per_package.items()), reverse=True)[:12],
        "runs": runs,
    }


# -- report ------------------------------------------------------------------------------------


def _fmt(value: float, digits: int = 0, sign: bool = False) -> str:
    if value != value:
        return "n/a"
    return f"{value:+,.{digits}f}" if sign else f"{value:,.{digits}f}"


def _range(values: Sequence[float], digits: int = 0) -> str:
    return f"[{min(values):+.{digits}f}..{max(values):+.{digits}f}]" if len(values) > 1 else ""


def _ok(good: bool) -> str:
    return "met" if good else "**missed**"


def report(
    plan: Plan,
    modes: Sequence[str],
    cases: Sequence[Case],
    results: Results,
    rounds: list[dict[str, Any]],
    skipped: dict[str, str],
    extras: dict[str, Any],
    meta: dict[str, Any],
) -> tuple[str, list[dict[str, Any]]]:
    out: list[str] = []
    add = out.append
    verdicts: list[dict[str, Any]] = []

    def verdict(target: str, subject: str, value: float, limit: float, unit: str, digits: int = 1) -> None:
        good = value == value and value <= limit
        verdicts.append({"target": target, "subject": subject, "value": value, "limit": limit, "met": good})
        add(f"| {target} | {subject} | {_fmt(value, digits)} {unit} | ≤ {limit:g} {unit} | {_ok(good)} |")

    add("# spendfuse overhead benchmark\n")
    if plan.rounds < FULL.rounds or plan.json_calls < FULL.json_calls:
        add(
            "> **Short run** (`--quick` or fewer rounds): it validates the harness end to end; its figures are "
            "too noisy to quote.\n"
        )
    add(
        f"`{meta['command']}` — {meta['date']}, {meta['host']}, Python {meta['python']}, anthropic "
        f"{meta['anthropic']}, openai {meta['openai']}, opentelemetry-sdk {meta['opentelemetry_sdk']}, spendfuse "
        f"{meta['revision']}. {plan.rounds} interleaved rounds (mode order rotated), one fresh process per mode "
        f"and round; per case {plan.warmup} warm-up calls each side, then {plan.json_calls} JSON / "
        f"{plan.stream_calls} stream calls instrumented and as many raw, in ABBA blocks of {plan.json_block} / "
        f"{plan.stream_block}. Load average before/after: {meta['load_before']} / {meta['load_after']} on "
        f"{meta['cpus']} CPUs. Yardstick: a no-op Python function call takes {meta['call_ns']:.0f} ns here; "
        "absolute µs scale roughly with it.\n"
    )
    add(
        "**How CPU is counted.** Process CPU time of all threads (`time.process_time_ns`) per block of calls, "
        "from before the first call to after a force-flush of the TracerProvider (the BatchSpanProcessor exports "
        "every span the block queued) and the MeterProvider (the PeriodicExportingMetricReader collects and "
        "exports) at the block's end, so work any thread does for the block's calls is done and counted inside "
        "it. Cost = median instrumented block - median raw block of the same process, per call, median over "
        "rounds [range across rounds]. Ratio = (raw call + cost) / raw call, the raw call being the raw blocks' "
        "CPU per call without their (idle) flush. Caller wall time judges nothing: work moved to a thread "
        "leaves the caller's clock and still costs the process.\n"
    )
    for mode, reason in skipped.items():
        add(f"**{mode} did not run** (or not in every round): {reason}\n")
    # A mode whose instrumentation silently did nothing, or whose raw blocks were not raw, would
    # flatter or smear the comparison: say so above the tables.
    for case in cases:
        for mode in modes:
            cell = results[case.name][mode]
            if mode == "raw" or not cell.spans_on:
                continue
            if mode != "spendfuse-noop" and median(cell.spans_on) < 0.99:
                add(f"**Check failed**: {mode} exported {median(cell.spans_on):.2f} spans per call on {case.name}.\n")
            if max(cell.spans_off) > 0:
                add(
                    f"**Check failed**: {mode}'s raw blocks exported spans on {case.name}: uninstrumenting "
                    "did not restore the SDK.\n"
                )

    instrumented = [mode for mode in modes if mode != "raw"]

    def cost(case: Case, mode: str) -> float:
        return median(results[case.name][mode].delta_us) if mode in results[case.name] else float("nan")

    # -- targets
    add("## Targets\n")
    add("| target | subject | measured | limit | verdict |")
    add("|---|---|---:|---:|:-:|")
    if "spendfuse-noop" in modes:
        for case in cases:
            value = cost(case, "spendfuse-noop")
            if case.stream:
                chunks = results[case.name]["spendfuse-noop"].chunks
                limit = TARGET_NOOP_CALL_US + TARGET_STREAM_US + TARGET_CHUNK_US * chunks
                verdict("own work, no-op providers (25 + 10 + 0.5/chunk)", case.name, value, limit, "µs")
            else:
                verdict("own work per call, no-op providers", case.name, value, TARGET_NOOP_CALL_US, "µs")
    chunks_extra = extras.get("chunks")
    if chunks_extra and "error" not in chunks_extra:
        for name in ("anthropic", "openai"):
            per_event, per_stream = chunk_split(chunks_extra[name])
            verdict("per stream chunk (recorded events)", name, median(per_event), TARGET_CHUNK_US, "µs", 2)
            verdict("once per stream (recorded events)", name, median(per_stream), TARGET_STREAM_US, "µs", 1)
    breaker = extras.get("breaker")
    if breaker and "error" not in breaker:
        pair = [a + s for a, s in zip(breaker["admit_ns"], breaker["settle_ns"], strict=True)]
        verdict(
            "Breaker.admit + settle p50, memory://",
            "run + 1d user budget",
            median(pair) / 1000,
            TARGET_BREAKER_US,
            "µs",
        )
    if "spendfuse" in modes:
        for case in cases:
            verdict(
                "process CPU vs raw, real SDK, telemetry only",
                case.name,
                median(results[case.name]["spendfuse"].ratio),
                TARGET_RATIO,
                "x",
                3,
            )
    if "spendfuse" in modes and "openllmetry" in modes:
        for case in cases:
            peer = cost(case, "openllmetry")
            share = cost(case, "spendfuse") / peer if peer == peer and peer > 0 else float("nan")
            verdict("spendfuse's added CPU / OpenLLMetry's", case.name, share, TARGET_VS_OPENLLMETRY, "", 2)
    imports = extras.get("import")
    if imports:
        verdict(
            "import spendfuse.auto after the SDKs (wall)",
            "fresh interpreters",
            imports["auto_ms"],
            TARGET_IMPORT_MS,
            "ms",
            0,
        )
    add("")

    # -- main table
    add("## Per call: CPU of all threads, instrumented minus raw\n")
    add(
        "µs per call added to the process (ratio to the raw call). Raw: CPU per call of the fresh raw process "
        "(no providers). Streams: 50 chunks as the SDK's iterator yields them.\n"
    )
    add("| case | raw µs/call | " + " | ".join(instrumented) + " |")
    add("|---|---:|" + "---:|" * len(instrumented))
    for case in cases:
        raw = results[case.name].get("raw")
        raw_us = median(raw.raw_call_us) if raw else float("nan")
        cells = []
        for mode in instrumented:
            cell = results[case.name][mode]
            if not cell.delta_us:
                cells.append("n/a")
                continue
            cells.append(f"{median(cell.delta_us):+,.0f} ({median(cell.ratio):.3f}x)")
        add(f"| {case.name} | {_fmt(raw_us)} | " + " | ".join(cells) + " |")
    add("")

    peers = [mode for mode in ("openllmetry", "openllmetry-nocontent", "otel-openai-v2") if mode in modes]
    if "spendfuse" in modes and peers:
        add("## spendfuse next to the peers\n")
        add(
            "Added CPU per call (all threads), each mode against the raw blocks of its own processes, and "
            "spendfuse's (telemetry only) as a share of the peer's. Target: ≤ 0.25 of OpenLLMetry's (defaults).\n"
        )
        add("| case | spendfuse µs | " + " | ".join(f"{peer} µs | share" for peer in peers) + " |")
        add("|---|---:|" + "---:|---:|" * len(peers))
        for case in cases:
            ours = cost(case, "spendfuse")
            row = f"| {case.name} | {_fmt(ours, sign=True)} |"
            for peer in peers:
                theirs = cost(case, peer)
                share = ours / theirs if theirs == theirs and theirs > 0 else float("nan")
                row += f" {_fmt(theirs, sign=True)} | {_fmt(share, 2)} |"
            add(row)
        add("")

    # -- detail
    add("## Detail\n")
    add(
        "Raw call: CPU per raw call in the mode's own process (raw blocks, their flush left out). Flush: CPU of "
        "one end-of-block flush in raw blocks (idle providers; the same on the instrumented side, so it cancels "
        "in the cost). Cost: instrumented - raw block CPU per call [range across rounds]. Per-call CPU: the "
        "difference of single calls' CPU medians (no block-end flush: work left queued for a thread is missing "
        "here). Wall: the caller's p50 difference, for reference. Spans/call: spans the exporter received per "
        "call, instrumented / raw blocks (raw must be 0).\n"
    )
    add(
        "| case | mode | raw call µs | flush µs | cost µs [range] | ratio [range] | per-call CPU µs | wall µs "
        "| spans/call |"
    )
    add("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for case in cases:
        for mode in modes:
            cell = results[case.name][mode]
            if not cell.raw_call_us:
                continue
            if mode == "raw":
                add(f"| {case.name} | raw | {_fmt(median(cell.raw_call_us))} | | | | | | |")
                continue
            add(
                f"| {case.name} | {mode} | {_fmt(median(cell.raw_call_us))} | {_fmt(median(cell.flush_raw_us))} | "
                f"{median(cell.delta_us):+,.0f} {_range(cell.delta_us)} | {median(cell.ratio):.3f} "
                f"{_range([r - 1 for r in cell.ratio], 3)} | {median(cell.per_call_delta_us):+,.0f} | "
                f"{median(cell.wall_delta_us):+,.0f} | {median(cell.spans_on):.2f} / {median(cell.spans_off):.2f} |"
            )
    add("")

    add("## What each mode's processes did\n")
    add("Threads alive at the end, span names and metric names the exporters received (last round).\n")
    add("| mode | threads | spans | metrics | wrappers left by uninstrument() |")
    add("|---|---|---|---|---:|")
    last = rounds[-1] if rounds else {}
    for mode in modes:
        output = last.get(mode)
        if output is None:
            continue
        stripped = output.get("stripped_wrappers")
        add(
            f"| {mode} | {', '.join(output['threads'])} | {', '.join(output['span_names']) or '-'} | "
            f"{', '.join(output['metric_names']) or '-'} | {'-' if stripped is None else stripped} |"
        )
    add("")

    add("## Peers\n")
    add("| mode | venv | status | versions |")
    add("|---|---|---|---|")
    for mode in ("openllmetry", "openllmetry-nocontent", "otel-openai-v2"):
        status = meta["peers"].get(mode)
        if status is None:
            continue
        versions = ", ".join(f"{k} {v}" for k, v in sorted(status.get("versions", {}).items()))
        text = "ok" if status.get("ok") else "**failed**: `" + str(status.get("error", "")).splitlines()[-1] + "`"
        if status.get("import_error"):
            text += (
                " — did not import as installed (`" + str(status["import_error"]).splitlines()[-1] + "`); the "
                "venv adds " + ", ".join(status.get("workaround", []))
            )
        add(f"| {mode} | .bench-venvs/{PEER_VENV[mode]} | {text} | {versions} |")
    add("")

    if chunks_extra:
        add("## Per stream chunk, spendfuse alone\n")
        add(
            "Recorded SDK events (one 50-event stream per provider) iterated bare and through spendfuse's "
            "`watch_stream`, the code every instrumented stream goes through (settlement stubbed out), "
            f"interleaved, thread CPU time, {plan.chunk_rounds} rounds of {plan.chunk_repeat} streams, on the "
            "recorded stream and on the same stream with its middle repeated: the difference splits spendfuse's "
            "cost into a part per event and a part once per stream. Uses spendfuse internals (imported "
            "defensively).\n"
        )
        if "error" in chunks_extra:
            add(f"n/a: {chunks_extra['error']}\n")
        else:
            add("| provider | bare ns/event | per event µs [range] | per stream µs [range] |")
            add("|---|---:|---:|---:|")
            for name in ("anthropic", "openai"):
                per_event, per_stream = chunk_split(chunks_extra[name])
                add(
                    f"| {name} | {median(chunks_extra[name]['bare_ns']):.0f} | {median(per_event):.2f} "
                    f"{_range(per_event, 2)} | {median(per_stream):.1f} {_range(per_stream, 1)} |"
                )
            add("")

    if breaker:
        add("## Breaker alone (memory://)\n")
        if "error" in breaker:
            add(f"n/a: {breaker['error']}\n")
        else:
            admit, settle = breaker["admit_ns"], breaker["settle_ns"]
            pair = [a + s for a, s in zip(admit, settle, strict=True)]
            add(
                "`Breaker.admit(call_request, run, None)` + `Breaker.settle(admission, usage, cost)` on a run "
                f"budget and a 1d user window, short prompt, {len(pair):,} calls after warm-up; wall clock "
                "(thread CPU for the pair alongside).\n"
            )
            add("| step | p50 µs | p99 µs |")
            add("|---|---:|---:|")
            for label, values in (
                ("admit", admit),
                ("settle", settle),
                ("admit + settle", pair),
                ("admit + settle, thread CPU", breaker["cpu_ns"]),
            ):
                add(f"| {label} | {median(values) / 1000:.1f} | {percentile(values, 0.99) / 1000:.1f} |")
            add("")

    if imports:
        add("## Import time\n")
        add(
            f"Fresh interpreters, median of {imports['runs']} (after one untimed run: the file cache): "
            "`import anthropic, openai`, then `import spendfuse.auto` timed inside the process, so neither the "
            "interpreter's start-up and exit nor the SDKs' import is in it. The ledger (the default without an "
            "OTLP endpoint) writes to a scratch file.\n"
        )
        add("| measurement | ms |")
        add("|---|---:|")
        add(f"| `import anthropic, openai` | {imports['sdks_ms']:.0f} |")
        add(f"| then `import spendfuse.auto`, wall | {imports['auto_ms']:.0f} |")
        add(f"| then `import spendfuse.auto`, process CPU | {imports['auto_cpu_ms']:.0f} |")
        add(f"| `-X importtime`: self times of the modules it adds, summed | {imports['importtime_new_ms']:.0f} |")
        add("")
        add("Modules `import spendfuse.auto` adds on top of the SDKs, `-X importtime` self time (median):\n")
        add("| package (sum) | ms | | module | ms |")
        add("|---|---:|---|---|---:|")
        packages, modules = imports["top_packages"], imports["top_modules"]
        for index in range(max(len(packages), len(modules))):
            left = f"{packages[index][1]} | {packages[index][0]:.1f}" if index < len(packages) else " | "
            right = f"{modules[index][1]} | {modules[index][0]:.1f}" if index < len(modules) else " | "
            add(f"| {left} | | {right} |")
        add("")

    rss = extras.get("rss")
    if rss:
        samples = rss["samples"]
        add("## RSS over instrumented calls\n")
        add(f"Mode spendfuse-budgets, calls cycling over {', '.join(rss['cases'])}; RSS from /proc/self/status.\n")
        add("| calls | RSS MiB | elapsed s |")
        add("|---:|---:|---:|")
        for calls, rss_bytes, elapsed in samples:
            add(f"| {calls:,} | {rss_bytes / 2**20:.1f} | {elapsed:.0f} |")
        add(f"\nAfter a final gc.collect(): {rss['after_gc'] / 2**20:.1f} MiB.\n")
    return "\n".join(out), verdicts


# -- main --------------------------------------------------------------------------------------


def _meta(command: str) -> dict[str, Any]:
    import anthropic
    import openai
    from opentelemetry.sdk.version import __version__ as otel_sdk

    revision = (
        subprocess.run(
            ["git", "-C", str(ROOT), "describe", "--always", "--dirty"], capture_output=True, text=True
        ).stdout.strip()
        or "unknown"
    )
    return {
        "command": command,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "host": f"{platform.system()} {platform.machine()}",
        "python": platform.python_version(),
        "anthropic": anthropic.__version__,
        "openai": openai.__version__,
        "opentelemetry_sdk": otel_sdk,
        "revision": revision,
        "cpus": os.cpu_count(),
        "load_before": " ".join(f"{x:.1f}" for x in os.getloadavg()),
        "call_ns": _python_call_ns(),
        "peers": {mode: status_of(venv) for mode, venv in PEER_VENV.items()},
    }


def _python_call_ns() -> float:
    """What one no-op Python function call costs here: a yardstick for comparing machines."""

    def noop() -> None:
        return None

    best = float("inf")
    for _ in range(7):
        start = time.perf_counter_ns()
        for _ in range(200_000):
            noop()
        best = min(best, (time.perf_counter_ns() - start) / 200_000)
    return best


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short run (a few minutes)")
    parser.add_argument("--rounds", type=int, help="override the number of interleaved rounds")
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated subset of: " + ", ".join(MODES))
    parser.add_argument(
        "--cases", default="", help="comma-separated provider/shape, e.g. openai/stream50 (default: all)"
    )
    parser.add_argument("--skip", default="", help="comma-separated: chunks, breaker, import, rss")
    parser.add_argument("--output", default=str(BENCH / "results.md"), help="Markdown report path ('' for none)")
    parser.add_argument("--json", default="", help="also write every sample and the verdicts here")
    parser.add_argument("--report-from", default="", help="re-render the report of a saved --json run; run nothing")
    args = parser.parse_args(argv)
    if args.report_from:
        rerender(Path(args.report_from), args.output)
        return

    plan = QUICK if args.quick else FULL
    if args.rounds:
        plan = Plan(**{**asdict(plan), "rounds": args.rounds})
    modes = [mode for mode in args.modes.split(",") if mode]
    unknown = [mode for mode in modes if mode not in MODES]
    if unknown:
        parser.error(f"unknown modes: {', '.join(unknown)}")
    if "raw" not in modes:
        modes.insert(0, "raw")
    cases = [Case.parse(name) for name in args.cases.split(",") if name] or list(ALL_CASES)
    skip = {name for name in args.skip.split(",") if name}
    command = "python bench/bench_overhead.py " + " ".join(argv if argv is not None else sys.argv[1:])
    meta = _meta(command.strip())
    started = time.monotonic()

    pythons: dict[str, str] = {}
    skipped: dict[str, str] = {}
    for mode in modes:
        python, reason = interpreter(mode)
        if python is None:
            skipped[mode] = reason or "unknown"
            print(f"skipping {mode}: {reason}", file=sys.stderr)
        else:
            pythons[mode] = python
    runnable = [mode for mode in modes if mode in pythons]

    def log(text: str) -> None:
        print(f"[{time.monotonic() - started:5.0f} s] {text}", file=sys.stderr, flush=True)

    rounds: list[dict[str, Any]] = []
    extras: dict[str, Any] = {}
    for number in range(plan.rounds):
        order = runnable[number % len(runnable) :] + runnable[: number % len(runnable)]
        one_round: dict[str, Any] = {}
        for mode in order:
            mode_cases = [case for case in cases if case.provider in MODE_PROVIDERS.get(mode, (case.provider,))]
            spec = {
                "task": "calls",
                "mode": mode,
                "cases": [case.name for case in mode_cases],
                "warmup": plan.warmup,
                "calls": {"json": plan.json_calls, "stream50": plan.stream_calls},
                "block": {"json": plan.json_block, "stream50": plan.stream_block},
            }
            try:
                result = run_worker(spec, pythons[mode])
            except RuntimeError as exc:
                skipped[mode] = str(exc).splitlines()[-1]
                log(f"round {number + 1}/{plan.rounds}: {mode} FAILED: {exc}")
                continue
            if result.get("warnings"):
                print(f"warning: {mode} logged internal errors:\n{result['warnings']}", file=sys.stderr)
            one_round[mode] = result
            log(f"round {number + 1}/{plan.rounds}: {mode} done")
        rounds.append(one_round)

    if "chunks" not in skip:
        extras["chunks"] = run_worker({"task": "chunks", "rounds": plan.chunk_rounds, "repeat": plan.chunk_repeat})
        log("chunks done")
    if "breaker" not in skip:
        extras["breaker"] = run_worker({"task": "breaker", "warmup": 1000, "calls": plan.breaker_calls})
        log("breaker done")
    if "import" not in skip:
        with tempfile.TemporaryDirectory(prefix="spendfuse-bench-") as scratch:
            extras["import"] = bench_import(plan.import_runs, Path(scratch))
        log("import done")
    if "rss" not in skip:
        extras["rss"] = run_worker(
            {
                "task": "rss",
                "mode": "spendfuse-budgets",
                "cases": RSS_SCHEDULE,
                "calls": plan.rss_calls,
                "sample_every": plan.rss_every,
            }
        )
        extras["rss"]["cases"] = [f"{RSS_SCHEDULE.count(name)}x {name}" for name in sorted(set(RSS_SCHEDULE))]
        log("rss done")

    meta["load_after"] = " ".join(f"{x:.1f}" for x in os.getloadavg())
    ran = [mode for mode in modes if any(mode in one_round for one_round in rounds)]
    results = collect(rounds, ran, cases)
    text, verdicts = report(plan, ran, cases, results, rounds, skipped, extras, meta)
    text += f"\nTotal benchmark time: {time.monotonic() - started:.0f} s.\n"
    print(text)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    if args.json:
        summary = {case: {mode: asdict(cell) for mode, cell in by_mode.items()} for case, by_mode in results.items()}
        Path(args.json).write_text(
            json.dumps(
                {
                    "meta": meta,
                    "plan": asdict(plan),
                    "modes": ran,
                    "cases": [case.name for case in cases],
                    "skipped": skipped,
                    "verdicts": verdicts,
                    "summary": summary,
                    "rounds": rounds,
                    "extras": extras,
                },
            ),
            encoding="utf-8",
        )


def rerender(path: Path, output: str) -> None:
    """The Markdown report of a run saved with ``--json``, from its samples."""
    data = json.loads(path.read_text(encoding="utf-8"))
    plan = Plan(**data["plan"])
    cases = [Case.parse(name) for name in data.get("cases") or data["summary"]]
    modes = data.get("modes") or [mode for mode in MODES if any(mode in one for one in data["rounds"])]
    results = collect(data["rounds"], modes, cases)
    text, _verdicts = report(plan, modes, cases, results, data["rounds"], data["skipped"], data["extras"], data["meta"])
    print(text)
    if output:
        Path(output).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
