"""One measuring process of ``bench_overhead.py``: set up one mode, run one task, print JSON.

    python bench/overhead_worker.py '{"task": "calls", "mode": "spendfuse", ...}'

Started once per mode and round by the orchestrator (peer modes with their venv's interpreter), so
no mode inherits another's imports, caches, patched methods or heap. The last line of stdout is the
JSON result; everything a library prints goes to stderr.

Tasks:
  calls    CPU time (all threads) and wall time per call of every case, instrumented and raw blocks
  rss      RSS every ``sample_every`` calls over ``calls`` instrumented calls
  breaker  admission + settlement of the breaker alone (memory store)
  chunks   spendfuse's per-event and per-stream cost alone, on recorded SDK events

This file imports only spendfuse's public API, except in ``breaker`` and ``chunks``, which import
internals defensively: when those move, the task returns ``{"error": ...}`` instead of failing.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import sys
import threading
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


# -- OpenTelemetry SDK providers ---------------------------------------------------------------


class Telemetry:
    """SDK providers as an application would install them, exporting to nowhere.

    TracerProvider + BatchSpanProcessor and MeterProvider + PeriodicExportingMetricReader, SDK
    defaults throughout (batch size and delay, 60 s export interval, exemplar filter); only the
    network export is left out: the exporters count what they are handed and drop it. ``flush()``
    force-flushes both providers: every span queued for the batch processor's thread is exported and
    the metrics are collected and exported, on the calling thread or waited for by it.
    """

    def __init__(self) -> None:
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

        owner = self
        self.spans = 0
        self.span_names: set[str] = set()
        self.metric_names: set[str] = set()

        class NullSpanExporter(SpanExporter):
            def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
                owner.spans += len(spans)
                for span in spans:
                    owner.span_names.add(span.name)
                return SpanExportResult.SUCCESS

        class NullMetricExporter(MetricExporter):
            def __init__(self) -> None:
                super().__init__(preferred_temporality={}, preferred_aggregation={})

            def export(
                self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
            ) -> MetricExportResult:
                for resource_metrics in metrics_data.resource_metrics:
                    for scope_metrics in resource_metrics.scope_metrics:
                        for metric in scope_metrics.metrics:
                            owner.metric_names.add(metric.name)
                return MetricExportResult.SUCCESS

            def force_flush(self, timeout_millis: float = 10_000) -> bool:
                return True

            def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
                return None

        resource = Resource.create({"service.name": "spendfuse-bench"})
        self.tracer_provider = TracerProvider(resource=resource)
        self.tracer_provider.add_span_processor(BatchSpanProcessor(NullSpanExporter()))
        self.meter_provider = MeterProvider(
            resource=resource, metric_readers=[PeriodicExportingMetricReader(NullMetricExporter())]
        )

    def flush(self) -> None:
        self.tracer_provider.force_flush()
        self.meter_provider.force_flush()


# -- modes -------------------------------------------------------------------------------------


def _clean_environment() -> None:
    # A developer's SPENDFUSE_*, OTEL_* or TRACELOOP_* variables must not change what a mode measures.
    for name in list(os.environ):
        if name.startswith(("SPENDFUSE_", "OTEL_", "ANTHROPIC_", "OPENAI_", "TRACELOOP_")):
            del os.environ[name]


@dataclass
class Mode:
    """A mode set up in this process.

    ``switch(on)`` instruments or uninstruments (the SDK methods restored, as in raw mode), so one
    process can alternate blocks of instrumented and raw calls that see the same machine.
    ``flush(on)`` delivers everything the calls so far left queued, on any thread (see Telemetry).
    ``telemetry`` is None where no SDK providers are installed (raw, spendfuse-noop).
    """

    context: contextlib.AbstractContextManager[Any]
    switch: Callable[[bool], None]
    flush: Callable[[bool], None]
    telemetry: Telemetry | None
    paired: bool = True
    stripped: dict[str, int] | None = None  # peer modes: wrappers their uninstrument() left behind


def setup_mode(mode: str) -> Mode:
    _clean_environment()
    if mode == "raw":
        return Mode(contextlib.nullcontext(), lambda _on: None, lambda _on: None, None, paired=False)
    if mode.startswith("spendfuse"):
        return _setup_spendfuse(mode)
    if mode.startswith("openllmetry") or mode == "otel-openai-v2":
        return _setup_peer(mode)
    raise SystemExit(f"unknown mode {mode!r}")


def _setup_spendfuse(mode: str) -> Mode:
    import spendfuse

    settings: dict[str, Any] = {}
    telemetry = None
    if mode != "spendfuse-noop":  # no-op: spendfuse falls back on the API's global (no-op) providers
        telemetry = Telemetry()
        settings.update(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
    context: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
    if mode == "spendfuse-budgets":
        settings.update(
            run_budget=spendfuse.Budget(usd=BIG, turns=BIG),
            user_budget=spendfuse.Budget(usd=BIG, turns=BIG, window="1d"),
            store="memory://",
        )
        context = spendfuse.run("bench-run", user_id="bench-user")
    elif mode not in ("spendfuse", "spendfuse-noop"):
        raise SystemExit(f"unknown mode {mode!r}")
    spendfuse.instrument(**settings)

    def switch(on: bool) -> None:
        if on:
            spendfuse.instrument(**settings)
        else:
            spendfuse.uninstrument()

    def flush(on: bool) -> None:
        # Instrumented: spendfuse's public flush (whatever spendfuse itself has pending, then the
        # providers it was given). Raw: the same providers, directly (spendfuse.flush() would only
        # reach the global ones once uninstrumented). Either way each provider is flushed once.
        if on:
            spendfuse.flush()
        elif telemetry is not None:
            telemetry.flush()

    return Mode(context, switch, flush, telemetry)


def _setup_peer(mode: str) -> Mode:
    telemetry = Telemetry()
    if mode == "openllmetry-nocontent":
        os.environ["TRACELOOP_TRACE_CONTENT"] = "false"
    instrumentors: list[Any] = []
    if mode.startswith("openllmetry"):
        from opentelemetry.instrumentation.anthropic import AnthropicInstrumentor
        from opentelemetry.instrumentation.openai import OpenAIInstrumentor

        instrumentors = [AnthropicInstrumentor(), OpenAIInstrumentor()]
    else:
        from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor as OpenAIV2Instrumentor

        instrumentors = [OpenAIV2Instrumentor()]
    kwargs = {"tracer_provider": telemetry.tracer_provider, "meter_provider": telemetry.meter_provider}

    def switch(on: bool) -> None:
        for instrumentor in instrumentors:
            if on:
                instrumentor.instrument(**kwargs)
            else:
                instrumentor.uninstrument()
        if not on:
            # OpenLLMetry's OpenAI instrumentor leaves its wrappers on the resource classes when
            # uninstrumented (openai 3.x), and the next instrument() stacks another layer.
            stripped["wrappers"] += strip_wrappers(("anthropic.resources", "openai.resources"))

    stripped = {"wrappers": 0}
    switch(True)
    return Mode(contextlib.nullcontext(), switch, lambda _on: telemetry.flush(), telemetry, stripped=stripped)


def strip_wrappers(prefixes: tuple[str, ...]) -> int:
    """Restore every method of the SDK's resource classes that a wrapt wrapper still covers;
    returns how many it found (0 when the instrumentations' own uninstrument() did its job)."""
    import inspect

    import wrapt

    # wrapt 2 moved ObjectProxy's base; FunctionWrapper is what wrap_function_wrapper() installs.
    proxy = getattr(wrapt, "BaseObjectProxy", wrapt.ObjectProxy)
    found = 0
    for name, module in list(sys.modules.items()):
        if module is None or not name.startswith(prefixes):
            continue
        for _attr, cls in inspect.getmembers(module, inspect.isclass):
            for key, value in list(vars(cls).items()):
                if isinstance(value, proxy):
                    original = value
                    while isinstance(original, proxy):
                        original = original.__wrapped__
                    setattr(cls, key, original)
                    found += 1
    return found


# -- clients and calls -------------------------------------------------------------------------


@dataclass
class Target:
    """One case made callable: ``call()`` performs one request and consumes it completely."""

    call: Callable[[], None]
    reset: Callable[[], None]


def _client(provider: str) -> tuple[Any, Callable[[], None]]:
    """An SDK client on the fake provider's in-process httpx2 MockTransport: no I/O at all."""
    from spendfuse.testing import FakeProvider

    fake = FakeProvider(responder=reply_for)
    client = fake.anthropic_client() if provider == "anthropic" else fake.openai_client()
    return client, fake.reset


def _create(case: Case) -> tuple[Callable[..., Any], dict[str, Any], Callable[[], None]]:
    """``create(**kwargs)`` performs one call, looking the SDK method up on the client at every call
    (``client.messages.create(...)``, as an application does): instrumentations that patch the
    resource classes' methods (OpenLLMetry, OpenTelemetry's) must not be kept alive by a bound
    method captured while they were on."""
    client, reset = _client(case.provider)
    if case.provider == "anthropic":
        system, messages = anthropic_messages()
        kwargs: dict[str, Any] = {
            "model": ANTHROPIC_MODEL,
            "max_tokens": MAX_TOKENS,
            "system": system,
            "messages": messages,
        }

        def create_message(**call_kwargs: Any) -> Any:
            return client.messages.create(**call_kwargs)

        return create_message, kwargs, reset
    kwargs = {"model": OPENAI_MODEL, "max_completion_tokens": MAX_TOKENS, "messages": openai_messages()}
    if case.stream:
        # Usage arrives in a last chunk only when asked for; every instrumentation needs it.
        kwargs["stream_options"] = {"include_usage": True}

    def create_completion(**call_kwargs: Any) -> Any:
        return client.chat.completions.create(**call_kwargs)

    return create_completion, kwargs, reset


def make_target(case: Case) -> Target:
    create, kwargs, reset = _create(case)
    if not case.stream:

        def call() -> None:
            create(**kwargs)

        return Target(call, reset)

    def call_stream() -> None:
        for _event in create(stream=True, **kwargs):
            pass

    return Target(call_stream, reset)


def count_chunks(case: Case) -> int:
    """Items the SDK's stream iterator yields for this case (what an instrumentation observes)."""
    create, kwargs, _reset = _create(case)
    return sum(1 for _ in create(stream=True, **kwargs))


# -- tasks -------------------------------------------------------------------------------------


def task_calls(spec: dict[str, Any]) -> dict[str, Any]:
    """Per case: warm-up, then alternating blocks of instrumented and raw calls (raw only in raw mode).

    Blocks go ABBA (on, off, off, on, ...) so a linear drift of the machine cancels out; each block
    starts with a switch, one untimed call and a flush, so it starts with nothing queued anywhere.
    A block is timed in process CPU time (``time.process_time_ns``: every thread of the process)
    from before its first call to after a flush of the providers at its end, so the work its calls
    handed to the batch span processor's and the metric reader's threads (or to any other thread)
    is done and counted inside the block. Each call is also timed alone (CPU and wall).
    """
    cases = [Case.parse(name) for name in spec["cases"]]
    mode = setup_mode(spec["mode"])
    telemetry = mode.telemetry
    cpu_clock, wall_clock = time.process_time_ns, time.perf_counter_ns
    results: dict[str, Any] = {}
    with mode.context:
        for case in cases:
            target = make_target(case)
            chunk_count = count_chunks(case) if case.stream else 0
            warmup = spec["warmup"]
            for index in range(2 * warmup if mode.paired else warmup):
                if mode.paired and index == warmup:
                    mode.switch(False)  # warm the raw path too
                target.call()
            if mode.paired:
                mode.switch(True)
            mode.flush(True)
            target.reset()
            sides = ("instrumented", "raw") if mode.paired else ("raw",)
            record: dict[str, dict[str, list[float]]] = {
                side: {
                    "cpu_ns": [],
                    "wall_ns": [],
                    "block_cpu_ns": [],
                    "block_wall_ns": [],
                    "flush_cpu_ns": [],
                    "spans": [],
                }
                for side in sides
            }
            block = spec["block"][case.shape]
            blocks = max(1, spec["calls"][case.shape] // block)
            schedule = [number % 4 in (0, 3) for number in range(2 * blocks)] if mode.paired else [False] * blocks
            done = 0
            for on in schedule:
                if mode.paired:
                    mode.switch(on)
                target.call()
                mode.flush(on)
                samples = record["instrumented" if on else "raw"]
                spans_before = telemetry.spans if telemetry is not None else 0
                block_cpu = cpu_clock()
                block_wall = wall_clock()
                for _ in range(block):
                    cpu = cpu_clock()
                    wall = wall_clock()
                    target.call()
                    samples["wall_ns"].append(wall_clock() - wall)
                    samples["cpu_ns"].append(cpu_clock() - cpu)
                    done += 1
                    if done % RESET_EVERY == 0:
                        target.reset()
                flush_cpu = cpu_clock()
                mode.flush(on)
                end_cpu = cpu_clock()
                samples["block_wall_ns"].append((wall_clock() - block_wall) / block)
                samples["block_cpu_ns"].append((end_cpu - block_cpu) / block)
                samples["flush_cpu_ns"].append(end_cpu - flush_cpu)
                samples["spans"].append(((telemetry.spans if telemetry is not None else 0) - spans_before) / block)
            if mode.paired:
                mode.switch(True)
            results[case.name] = {"chunks": chunk_count, **record}
    return {
        "cases": results,
        "threads": sorted(thread.name for thread in threading.enumerate()),
        "span_names": sorted(telemetry.span_names) if telemetry is not None else [],
        "metric_names": sorted(telemetry.metric_names) if telemetry is not None else [],
        "stripped_wrappers": mode.stripped["wrappers"] if mode.stripped is not None else None,
    }


def rss_bytes() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def task_rss(spec: dict[str, Any]) -> dict[str, Any]:
    """Cycle through ``cases`` (names may repeat, to weight them) and sample RSS along the way."""
    mode = setup_mode(spec["mode"])
    samples: list[tuple[int, int, float]] = []
    with mode.context:
        by_name = {name: make_target(Case.parse(name)) for name in set(spec["cases"])}
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
        mode.flush(True)
        gc.collect()
        collected = rss_bytes()
    return {"samples": samples, "after_gc": collected}


def task_breaker(spec: dict[str, Any]) -> dict[str, Any]:
    """The breaker alone: admit + settle on a run budget and a memory:// user window.

    ``Breaker.admit(call_request, run, span)`` / ``settle(admission, usage, cost)`` are stable; how
    to reach the active breaker and build a ``CallRequest``/``TokenUsage`` are internals, imported
    defensively.
    """
    try:
        from spendfuse import runtime
        from spendfuse.budgets.breaker import CallRequest
        from spendfuse.budgets.usage import TokenUsage
        from spendfuse.runs.run import current_run
    except ImportError as exc:
        return {"error": f"spendfuse internals moved: {exc}"}

    mode = setup_mode("spendfuse-budgets")
    system, messages = anthropic_messages()
    body = {"model": ANTHROPIC_MODEL, "max_tokens": MAX_TOKENS, "system": system, "messages": messages}
    clock = time.perf_counter_ns
    cpu_clock = time.thread_time_ns
    admit_ns: list[int] = []
    settle_ns: list[int] = []
    cpu_ns: list[int] = []
    try:
        usage = TokenUsage(input_tokens=900, output_tokens=60)
        with mode.context:
            active = runtime.current()
            if active is None:
                return {"error": "spendfuse is not instrumented"}
            breaker = active.breaker
            the_run = current_run()
            request = CallRequest(
                provider="anthropic", api="messages", model=ANTHROPIC_MODEL, body=body, max_tokens=MAX_TOKENS
            )
            for index in range(spec["warmup"] + spec["calls"]):
                cpu = cpu_clock()
                start = clock()
                admission = breaker.admit(request, the_run, None)
                middle = clock()
                breaker.settle(admission, usage, 3_600)
                end = clock()
                cpu_end = cpu_clock()
                if index >= spec["warmup"]:
                    admit_ns.append(middle - start)
                    settle_ns.append(end - middle)
                    cpu_ns.append(cpu_end - cpu)
    except Exception as exc:  # an internal API that changed shape
        return {"error": f"{type(exc).__name__}: {exc}"}
    return {"admit_ns": admit_ns, "settle_ns": settle_ns, "cpu_ns": cpu_ns}


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
    per-event path and the stream's own set-up are timed."""

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
    ``watch_stream`` (the code every stream call goes through), interleaved, in thread CPU time.

    Leaves out the SDK's SSE parsing (tens of µs an event), whose noise is larger than the half
    microsecond this is about. Uses spendfuse internals (``watch_stream``, the providers'
    ``StreamState``, what a watcher reads of a call): when they change shape the result says so.
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
        # splits the cost into a per-event part and a per-stream part (set-up, first and last events).
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
    """CPU nanoseconds per stream: ``repeat`` streams of ``events``, bare or through ``watch_stream``."""
    from spendfuse.instrumentation.streams import watch_stream

    start = time.thread_time_ns()
    for _ in range(repeat):
        if stub_call is None:
            for _event in _Recorded(events):
                pass
        else:
            stub: Any = _StubCall(*stub_call)  # duck-typed: the part of a ModelCall it reads
            module, api = stub_call
            for _event in watch_stream(_Recorded(events), stub, module.StreamState(api, False)):
                pass
    return (time.thread_time_ns() - start) / repeat


def _record_events(provider: str) -> list[Any]:
    create, kwargs, _reset = _create(Case(provider, "stream50"))
    return list(create(stream=True, **kwargs))


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
    sys.stdout.flush()


if __name__ == "__main__":
    main()
