"""Telemetry emitted off the caller's thread, in order, and never lost.

With the Python OpenTelemetry SDK, building a call's span and recording its four metric
measurements costs about 125 µs of CPU in a tight loop and several hundred inside real calls
(every attribute is validated, copied and hashed, every measurement takes a lock): more than all
of spendfuse's other work on a call. So a call collects what its span and metrics need in plain
Python objects (``CallSpan``), and one background thread turns them into OpenTelemetry spans and
measurements, mostly while the caller waits for the provider. The ends of spendfuse's run and tool
spans go through the same queue, so spans reach processors and exporters in the order they ended.

Nothing is dropped. When the thread falls behind by ``MAX_PENDING`` tasks (a process that never
waits on I/O leaves it little of the GIL; a span processor may export synchronously over a slow
network), each caller runs the oldest pending task before queueing its own: memory stays bounded,
order holds, and the cost lands where it would have without the thread. ``flush()`` runs
everything pending on the calling thread. It runs before every ``force_flush()`` and
``shutdown()`` of an SDK tracer or meter provider (``hook_provider_flushes``), so code that
flushes its providers, as short scripts and test suites do, still sees every span; and at
interpreter exit, before ``atexit`` handlers run. Those two wait ``FLUSH_TIMEOUT`` at most for a
task the thread is stuck in: a hung exporter must not keep a process from exiting.
"""
from __future__ import annotations

import atexit
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import wrapt

from spendfuse._log import log, log_internal_error

Task = Callable[[], None]

MAX_PENDING = 256  # tasks queued before callers help (~20 ms of the thread's work, ~0.5 MB)
BATCH_DELAY = 0.005  # seconds the thread lets tasks gather after a wake-up
YIELD_EVERY = 0.001  # seconds of work after which the thread offers the GIL back
FLUSH_TIMEOUT = 10.0  # seconds a provider flush or the exit waits for a task the thread is stuck in
THREAD_NAME = "spendfuse-telemetry"


class Emitter:
    """A FIFO of telemetry tasks, run by one daemon thread started on first use."""

    def __init__(self) -> None:
        self._pending: deque[Task] = deque()
        self._wakeup = threading.Event()
        # Held while a task runs; reentrant, so a task whose processor makes an instrumented call
        # (and so submits, and may help) cannot deadlock.
        self._running = threading.RLock()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._idle = True  # the thread waits for a wake-up (or does not exist yet)

    def submit(self, task: Task) -> None:
        pending = self._pending
        if len(pending) >= MAX_PENDING:
            # Behind: a process with no idle time leaves the thread little of the GIL. The caller
            # runs the oldest task itself, so order holds and the queue stays bounded.
            self._run_one()
        pending.append(task)
        if self._idle and not self._wakeup.is_set():
            if self._thread is None and not self._start():
                self.flush(FLUSH_TIMEOUT)  # no thread can be had: the caller emits, as without us
                return
            self._wakeup.set()

    def flush(self, timeout: float | None = None) -> bool:
        """Run every pending task now, on this thread; returns when none is pending or running.

        With a ``timeout`` (seconds), gives up when a task the thread is running (an exporter
        hung on the network, say) holds it up longer, and returns False: at exit, a stuck
        exporter must not keep the process alive.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if deadline is None:
                ran = self._run_one()
            else:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return not self._pending
                ran = self._run_one(remaining)
                if ran is None:
                    return False
            if not ran:
                return True

    def _run_one(self, timeout: float = -1) -> bool | None:
        """Run the oldest task: True; none pending: False; the lock not had within ``timeout``: None."""
        # A task is taken and run under the lock: tasks run one at a time, in submission order,
        # and flush() never returns while the thread is still running one it took.
        if not self._running.acquire(timeout=timeout):
            return None
        try:
            try:
                task = self._pending.popleft()
            except IndexError:
                return False
            _run(task)
            return True
        finally:
            self._running.release()

    def _start(self) -> bool:
        with self._start_lock:
            if self._thread is not None:
                return True
            thread = threading.Thread(target=self._loop, name=THREAD_NAME, daemon=True)
            try:
                thread.start()
            except RuntimeError:  # at interpreter shutdown, or out of threads
                log_internal_error("starting the telemetry thread")
                return False
            self._thread = thread
            return True

    def _loop(self) -> None:
        # Woken once per batch, not per task: a wake-up costs both threads system calls and a
        # GIL hand-over, more than the task itself. Every millisecond of work the thread offers
        # the GIL back, so a caller whose response has arrived waits about that long at most
        # (the interpreter's own switch interval is 5 ms), without a hand-over per task.
        wakeup = self._wakeup
        while True:
            self._idle = True
            if not self._pending:  # a task queued after this check has set the event: no lost wake-up
                wakeup.wait()
            wakeup.clear()
            self._idle = False
            time.sleep(BATCH_DELAY)
            yield_at = time.perf_counter() + YIELD_EVERY
            while self._run_one():
                if time.perf_counter() >= yield_at:
                    time.sleep(0)
                    yield_at = time.perf_counter() + YIELD_EVERY

    def _after_fork_in_child(self) -> None:
        # The parent emits its own pending tasks; the child starts empty, with fresh locks (the
        # thread may have held one at the fork) and no thread until its first task.
        self._pending = deque()
        self._wakeup = threading.Event()
        self._running = threading.RLock()
        self._start_lock = threading.Lock()
        self._thread = None
        self._idle = True


def _run(task: Task) -> None:
    try:
        task()
    except Exception:
        log_internal_error("emitting telemetry")


emitter = Emitter()


def run_inline(task: Task) -> None:
    """The ``background_telemetry=False`` path: emit on the caller's thread, as it happens."""
    emitter.flush(FLUSH_TIMEOUT)  # anything queued before the setting changed goes first
    _run(task)


_FLUSHING_METHODS = (
    ("opentelemetry.sdk.trace", "TracerProvider.force_flush"),
    ("opentelemetry.sdk.trace", "TracerProvider.shutdown"),
    ("opentelemetry.sdk.metrics", "MeterProvider.force_flush"),
    ("opentelemetry.sdk.metrics", "MeterProvider.shutdown"),
)
_hooked = False
_hook_lock = threading.Lock()


def _flush_first(wrapped: Callable[..., Any], _instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if not emitter.flush(FLUSH_TIMEOUT):
        log.warning("spendfuse: telemetry still pending after %s s; flushing the provider without it", FLUSH_TIMEOUT)
    return wrapped(*args, **kwargs)


def _flush_at_exit() -> None:
    if not emitter.flush(FLUSH_TIMEOUT):
        log.warning("spendfuse: telemetry still pending after %s s at exit; leaving without it", FLUSH_TIMEOUT)


def hook_provider_flushes() -> None:
    """Make every SDK provider's flush and shutdown emit our pending telemetry first; once."""
    global _hooked
    with _hook_lock:
        if _hooked:
            return
        _hooked = True
        for module, method in _FLUSHING_METHODS:
            try:
                wrapt.wrap_function_wrapper(module, method, _flush_first)
            except Exception:
                log_internal_error(f"hooking {module}.{method}")


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=emitter._after_fork_in_child)

# threading's exit hooks run before atexit handlers, where the SDK providers shut down and
# export what they hold: pending spans must reach them first.
_register_exit = getattr(threading, "_register_atexit", None)
if _register_exit is not None:
    try:
        _register_exit(_flush_at_exit)
    except RuntimeError:  # imported while the interpreter is already shutting down
        atexit.register(_flush_at_exit)
else:  # pragma: no cover - every supported Python has it
    atexit.register(_flush_at_exit)
