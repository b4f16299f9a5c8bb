"""Lease ids: unique across processes and forks, without a system call per call."""

from __future__ import annotations

import itertools
import os


class LeaseIds:
    """128 random bits per process, then a counter (os.urandom releases the GIL, and another thread
    may keep it for milliseconds). A forked child draws its own bits, so parent and child never
    share an id."""

    def __init__(self) -> None:
        self._reseed()
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._reseed)

    def _reseed(self) -> None:
        self._prefix = os.urandom(16).hex()
        self._counter = itertools.count()

    def next(self) -> str:
        return f"{self._prefix}{next(self._counter):x}"


lease_ids = LeaseIds()
