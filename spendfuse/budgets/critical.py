"""Critical sections, and the work that must wait until a thread has left all of them.

A stream dropped half-read is settled by a ``weakref.finalize`` callback when the cycle collector
frees it, and the collector runs on whatever thread allocates at that moment: possibly one that
holds the run lock, a store's lock, a SQLite transaction or a Redis connection. Settling there
would take a lock the interrupted code holds (a deadlock with a plain lock, a 5 s wait then a
leaked lease with SQLite's), or change a balance halfway through its own update.

So every section of ours that holds a lock or a store transaction runs under :class:`GuardedLock`
or :func:`section`, which mark the thread as *inside*. Settlement requested while the thread is
inside, or explicitly from a finalizer, is appended to a queue (``deque.append`` is atomic and
takes no lock) and run by :func:`drain` outside every section: by the next admission or
settlement on any thread, by a flush, when the breaker closes, and at interpreter exit.
"""

from __future__ import annotations

import atexit
import gc
import logging
import threading
from collections import deque
from collections.abc import Callable
from types import TracebackType
from typing import Any

log = logging.getLogger("spendfuse")


# ``depth``: how many sections this thread is in. A plain ``threading.local`` (a subclass with a class
# default reads slower); a thread that never entered one has no attribute yet.
_state = threading.local()
_exiting = False
PENDING: deque[tuple[Callable[..., object], tuple[Any, ...]]] = deque()


def inside() -> bool:
    """True while this thread is inside one of spendfuse's critical sections."""
    return getattr(_state, "depth", 0) > 0


# True while the cycle collector runs. It runs on whatever thread allocates at that moment, inside
# any lock that thread holds -- ours, the OpenTelemetry SDK's, logging's -- and the callbacks of the
# objects it frees (a dropped stream's weak reference, its generator's GeneratorExit) run there too.
_collecting = False


def _on_collection(phase: str, _info: dict[str, int]) -> None:
    global _collecting
    _collecting = phase == "start"


gc.callbacks.append(_on_collection)


def must_defer() -> bool:
    """Whether work that takes locks (settling a call, ending its span) must wait for ``drain``:
    inside one of our sections, or inside a garbage collection that may have interrupted anyone's."""
    return _collecting or inside()


def _enter() -> None:
    try:
        _state.depth += 1
    except AttributeError:  # this thread's first section
        _state.depth = 1


class _Section:
    """``with section:`` marks the thread inside without taking a lock (a store's own transaction)."""

    __slots__ = ()

    def __enter__(self) -> None:
        _enter()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        _state.depth -= 1


section = _Section()


class GuardedLock:
    """A plain lock that marks its holder inside.

    The mark is set before acquiring and cleared after releasing, so there is no instant at which
    the thread holds the lock unmarked (a collection while it waits defers too, harmlessly).
    """

    __slots__ = ("_lock",)

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        _enter()
        try:
            acquired = self._lock.acquire(blocking, timeout)
        except BaseException:
            _state.depth -= 1
            raise
        if not acquired:
            _state.depth -= 1
        return acquired

    def release(self) -> None:
        self._lock.release()
        _state.depth -= 1

    def locked(self) -> bool:
        return self._lock.locked()

    def __enter__(self) -> bool:
        try:
            _state.depth += 1
        except AttributeError:  # this thread's first section
            _state.depth = 1
        try:
            return self._lock.acquire()
        except BaseException:  # interrupted while waiting (KeyboardInterrupt): not inside after all
            _state.depth -= 1
            raise

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._lock.release()
        _state.depth -= 1


def defer(function: Callable[..., object], *args: Any) -> None:
    """Run ``function(*args)`` later, outside every critical section. Safe from finalizers.

    Once the exit drain has run, nothing would drain the queue again (``weakref.finalize`` may
    run its exit hook after ours): outside a section the work then runs at once.
    """
    if _exiting and not inside():
        _run(function, args)
        return
    PENDING.append((function, args))


def pending() -> int:
    return len(PENDING)


def drain(*, at_exit: bool = False) -> int:
    """Run the deferred work now, unless this thread is inside a section; returns how much ran.

    Any thread may drain: each item is popped exactly once (``deque.popleft`` is atomic). At exit
    nothing of ours is running any more, so the work runs whatever the mark says.
    """
    if not at_exit and must_defer():
        return 0
    done = 0
    while True:
        try:
            function, args = PENDING.popleft()
        except IndexError:
            return done
        _run(function, args)
        done += 1


def _run(function: Callable[..., object], args: tuple[Any, ...]) -> None:
    try:
        function(*args)
    except Exception:
        log.warning("spendfuse: a deferred settlement failed", exc_info=True)


def _at_exit() -> None:
    global _exiting
    _exiting = True
    drain(at_exit=True)


# atexit runs handlers last-in first-out. weakref.finalize registers its exit hook when the first
# finalizer of the process is made, which may be before or after this import: streams it finalizes
# after this handler ran are settled at once (see ``defer``).
atexit.register(_at_exit)
