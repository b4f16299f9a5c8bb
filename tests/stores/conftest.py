"""Fixtures for the store tests: a real redis-server per session, and one ``store`` per backend."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from spendfuse.budgets.stores import BudgetStore, open_store

from ._redis_server import RedisServer, require_redis_server


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    binary = require_redis_server()
    server = RedisServer(binary, tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    redis_server.flush()
    return redis_server.url


def _backend(kind: str) -> object:
    return pytest.param(kind, id=kind, marks=[pytest.mark.redis] if kind == "redis" else [])


def _url(request: pytest.FixtureRequest, kind: str, tmp_path: Path) -> str:
    if kind == "memory":
        return "memory://"
    if kind == "sqlite":
        return f"sqlite:///{tmp_path}/budget.db"
    url: str = request.getfixturevalue("redis_url")
    return url


@pytest.fixture(params=[_backend("memory"), _backend("sqlite"), _backend("redis")])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """One URL per backend: the contract suite runs against all three."""
    return _url(request, request.param, tmp_path)


@pytest.fixture(params=[_backend("sqlite"), _backend("redis")])
def shared_store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The backends that several processes share."""
    return _url(request, request.param, tmp_path)


@pytest.fixture
def store(store_url: str) -> Iterator[BudgetStore]:
    opened = open_store(store_url, timeout=2.0)
    yield opened
    opened.close()
