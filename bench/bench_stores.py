"""Budget store benchmark: latency, throughput and budget accuracy of memory://, sqlite:///, redis://.

    python bench/bench_stores.py [--seconds 2] [--redis redis://host:port/0] [--stores memory,sqlite,redis]

Part 1, latency: each worker loops reserve + settle on one shared user scope (a limit that never binds)
for ``--seconds``; p50/p99 of the pair and admitted calls/s, with 1 and 8 processes. For memory:// every
process has its own store (nothing is shared), so its 8-process row is an upper bound, not a peer.

Part 2, accuracy: N concurrent workers (threads) spend against one USD limit. Each reserves a worst case
(5-20 cents), "calls" the model for a millisecond, settles an actual cost drawn in [20 %, 100 %] of the
worst case, and stops at its first refusal. Reported: overshoot (spent past the limit: must be 0),
utilization (spent / limit when everyone has stopped) and false rejections (workers refused although
their worst case would have fit in what was finally left: the price of holding worst cases in flight).

Part 3, scopes (``--part scopes``; Redis only): Redis round trips per admitted call (reserve + settle)
with 1, 3 and 6 scopes, read from the server's own command counter (INFO stats); then admitted
calls/s and p50/p99 of reserve + settle from 8 processes, each call on three scopes (user, team,
org; the team and org shared by every process, the user one per process), with redis-py's hiredis
reply parser and without it (hidden from the workers).

Without ``--redis`` a throwaway redis-server is started when one is installed.
"""

from __future__ import annotations

import argparse
import importlib.util
import multiprocessing
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if importlib.util.find_spec("spendfuse") is None:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from spendfuse.budgets.stores import USD, BudgetStore, ScopeRequest, open_store

MICROS = 1_000_000
PROCESS_COUNTS = (1, 8)
WORKER_COUNTS = (1, 8, 32, 128)
ACCURACY_LIMIT = 50 * MICROS


def _percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(fraction * (len(sorted_values) - 1))))
    return sorted_values[index]


# -- part 1: latency and throughput ------------------------------------------------------------


def _latency_worker(url: str, seconds: float, start_at: float, results: Any) -> None:
    store = open_store(url, timeout=5.0)
    request = [ScopeRequest("bench:user", {USD: 10**15}, {USD: 150_000}, time.time() + 3600)]
    prefix = uuid.uuid4().hex[:8]
    # Warm up connections and caches before the clock starts.
    for index in range(20):
        now = time.time()
        store.reserve(f"{prefix}-warm-{index}", request, now + 60, now)
        store.settle(f"{prefix}-warm-{index}", {USD: 100_000}, now)
    while time.time() < start_at:
        time.sleep(0.001)
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds
    index = 0
    while True:
        started = time.perf_counter()
        if started >= deadline:
            break
        lease_id = f"{prefix}-{index}"
        index += 1
        now = time.time()
        try:
            if store.reserve(lease_id, request, now + 60, now) is None:
                store.settle(lease_id, {USD: 100_000}, now)
        except Exception:
            errors += 1
            continue
        latencies.append(time.perf_counter() - started)
    leaked = store.usage("bench:user", time.time()).leases  # this process's view (memory: its own store)
    store.close()
    results.put((latencies, errors, leaked))


@dataclass
class LatencyRow:
    store: str
    processes: int
    p50_us: float
    p99_us: float
    calls_per_s: float
    errors: int
    leaked: int  # leases still open once every worker exited cleanly (must be 0)


def bench_latency(name: str, url: str, processes: int, seconds: float) -> LatencyRow:
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    start_at = time.time() + 1.5 + 0.2 * processes  # after every child has imported and warmed up
    workers = [
        context.Process(target=_latency_worker, args=(url, seconds, start_at, results)) for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    reports = [results.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join()
    if url.startswith("memory:"):
        leaked = sum(report[2] for report in reports)
    else:
        store = open_store(url, timeout=5.0)
        leaked = store.usage("bench:user", time.time()).leases
        store.close()
    latencies = sorted(value for report in reports for value in report[0])
    return LatencyRow(
        name,
        processes,
        _percentile(latencies, 0.50) * 1e6,
        _percentile(latencies, 0.99) * 1e6,
        len(latencies) / seconds,
        sum(report[1] for report in reports),
        leaked,
    )


# -- part 2: budget accuracy under concurrency -------------------------------------------------


@dataclass
class AccuracyRow:
    store: str
    workers: int
    calls: int
    overshoot_usd: float
    utilization: float
    false_rejections: int
    errors: int


def bench_accuracy(name: str, store: BudgetStore, workers: int, seed: int) -> AccuracyRow:
    key = f"bench:accuracy:{uuid.uuid4().hex}"
    barrier = threading.Barrier(workers)
    refused: list[int] = []
    calls = [0] * workers
    errors = [0] * workers
    lock = threading.Lock()

    def run(index: int) -> None:
        rng = random.Random(seed * 1000 + index)
        barrier.wait()
        while True:
            worst = rng.randint(50_000, 200_000)
            lease_id = uuid.uuid4().hex
            now = time.time()
            try:
                denial = store.reserve(
                    lease_id, [ScopeRequest(key, {USD: ACCURACY_LIMIT}, {USD: worst})], now + 60, now
                )
            except Exception:
                errors[index] += 1
                return
            if denial is not None:
                with lock:
                    refused.append(worst)
                return
            time.sleep(0.001)
            store.settle(lease_id, {USD: int(worst * rng.uniform(0.2, 1.0))}, time.time())
            calls[index] += 1

    threads = [threading.Thread(target=run, args=(index,)) for index in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    spent = store.usage(key, time.time()).spent[USD]
    left = ACCURACY_LIMIT - spent
    return AccuracyRow(
        name,
        workers,
        sum(calls),
        max(0, spent - ACCURACY_LIMIT) / MICROS,
        spent / ACCURACY_LIMIT,
        sum(1 for worst in refused if worst <= left),
        sum(errors),
    )


# -- plumbing ----------------------------------------------------------------------------------


class _RedisServer:
    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(workdir),
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.02)

    def close(self) -> None:
        self.process.kill()
        self.process.wait()


# -- part 3: several scopes on Redis ----------------------------------------------------------

SCOPE_COUNTS = (1, 3, 6)


def _scope_requests(count: int, user: str) -> list[ScopeRequest]:
    names = [
        f"bench:user/{user}",
        "bench:team/search",
        "bench:org/acme",
        "bench:tenant/t1",
        "bench:project/p1",
        "bench:model/m1",
    ]
    return [ScopeRequest(key, {USD: 10**15}, {USD: 150_000}, time.time() + 3600) for key in names[:count]]


def bench_round_trips(url: str, calls: int = 300) -> list[tuple[int, float]]:
    """Requests the client sent per reserve + settle, counted on redis-py's connections.

    The server's own counters also count the commands a Lua script runs inside, so the client
    side is where round trips are counted: every ``send_packed_command`` is one request.
    """
    import redis.connection

    sent = [0]
    original = redis.connection.AbstractConnection.send_packed_command

    def counting(self: Any, command: Any, check_health: bool = True) -> None:
        sent[0] += 1
        original(self, command, check_health)

    rows = []
    store = open_store(url, timeout=5.0)
    redis.connection.AbstractConnection.send_packed_command = counting  # type: ignore[method-assign]
    try:
        for count in SCOPE_COUNTS:
            requests = _scope_requests(count, "rt")
            for index in range(5):  # the scripts are loaded (NOSCRIPT -> SCRIPT LOAD) before counting
                now = time.time()
                store.reserve(f"rt-warm-{count}-{index}", requests, now + 60, now)
                store.settle(f"rt-warm-{count}-{index}", {USD: 1}, now)
            before = sent[0]
            for index in range(calls):
                now = time.time()
                assert store.reserve(f"rt-{count}-{index}", requests, now + 60, now) is None
                store.settle(f"rt-{count}-{index}", {USD: 100_000}, now)
            rows.append((count, (sent[0] - before) / calls))
    finally:
        redis.connection.AbstractConnection.send_packed_command = original  # type: ignore[method-assign]
        store.close()
    return rows


def _scopes_worker(url: str, seconds: float, start_at: float, hiredis: bool, results: Any) -> None:
    if not hiredis:
        sys.modules["hiredis"] = None  # type: ignore[assignment]  # redis-py falls back to its Python parser
    import redis.utils

    store = open_store(url, timeout=5.0)
    requests = _scope_requests(3, uuid.uuid4().hex[:8])
    prefix = uuid.uuid4().hex[:8]
    for index in range(20):
        now = time.time()
        store.reserve(f"{prefix}-warm-{index}", requests, now + 60, now)
        store.settle(f"{prefix}-warm-{index}", {USD: 100_000}, now)
    while time.time() < start_at:
        time.sleep(0.001)
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds
    index = 0
    while True:
        started = time.perf_counter()
        if started >= deadline:
            break
        lease_id = f"{prefix}-{index}"
        index += 1
        now = time.time()
        try:
            if store.reserve(lease_id, requests, now + 60, now) is None:
                store.settle(lease_id, {USD: 100_000}, now)
        except Exception:
            errors += 1
            continue
        latencies.append(time.perf_counter() - started)
    store.close()
    results.put((latencies, errors, bool(redis.utils.HIREDIS_AVAILABLE)))


def bench_scopes_throughput(
    url: str, processes: int, seconds: float, hiredis: bool
) -> tuple[float, float, float, int, bool]:
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    start_at = time.time() + 1.5 + 0.2 * processes
    workers = [
        context.Process(target=_scopes_worker, args=(url, seconds, start_at, hiredis, results))
        for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    reports = [results.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join()
    latencies = sorted(value for report in reports for value in report[0])
    used = all(report[2] for report in reports)
    return (
        len(latencies) / seconds,
        _percentile(latencies, 0.5) * 1e3,
        _percentile(latencies, 0.99) * 1e3,
        sum(report[1] for report in reports),
        used,
    )


def scopes_part(url: str, seconds: float) -> None:
    print("Redis round trips per admitted call (reserve + settle), counted on the client's connections")
    for count, trips in bench_round_trips(url):
        print(f"  {count} scope(s): {trips:.2f}")
    print(f"8 processes, 3 scopes per call, reserve + settle, {seconds:g}s per row")
    print(f"  {'parser':<8} {'calls/s':>9} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6}")
    for hiredis in (True, False):
        rate, p50, p99, errors, used = bench_scopes_throughput(url, 8, seconds, hiredis)
        parser = "hiredis" if used else "python"
        print(f"  {parser:<8} {rate:>9.0f} {p50:>7.2f} {p99:>7.2f} {errors:>6}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=2.0, help="measuring time per latency row")
    parser.add_argument("--redis", help="use this redis:// URL instead of starting a redis-server")
    parser.add_argument("--stores", default="memory,sqlite,redis")
    parser.add_argument(
        "--part", choices=("all", "scopes"), default="all", help="scopes: only part 3 (several scopes on Redis)"
    )
    options = parser.parse_args()
    if options.part == "scopes":
        options.stores = "redis"

    workdir = Path(tempfile.mkdtemp(prefix="spendfuse-bench-"))
    server: _RedisServer | None = None
    urls: dict[str, str] = {}
    for name in options.stores.split(","):
        if name == "memory":
            urls[name] = "memory://"
        elif name == "sqlite":
            urls[name] = f"sqlite:///{workdir}/budget.db"
        elif name == "redis":
            if options.redis:
                urls[name] = options.redis
            elif shutil.which("redis-server") or Path("/usr/bin/redis-server").exists():
                server = _RedisServer(workdir)
                urls[name] = f"redis://127.0.0.1:{server.port}/0"
            else:
                print("redis: no redis-server installed and no --redis URL; skipped", file=sys.stderr)
        else:
            parser.error(f"unknown store {name!r}")

    try:
        if options.part == "scopes":
            if "redis" in urls:
                scopes_part(urls["redis"], options.seconds)
            return
        latency = [
            bench_latency(name, url, processes, options.seconds)
            for name, url in urls.items()
            for processes in PROCESS_COUNTS
        ]
        accuracy = []
        for name, url in urls.items():
            store = open_store(url, timeout=5.0)
            for workers in WORKER_COUNTS:
                accuracy.append(bench_accuracy(name, store, workers, seed=workers))
            store.close()
    finally:
        if server is not None:
            server.close()
        shutil.rmtree(workdir, ignore_errors=True)

    print(f"reserve + settle, {options.seconds:g}s per row (python {sys.version.split()[0]})")
    print(f"{'store':<8} {'procs':>5} {'p50 us':>9} {'p99 us':>9} {'calls/s':>10} {'errors':>6} {'leaked leases':>13}")
    for row in latency:
        print(
            f"{row.store:<8} {row.processes:>5} {row.p50_us:>9.0f} {row.p99_us:>9.0f} "
            f"{row.calls_per_s:>10.0f} {row.errors:>6} {row.leaked:>13}"
        )
    print()
    print(f"accuracy against a ${ACCURACY_LIMIT / MICROS:g} limit, worst case $0.05-0.20, actual 20-100 % of it")
    print(
        f"{'store':<8} {'workers':>7} {'calls':>6} {'overshoot $':>11} {'utilization':>11} "
        f"{'false rej.':>10} {'errors':>6}"
    )
    for row in accuracy:
        print(
            f"{row.store:<8} {row.workers:>7} {row.calls:>6} {row.overshoot_usd:>11.6f} "
            f"{row.utilization:>10.1%} {row.false_rejections:>10} {row.errors:>6}"
        )


if __name__ == "__main__":
    main()
