"""Fixtures for the framework tests: the fake provider and quiet framework defaults."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from spendfuse.testing import FakeProvider, FakeServer

# LiteLLM fetches its price map from the network at import unless told to use its bundled copy.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
# The Agents SDK exports its traces to OpenAI's backend by default.
os.environ.setdefault("OPENAI_AGENTS_DISABLE_TRACING", "1")


@pytest.fixture
def fake() -> FakeProvider:
    return FakeProvider()


@pytest.fixture
def server(fake: FakeProvider) -> Iterator[FakeServer]:
    with FakeServer(fake) as running:
        yield running
