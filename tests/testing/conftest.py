from __future__ import annotations

from collections.abc import Iterator

import pytest

from spendfuse.testing import FakeProvider, FakeServer


@pytest.fixture
def fake() -> FakeProvider:
    return FakeProvider()


@pytest.fixture
def server(fake: FakeProvider) -> Iterator[FakeServer]:
    with FakeServer(fake) as running:
        yield running
