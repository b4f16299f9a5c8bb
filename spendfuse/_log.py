"""The library logger, and "log once" for internal errors so a bug never floods a user's logs."""

from __future__ import annotations

import logging
import threading

log = logging.getLogger("spendfuse")

_seen: set[str] = set()
_lock = threading.Lock()


def log_internal_error(where: str) -> None:
    """Log our own failure once per place, with the traceback; never raise."""
    with _lock:
        if where in _seen:
            return
        _seen.add(where)
    log.warning("spendfuse: internal error in %s; the call goes on untouched", where, exc_info=True)
