"""Azure deployments and aliases (#15 class 3): priced by the model that answered, or as mapped.

An Azure OpenAI request names its deployment (``model="my-gpt4o"``, in the URL and the body); the
response names the model that served it (``gpt-4o-2024-11-20``). Real ``AzureOpenAI`` clients on
the fake's mock transport, every call shape that applies.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import openai
import pytest

import spendfuse
from spendfuse import Budget, UnpricedModelError
from spendfuse.budgets.pricing import PriceBook
from spendfuse.config.settings import load_settings
from spendfuse.errors import ConfigError
from spendfuse.testing import FakeProvider, FakeUsage, Reply, clients

USAGE = FakeUsage(input_tokens=1000, output_tokens=200)
DEPLOYMENT = "my-gpt4o"
SERVED = "gpt-4o-2024-11-20"
GPT4O_COST = int(1000 * 2.5 + 200 * 10)  # gpt-4o: $2.50 / $10 per MTok
MESSAGES = [{"role": "user", "content": "What is the weather in Paris?"}]
AZURE = {"azure_endpoint": "https://fake-resource.openai.invalid", "api_version": "2025-03-01-preview",
         "api_key": "test-key", "max_retries": 0}  # fmt: skip


def _transport(fake: FakeProvider) -> Any:
    # The SDK release's own HTTP package: httpx2 today, httpx on the oldest supported releases.
    return fake.transport() if clients.uses_httpx2("openai") else fake.httpx_transport()


def azure(fake: FakeProvider) -> openai.AzureOpenAI:
    return openai.AzureOpenAI(http_client=openai.DefaultHttpxClient(transport=_transport(fake)), **AZURE)


def async_azure(fake: FakeProvider) -> openai.AsyncAzureOpenAI:
    return openai.AsyncAzureOpenAI(http_client=openai.DefaultAsyncHttpxClient(transport=_transport(fake)), **AZURE)


def chat(fake: FakeProvider) -> Any:
    return azure(fake).chat.completions.create(model=DEPLOYMENT, messages=MESSAGES, max_tokens=512)


def chat_stream(fake: FakeProvider) -> Any:
    stream = azure(fake).chat.completions.create(
        model=DEPLOYMENT, messages=MESSAGES, max_tokens=512, stream=True, stream_options={"include_usage": True}
    )
    return [chunk for chunk in stream]


def chat_raw(fake: FakeProvider) -> Any:
    return (
        azure(fake)
        .chat.completions.with_raw_response.create(model=DEPLOYMENT, messages=MESSAGES, max_tokens=512)
        .parse()
    )


def chat_async(fake: FakeProvider) -> Any:
    async def go() -> Any:
        return await async_azure(fake).chat.completions.create(model=DEPLOYMENT, messages=MESSAGES, max_tokens=512)

    return asyncio.run(go())


def responses(fake: FakeProvider) -> Any:
    return azure(fake).responses.create(model=DEPLOYMENT, input="What is the weather?", max_output_tokens=512)


def responses_stream(fake: FakeProvider) -> Any:
    with azure(fake).responses.stream(model=DEPLOYMENT, input="What is the weather?", max_output_tokens=512) as s:
        return s.get_final_response()


SHAPES: dict[str, Callable[[FakeProvider], Any]] = {
    "chat": chat,
    "chat(stream)": chat_stream,
    "chat.raw": chat_raw,
    "async chat": chat_async,
    "responses": responses,
    "responses.stream()": responses_stream,
}


def _fake() -> FakeProvider:
    fake = FakeProvider(usage=USAGE)
    fake.enqueue(Reply.text("Sunny.").answered_by(SERVED))
    return fake


@pytest.mark.parametrize("name", list(SHAPES))
def test_a_deployment_is_priced_by_the_model_that_answered(name: str, instrument: Any, telemetry: Any) -> None:
    instrument()  # no mapping, no USD limit: the response model prices it
    fake = _fake()
    with spendfuse.run("azure") as run:
        SHAPES[name](fake)
    sent = fake.requests[-1]
    assert sent.path.startswith("/openai/") and sent.json["model"] == DEPLOYMENT  # Azure chat: in the URL too
    attributes = dict(telemetry.span("chat ").attributes or {})
    assert attributes["gen_ai.request.model"] == DEPLOYMENT
    assert attributes["gen_ai.response.model"] == SERVED
    assert attributes["spendfuse.cost.usd"] == pytest.approx(GPT4O_COST / 1e6, abs=1e-12)
    assert "spendfuse.cost.unknown" not in attributes
    assert run.spent.usd_micros == GPT4O_COST
    assert run.spent.unknown_cost_calls == 0


@pytest.mark.parametrize("name", list(SHAPES))
def test_a_mapped_deployment_is_admitted_under_a_usd_limit(name: str, instrument: Any, telemetry: Any) -> None:
    instrument(deployments={DEPLOYMENT: "gpt-4o"})
    fake = _fake()
    with spendfuse.run("azure-limited", budget=Budget(usd=1.0)) as run:
        SHAPES[name](fake)
    attributes = dict(telemetry.span("chat ").attributes or {})
    assert attributes["spendfuse.reserved.usd"] > GPT4O_COST / 1e6  # priced before dispatch
    assert run.spent.usd_micros == GPT4O_COST


def test_an_unmapped_deployment_under_a_usd_limit_is_refused_naming_the_setting(instrument: Any) -> None:
    instrument()
    fake = _fake()
    with spendfuse.run("azure-refused", budget=Budget(usd=1.0)), pytest.raises(UnpricedModelError) as caught:
        chat(fake)
    assert "deployments=" in str(caught.value)
    assert fake.request_count == 0


def test_unknown_after_both_is_unknown_never_zero(instrument: Any, telemetry: Any) -> None:
    instrument()
    fake = FakeProvider(usage=USAGE)
    fake.enqueue(Reply.text("Sunny.").answered_by("mystery-model-7"))
    with spendfuse.run("mystery") as run:
        chat(fake)
    attributes = dict(telemetry.span("chat ").attributes or {})
    assert attributes.get("spendfuse.cost.unknown") is True
    assert "spendfuse.cost.usd" not in attributes
    assert run.spent.unknown_cost_calls == 1
    assert run.spent.input_tokens == 1000


def test_a_mapping_wins_over_the_response_model(instrument: Any) -> None:
    # The user says what the deployment costs: gpt-4o-mini prices, whatever the response says.
    instrument(deployments={DEPLOYMENT: "gpt-4o-mini"})
    with spendfuse.run("mapped") as run:
        chat(_fake())
    assert run.spent.usd_micros == (1000 * 150_000 + 200 * 600_000) // 1_000_000  # $0.15 / $0.60


def test_aliases_and_cloud_ids_are_priced_by_name() -> None:
    book = PriceBook()
    sonnet = book.rates("anthropic", "claude-sonnet-4-5")
    assert sonnet is not None
    for alias in ("us.anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-sonnet-4-5@20250929",
                  "anthropic.claude-sonnet-4-5-20250929-v1:0"):  # fmt: skip
        assert book.rates("anthropic", alias) == sonnet, alias
    assert book.rates("anthropic", "claude-3-5-sonnet-latest") is not None
    assert book.rates("openai", "gpt-4o-2024-11-20") == book.rates("openai", "gpt-4o")


def test_deployments_at_admission_and_max_output() -> None:
    book = PriceBook(deployments={"Prod-Chat": "openai/gpt-4o"})
    assert book.rates("openai", "prod-chat") == book.rates("openai", "gpt-4o")
    assert book.max_output_tokens("openai", "Prod-Chat") == book.max_output_tokens("openai", "gpt-4o")


def test_deployments_setting_forms(tmp_path: Any) -> None:
    assert load_settings(environ={"SPENDFUSE_DEPLOYMENTS": "a=gpt-4o, b = gpt-4.1-mini"}).deployments == {
        "a": "gpt-4o", "b": "gpt-4.1-mini"
    }  # fmt: skip
    path = tmp_path / "spendfuse.toml"
    path.write_text('[deployments]\n"my-gpt4o" = "gpt-4o"\n')
    assert load_settings(environ={"SPENDFUSE_CONFIG": str(path)}).deployments == {"my-gpt4o": "gpt-4o"}
    for bad in ("a", {"a": 3}, {"": "gpt-4o"}, ["a=gpt-4o"]):
        with pytest.raises(ConfigError, match="deployments"):
            load_settings({"deployments": bad})
