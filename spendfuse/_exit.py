"""Work for a clean interpreter exit that must come before the ``atexit`` handlers.

Telemetry providers flush and shut down in ``atexit`` handlers: a settlement made at exit (a stream
still open, a background response still held) must end its span before that, so it runs from
threading's exit hooks, which come first. A forked child forgets what its parent holds: the parent
settles it, once.
"""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Callable


def at_exit_and_fork(on_exit: Callable[[], None], in_child: Callable[[], None]) -> None:
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=in_child)
    register = getattr(threading, "_register_atexit", None)
    try:
        if register is None:
            raise RuntimeError
        register(on_exit)
    except RuntimeError:  # imported while the interpreter is shutting down, or no such hook
        atexit.register(on_exit)
