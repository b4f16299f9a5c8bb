"""Fixtures of the attack suite: a store-usage reader on top of the shared ``instrument``/``telemetry``."""

from __future__ import annotations

from typing import Any

import pytest

from spendfuse import runtime


@pytest.fixture
def user_usage() -> Any:
    """``user_usage(user)`` -> the store's view of a user's lifetime budget key (no window)."""

    def read(user: str) -> Any:
        active = runtime.current()
        assert active is not None
        return active.breaker.store.usage(f"user/lifetime/{user}", 0.0)

    return read
