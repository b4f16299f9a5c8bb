"""LiteLLM's OpenAI path streams through ``with_raw_response.create(stream=True)`` (#15 class 1):
its cost is settled from the stream's own usage, to the micro-dollar, never the worst case."""

from __future__ import annotations

from collections.abc import Callable

import pytest

pytest.importorskip("litellm")

import litellm

import spendfuse
from spendfuse.testing import FakeProvider, FakeServer, FakeUsage
from tests.conftest import Telemetry

from ._helpers import attr, ours

pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning"),  # pydantic on LiteLLM's own TypedDicts
]

GPT4O_COST = int(1000 * 2.5 + 200 * 10)  # $2.50 / $10 per MTok


def test_openai_path_stream_is_settled_from_its_usage(
    fake: FakeProvider, server: FakeServer, instrument: Callable[..., None], telemetry: Telemetry
) -> None:
    fake.usage = FakeUsage(input_tokens=1000, output_tokens=200)
    instrument()
    with spendfuse.run("ll-money") as the_run:
        chunks = litellm.completion(
            model="openai/gpt-4o", api_base=server.openai_base_url, api_key="test-key",
            messages=[{"role": "user", "content": "hi"}], max_tokens=64, stream=True,
            stream_options={"include_usage": True},
        )  # fmt: skip
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    (span,) = ours(telemetry.spans(), "chat gpt-4o")
    assert attr(span, "gen_ai.usage.input_tokens") == 1000
    assert attr(span, "gen_ai.usage.output_tokens") == 200
    assert attr(span, "spendfuse.usage.estimated") is None
    assert the_run.spent.usd_micros == GPT4O_COST
