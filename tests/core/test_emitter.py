"""Telemetry built off the caller's thread: in order, bounded, never lost, flushed with the providers."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import spendfuse
from spendfuse.telemetry.emitter import FLUSH_TIMEOUT, MAX_PENDING, THREAD_NAME, Emitter, emitter
from spendfuse.testing import FakeProvider, FakeUsage

SONNET = "claude-sonnet-4-5"
MESSAGES = [{"role": "user", "content": "hi"}]


def _blocked(queue: Emitter) -> tuple[threading.Event, threading.Event]:
    """Occupy the queue's thread with a task that waits until released."""
    started, release = threading.Event(), threading.Event()

    def hold() -> None:
        started.set()
        release.wait(10)

    queue.submit(hold)
    assert started.wait(10)
    return started, release


def test_tasks_run_once_each_in_submission_order_on_the_thread() -> None:
    queue = Emitter()
    seen: list[tuple[int, str]] = []
    done = threading.Event()
    for number in range(50):
        queue.submit(lambda number=number: seen.append((number, threading.current_thread().name)))
    queue.submit(done.set)
    assert done.wait(10)
    assert [number for number, _ in seen] == list(range(50))
    assert {name for _, name in seen} == {THREAD_NAME}


def test_flush_waits_for_the_task_the_thread_is_running() -> None:
    queue = Emitter()
    _started, release = _blocked(queue)
    seen: list[int] = []
    queue.submit(lambda: seen.append(1))
    threading.Timer(0.2, release.set).start()
    queue.flush()  # returns only after the held task ended and the queued one ran
    assert seen == [1]
    assert release.is_set()


def test_a_full_queue_makes_callers_help_in_order_and_loses_nothing() -> None:
    queue = Emitter()
    _started, release = _blocked(queue)
    seen: list[int] = []
    for number in range(MAX_PENDING):
        queue.submit(lambda number=number: seen.append(number))
    assert len(queue._pending) == MAX_PENDING and seen == []
    # Full: the next caller waits for the task the thread is stuck in (as it would have waited for
    # a synchronous exporter without us), then runs the oldest pending task before queueing its own.
    threading.Timer(0.2, release.set).start()
    total = MAX_PENDING + 40
    for number in range(MAX_PENDING, total):
        queue.submit(lambda number=number: seen.append(number))
        assert len(queue._pending) <= MAX_PENDING
    assert queue.flush(timeout=10)
    assert seen == list(range(total))  # every task once, in submission order, whoever ran it


def test_flush_with_a_timeout_gives_up_on_a_stuck_task() -> None:
    queue = Emitter()
    _started, release = _blocked(queue)
    queue.submit(lambda: None)
    try:
        assert queue.flush(timeout=0.2) is False
        assert len(queue._pending) == 1
    finally:
        release.set()
    assert queue.flush(timeout=10) is True
    assert len(queue._pending) == 0


def test_without_a_thread_the_caller_emits_its_own_tasks(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(_self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(threading.Thread, "start", refuse)
    queue = Emitter()
    seen: list[str] = []
    queue.submit(lambda: seen.append(threading.current_thread().name))
    assert seen == [threading.current_thread().name]  # run before submit returned, nothing queued
    assert len(queue._pending) == 0


def test_a_failing_task_is_logged_and_the_next_ones_still_run(caplog: pytest.LogCaptureFixture) -> None:
    queue = Emitter()
    seen: list[str] = []

    def broken() -> None:
        raise RuntimeError("processor bug")

    queue.submit(broken)
    queue.submit(lambda: seen.append("after"))
    queue.flush()
    assert seen == ["after"]
    assert any("emitting telemetry" in record.getMessage() for record in caplog.records)


def test_provider_flush_and_shutdown_emit_pending_call_spans_first() -> None:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    spendfuse.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider, warn_at=None)
    try:
        _started, release = _blocked(emitter)
        fake = FakeProvider(usage=FakeUsage(input_tokens=10, output_tokens=5))
        fake.anthropic_client().messages.create(model=SONNET, max_tokens=64, messages=MESSAGES)
        assert exporter.get_finished_spans() == ()  # queued behind the held task
        threading.Timer(0.1, release.set).start()
        tracer_provider.force_flush()
        assert [span.name for span in exporter.get_finished_spans()] == [f"chat {SONNET}"]
        fake.anthropic_client().messages.create(model=SONNET, max_tokens=64, messages=MESSAGES)
        tracer_provider.shutdown()
        assert len(exporter.get_finished_spans()) == 2
    finally:
        spendfuse.uninstrument()


def test_with_background_telemetry_off_spans_end_before_the_call_returns() -> None:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    spendfuse.instrument(tracer_provider=tracer_provider, warn_at=None, background_telemetry=False)
    try:
        _started, release = _blocked(emitter)
        threading.Timer(0.1, release.set).start()
        fake = FakeProvider(usage=FakeUsage(input_tokens=10, output_tokens=5))
        with spendfuse.run("inline"):
            fake.anthropic_client().messages.create(model=SONNET, max_tokens=64, messages=MESSAGES)
            # Inline emission runs what was queued before it first, so order holds here too.
            assert [span.name for span in exporter.get_finished_spans()] == [f"chat {SONNET}"]
        assert [span.name for span in exporter.get_finished_spans()] == [f"chat {SONNET}", "invoke_agent agent"]
    finally:
        spendfuse.uninstrument()


def test_spendfuse_flush_emits_pending_spans_and_flushes_the_providers(telemetry: Any, instrument: Any) -> None:
    instrument()
    _started, release = _blocked(emitter)
    fake = FakeProvider(usage=FakeUsage(input_tokens=10, output_tokens=5))
    with spendfuse.run("flushed"):
        fake.anthropic_client().messages.create(model=SONNET, max_tokens=64, messages=MESSAGES)
    assert telemetry.exporter.get_finished_spans() == ()
    threading.Timer(0.1, release.set).start()
    spendfuse.flush()
    # The run's end was queued behind its call: processors see them in the order they ended.
    assert [span.name for span in telemetry.exporter.get_finished_spans()] == [
        f"chat {SONNET}",
        "invoke_agent agent",
    ]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_does_not_emit_its_parents_pending_tasks() -> None:
    queue = Emitter()
    os.register_at_fork(after_in_child=queue._after_fork_in_child)
    _started, release = _blocked(queue)
    ran: list[str] = []
    queue.submit(lambda: ran.append("parent"))
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit code
        code = 0
        try:
            pending_after_fork = len(queue._pending)
            queue.submit(lambda: ran.append("child"))
            queue.flush()
            code = 0 if (pending_after_fork, ran) == (0, ["child"]) else 1
        finally:
            os.write(write, b"x")
            os._exit(code)
    os.read(read, 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    release.set()
    queue.flush()
    assert ran == ["parent"]


EXIT_SCRIPT = """
import sys, threading, time
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
import spendfuse
from spendfuse.telemetry.emitter import emitter
from spendfuse.testing import FakeProvider, FakeUsage

class Printer(SpanExporter):
    def export(self, spans):
        for span in spans:
            print("exported", span.name, flush=True)
        return SpanExportResult.SUCCESS

HOLD = float(sys.argv[1])
provider = TracerProvider()  # registers its own shutdown with atexit
provider.add_span_processor(SimpleSpanProcessor(Printer()))
spendfuse.instrument(tracer_provider=provider, warn_at=None)
started = threading.Event()
emitter.submit(lambda: (started.set(), time.sleep(HOLD)))  # the thread is busy as the script ends
started.wait(5)
FakeProvider(usage=FakeUsage(10, 5)).anthropic_client().messages.create(
    model="claude-sonnet-4-5", max_tokens=64, messages=[{"role": "user", "content": "hi"}])
print("main done", flush=True)
"""


def test_pending_spans_are_emitted_at_interpreter_exit_before_the_providers_shut_down() -> None:
    # The thread is still busy for 3 s when the script ends: the exit waits for it, then emits.
    done = subprocess.run([sys.executable, "-c", EXIT_SCRIPT, "3"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["main done", f"exported chat {SONNET}"]


def test_a_stuck_telemetry_thread_does_not_keep_the_process_alive_at_exit() -> None:
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", EXIT_SCRIPT, "600"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started < FLUSH_TIMEOUT + 30
    assert done.stdout.splitlines() == ["main done"]
    assert "telemetry still pending" in done.stderr
