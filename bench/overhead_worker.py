"""One measuring process of ``bench_overhead.py``: set up one mode, run one task, print JSON.

    python bench/overhead_worker.py '{"task": "calls", "mode": "raw", ...}'

Started once per mode and round by the orchestrator, so no mode inherits another's imports,
caches, patched methods or heap. The last line of stdout is the JSON result; everything else a
library may print goes to stderr.

Tasks:
  calls    per-call nanoseconds of every case (provider x JSON/stream x mock/loopback)
  rss      RSS every ``sample_every`` calls over ``calls`` instrumented calls
  breaker  admission + settlement latency of the breaker alone (memory store)
  chunks   spendfuse's per-event cost alone, on recorded SDK events
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # the checkout this file lives in, not an installed spendfuse
    sys.path.insert(0, str(ROOT))
BENCH = Path(__file__).resolve().parent
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

from overhead_common import (  # noqa: E402
    ANTHROPIC_MODEL,
    MAX_TOKENS,
    OPENAI_MODEL,
    RESET_EVERY,
    Case,
    anthropic_messages,
    openai_messages,
    reply_for,
)

BIG = 10**12  # limits that never bind: the benchmark measures admission, not refusal
LONG_STREAM_FACTOR = 6  # the chunk task's longer stream repeats the recorded middle this many times


# -- modes ---------------------------------------------------------------------------------------


def _telemetry_providers() -> tuple[Any, Any]:
    """SDK providers as an application would install them, exporting to nowhere.

    A BatchSpanProcessor and a periodic metric reader keep their background threads, queueing
    and collection in the picture; only the network export itself is left out.
    """
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import (
        MetricExporter,
        MetricExportResult,
        MetricsData,
        PeriodicExportingMetricReader,
    )
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class NullSpanExporter(SpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    class NullMetricExporter(MetricExporter):
        def __init__(self) -> None:
            super().__init__(preferred_temporality={}, preferred_aggregation={})

        def export(
            self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
        ) -> MetricExportResult:
            return MetricExportResult.SUCCESS

        def force_flush(self, timeout_millis: float = 10_000) -> bool:
            return True

        def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
            return None

    resource = Resource.create({"service.name": "spendfuse-bench"})
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(NullSpanExporter()))
    # A collection every 5 s (the default is 60 s) so a measuring process sees several.
    reader = PeriodicExportingMetricReader(NullMetricExporter(), export_interval_millis=5_000)
    meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
    return tracer_provider, meter_provider


def _clean_environment() -> None:
    # A developer's SPENDFUSE_* or OTEL_* variables must not change what a mode measures.
    for name in list(os.environ):
        if name.startswith(("SPENDFUSE_", "OTEL_", "ANTHROPIC_", "OPENAI_")):
            del os.environ[name]


@dataclass
class Mode:
    """A mode set up in this process: the context calls run in, and an on/off switch.

    Switching off is ``spendfuse.uninstrument()`` (the SDK methods restored, as in raw mode);
    switching on instruments again with the same providers and settings. That lets one process
    alternate short blocks of instrumented and raw calls, so both see the same machine.
    """

    context: contextlib.AbstractContextManager[Any]
    switch: Callable[[bool], None]


def setup_mode(mode: str, store: str | None) -> Mode:
    _clean_environment()
    if mode == "raw":
        return Mode(contextlib.nullcontext(), lambda _on: None)
    import spendfuse

    tracer_provider, meter_provider = _telemetry_providers()
    settings: dict[str, Any] = {"tracer_provider": tracer_provider, "meter_provider": meter_provider}
    context: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
    if mode.startswith("budget-") and store is not None:
        settings.update(
            run_budget=spendfuse.Budget(usd=BIG, turns=BIG),
            user_budget=spendfuse.Budget(usd=BIG, turns=BIG, window="1d"),
            store=store,
        )
        context = spendfuse.run("bench-run", user_id="bench-user")
    elif mode != "telemetry":
        raise SystemExit(f"unknown mode {mode!r} or missing store")
    spendfuse.instrument(**settings)

    def switch(on: bool) -> None:
        if on:
            spendfuse.instrument(**settings)
        else:
            spendfuse.uninstrument()

    return Mode(context, switch)


# -- clients and calls ---------------------------------------------------------------------------


@dataclass
class Target:
    """One case made callable: ``call()`` performs one request and consumes it completely."""

    call: Callable[[], None]
    reset: Callable[[], None]


def case_port(case: Case, spec: dict[str, Any]) -> int | None:
    """The fake server a case talks to: the instant one, or the one with a provider's think time."""
    return spec.get("remote_port") if case.transport == "remote" else spec.get("port")


def _sdk_clients(case: Case, port: int | None) -> tuple[Any, Callable[[], None]]:
    if case.transport == "mock":
        from spendfuse.testing import FakeProvider

        provider = FakeProvider(responder=reply_for)
        client = provider.anthropic_client() if case.provider == "anthropic" else provider.openai_client()
        return client, provider.reset
    if port is None:
        raise SystemExit("loopback cases need --port of the fake server")
    base = f"http://127.0.0.1:{port}"
    if case.provider == "anthropic":
        import anthropic

        client = anthropic.Anthropic(
            api_key="bench-key", base_url=base, max_retries=0, http_client=anthropic.DefaultHttpxClient(verify=False)
        )
    else:
        import openai

        client = openai.OpenAI(
            api_key="bench-key",
            base_url=f"{base}/v1",
            max_retries=0,
            http_client=openai.DefaultHttpxClient(verify=False),
        )
    # The server process resets its own request log.
    return client, lambda: None


def make_target(case: Case, port: int | None, marks: list[int] | None = None) -> Target:
    """``marks``, when given, receives the time each stream event reached the caller."""
    client, reset = _sdk_clients(case, port)
    stream = case.shape == "stream"
    if case.provider == "anthropic":
        messages = anthropic_messages()
        create = client.messages.create
        kwargs: dict[str, Any] = {
            "model": ANTHROPIC_MODEL,
            "max_tokens": MAX_TOKENS,
            "system": messages[0],
            "messages": messages[1],
        }
    else:
        create = client.chat.completions.create
        kwargs = {"model": OPENAI_MODEL, "max_completion_tokens": MAX_TOKENS, "messages": openai_messages()}

    if not stream:

        def call() -> None:
            create(**kwargs)

        return Target(call, reset)

    clock = time.perf_counter_ns

    def call_stream() -> None:
        if marks is None:
            for _event in create(stream=True, **kwargs):
                pass
            return
        stamp = marks.append
        for _event in create(stream=True, **kwargs):
            stamp(clock())

    return Target(call_stream, reset)


# -- tasks ---------------------------------------------------------------------------------------


def _pending_flusher() -> Callable[[], None]:
    """Runs the telemetry spendfuse has queued for its background thread (a no-op before it had one)."""
    try:
        from spendfuse.telemetry.emitter import emitter
    except ImportError:
        return lambda: None
    return emitter.flush


def task_calls(spec: dict[str, Any]) -> dict[str, Any]:
    """Per case: warm-up, then alternating blocks of instrumented and raw calls (raw only in raw mode).

    Blocks go ABBA (on, off, off, on, ...) so a linear drift of the machine cancels out, and each
    block starts with one untimed call that absorbs the switch (a new store connection, say).
    """
    cases = [Case.parse(name) for name in spec["cases"]]
    mode = setup_mode(spec["mode"], spec.get("store"))
    paired = spec["mode"] != "raw"
    clock = time.perf_counter_ns
    # Process CPU time (all threads, exporters included) does not count time the process waits
    # for a core; on this shared VM the cores themselves still run slower when busy.
    cpu_clock = time.process_time_ns
    flush_pending = _pending_flusher() if paired else (lambda: None)
    results: dict[str, Any] = {}
    with mode.context:
        for case in cases:
            marks: list[int] = []
            port = case_port(case, spec)
            target = make_target(case, port, marks)
            chunk_count = count_chunks(case, port) if case.shape == "stream" else 0
            for index in range(spec["warmup"]):
                if paired and index == spec["warmup"] // 2:
                    mode.switch(False)  # warm the raw path too
                target.call()
            target.reset()
            sides: dict[str, dict[str, list[int]]] = {
                side: {"ns": [], "cpu_ns": [], "block_cpu_ns": [], "leftover_ns": [], "mid_ns": [], "tail_ns": [],
                       "gap_ns": []}
                for side in (("instrumented", "raw") if paired else ("raw",))
            }
            block = spec["block"][case.shape]
            calls = spec["remote_calls" if case.transport == "remote" else "calls"][case.shape]
            blocks = max(1, calls // block)
            schedule = [number % 4 in (0, 3) for number in range(2 * blocks)] if paired else [False] * blocks
            done = 0
            for on in schedule:
                if paired:
                    mode.switch(on)
                target.call()
                flush_pending()  # the switch's untimed call leaves nothing behind for the block
                record = sides["instrumented" if on else "raw"]
                block_cpu_start = cpu_clock()
                for _ in range(block):
                    marks.clear()
                    cpu_start = cpu_clock()
                    start = clock()
                    target.call()
                    end = clock()
                    record["cpu_ns"].append(cpu_clock() - cpu_start)
                    record["ns"].append(end - start)
                    if marks:
                        # First to last event: chunk iteration alone, without the request before
                        # it or the settlement that runs when the iterator is exhausted.
                        record["mid_ns"].append(marks[-1] - marks[0])
                        record["tail_ns"].append(end - marks[-1])
                        # Single gaps between events: their median shrugs off the preemptions
                        # that a whole stream's time on a busy machine collects.
                        record["gap_ns"].extend(b - a for a, b in itertools.pairwise(marks))
                    done += 1
                    if done % RESET_EVERY == 0:
                        target.reset()
                # The whole block's CPU per call, the telemetry thread's included, and whatever the
                # block left for it to do: what the calls cost the process, wherever it ran. The
                # wall time of that leftover is charged to the block's calls too (conservative: in
                # a longer run the thread would have done part of it while callers waited on I/O).
                leftover_start = clock()
                flush_pending()
                record["leftover_ns"].append((clock() - leftover_start) // block)
                record["block_cpu_ns"].append((cpu_clock() - block_cpu_start) // block)
            if paired:
                mode.switch(True)
            results[case.name] = {"chunks": chunk_count, **sides}
    return {"cases": results}


def count_chunks(case: Case, port: int | None) -> int:
    """Items the SDK's stream iterator yields for this case (what the proxy observes)."""
    client, _reset = _sdk_clients(case, port)
    if case.provider == "anthropic":
        system, messages = anthropic_messages()
        stream = client.messages.create(
            model=ANTHROPIC_MODEL, max_tokens=MAX_TOKENS, system=system, messages=messages, stream=True
        )
    else:
        stream = client.chat.completions.create(
            model=OPENAI_MODEL, max_completion_tokens=MAX_TOKENS, messages=openai_messages(), stream=True
        )
    return sum(1 for _ in stream)


def rss_bytes() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def task_rss(spec: dict[str, Any]) -> dict[str, Any]:
    """Cycle through ``cases`` (names may repeat, to weight them) and sample RSS along the way."""
    mode = setup_mode(spec["mode"], spec.get("store"))
    samples: list[tuple[int, int, float]] = []
    with mode.context:
        by_name = {name: make_target(Case.parse(name), spec.get("port")) for name in set(spec["cases"])}
        targets = [by_name[name] for name in spec["cases"]]
        started = time.perf_counter()
        samples.append((0, rss_bytes(), 0.0))
        every = spec["sample_every"]
        for index in range(1, spec["calls"] + 1):
            targets[index % len(targets)].call()
            if index % RESET_EVERY == 0:
                for target in by_name.values():
                    target.reset()
            if index % every == 0:
                samples.append((index, rss_bytes(), time.perf_counter() - started))
        gc.collect()
        collected = rss_bytes()
    return {"samples": samples, "after_gc": collected, "gc_objects": len(gc.get_objects())}


def task_breaker(spec: dict[str, Any]) -> dict[str, Any]:
    """The breaker alone: admit + settle on a run budget and a memory:// user window."""
    from spendfuse import runtime
    from spendfuse.budgets.breaker import CallRequest
    from spendfuse.budgets.usage import TokenUsage
    from spendfuse.runs.run import current_run

    mode = setup_mode("budget-memory", "memory://")
    system, messages = anthropic_messages()
    body = {"model": ANTHROPIC_MODEL, "max_tokens": MAX_TOKENS, "system": system, "messages": messages}
    usage = TokenUsage(input_tokens=900, output_tokens=60)
    clock = time.perf_counter_ns
    admit_ns: list[int] = []
    settle_ns: list[int] = []
    with mode.context:
        active = runtime.current()
        if active is None:
            raise SystemExit("spendfuse is not instrumented")
        breaker = active.breaker
        the_run = current_run()
        request = CallRequest(
            provider="anthropic", api="messages", model=ANTHROPIC_MODEL, body=body, max_tokens=MAX_TOKENS
        )
        for index in range(spec["warmup"] + spec["calls"]):
            start = clock()
            admission = breaker.admit(request, the_run, None)
            middle = clock()
            breaker.settle(admission, usage, 3_600)
            end = clock()
            if index >= spec["warmup"]:
                admit_ns.append(middle - start)
                settle_ns.append(end - middle)
    return {"admit_ns": admit_ns, "settle_ns": settle_ns}


class _Recorded:
    """Stands in for an SDK ``Stream`` (``_iterator``, ``__iter__``, ``close``) over recorded events."""

    def __init__(self, events: list[Any]) -> None:
        self._iterator: Iterator[Any] = iter(events)

    def __iter__(self) -> Iterator[Any]:
        yield from self._iterator

    def close(self) -> None:
        return None


class _StubCall:
    """The part of a ModelCall a stream watcher touches; settling does nothing, so only the
    per-event path is timed."""

    def __init__(self, provider_module: Any, api: str) -> None:
        self.provider = _StubProvider(provider_module.StreamState)
        self.api = api
        self.runtime = _StubRuntime()

    def first_chunk(self) -> None:
        return None

    def finish(self, info: Any, **_details: Any) -> None:
        return None


@dataclass
class _StubProvider:
    stream_state: Callable[[str, bool], Any]


class _StubSettings:
    capture_content = False


class _StubRuntime:
    settings = _StubSettings()


def task_chunks(spec: dict[str, Any]) -> dict[str, Any]:
    """spendfuse's per-event cost alone: recorded SDK events, iterated bare and through
    ``watch_stream`` (the code every stream call goes through), interleaved.

    Leaves out the SDK's SSE parsing (50-300 µs an event here), whose noise on a shared machine is
    larger than the microsecond this is about. Uses spendfuse internals (``watch_stream`` and the
    providers' ``StreamState``): when they change shape the result says so instead of failing.
    """
    _clean_environment()
    try:
        from spendfuse.instrumentation import anthropic as anthropic_provider
        from spendfuse.instrumentation import openai as openai_provider
        from spendfuse.instrumentation.streams import watch_stream  # noqa: F401  (present, or say so)
    except ImportError as exc:
        return {"error": f"spendfuse internals moved: {exc}"}
    result: dict[str, Any] = {}
    for name, module, api in (("anthropic", anthropic_provider, "messages"), ("openai", openai_provider, "chat")):
        events = _record_events(name)
        # The same stream with its middle (text deltas) repeated: the difference between the two
        # splits the cost into a per-event part and a per-stream part (setup, first and last events).
        longer = events[:3] + events[3:-3] * LONG_STREAM_FACTOR + events[-3:]
        repeat = spec["repeat"]
        samples: dict[str, list[float]] = {"bare_ns": [], "watched_ns": [], "long_bare_ns": [], "long_watched_ns": []}

        try:
            for _ in range(spec["rounds"]):
                for key, stream_events, stub_call in (
                    ("bare_ns", events, None),
                    ("watched_ns", events, (module, api)),
                    ("long_bare_ns", longer, None),
                    ("long_watched_ns", longer, (module, api)),
                ):
                    samples[key].append(_time_streams(stream_events, stub_call, repeat) / len(stream_events))
        except Exception as exc:  # an internal API that changed shape
            return {"error": f"{type(exc).__name__}: {exc}"}
        result[name] = {"events": len(events), "long_events": len(longer), **samples}
    return result


def _time_streams(events: list[Any], stub_call: tuple[Any, str] | None, repeat: int) -> float:
    """Nanoseconds per stream: ``repeat`` streams of ``events``, bare or through ``watch_stream``."""
    from spendfuse.instrumentation.streams import watch_stream

    start = time.perf_counter_ns()
    for _ in range(repeat):
        if stub_call is None:
            for _event in _Recorded(events):
                pass
        else:
            stub: Any = _StubCall(*stub_call)  # duck-typed: the part of a ModelCall it reads
            module, api = stub_call
            for _event in watch_stream(_Recorded(events), stub, module.StreamState(api, False)):
                pass
    return (time.perf_counter_ns() - start) / repeat


def _record_events(provider: str) -> list[Any]:
    client, _reset = _sdk_clients(Case(provider, "stream", "mock"), None)
    if provider == "anthropic":
        system, messages = anthropic_messages()
        return list(
            client.messages.create(
                model=ANTHROPIC_MODEL, max_tokens=MAX_TOKENS, system=system, messages=messages, stream=True
            )
        )
    return list(
        client.chat.completions.create(
            model=OPENAI_MODEL, max_completion_tokens=MAX_TOKENS, messages=openai_messages(), stream=True
        )
    )


TASKS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "calls": task_calls,
    "rss": task_rss,
    "breaker": task_breaker,
    "chunks": task_chunks,
}


def main() -> None:
    spec = json.loads(sys.argv[1])
    real_stdout = sys.stdout
    # Whatever a library prints must not corrupt the JSON line the orchestrator parses.
    sys.stdout = sys.stderr
    started = time.perf_counter()
    result = TASKS[spec["task"]](spec)
    result["seconds"] = time.perf_counter() - started
    result["python"] = sys.version.split()[0]
    sys.stdout = real_stdout
    print(json.dumps(result))


if __name__ == "__main__":
    main()
