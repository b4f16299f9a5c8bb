"""API keys, auth headers and message content never leave the process through spendfuse.

Every call shape of both SDKs runs with canary credentials (API keys, which anthropic >= 2.12 sends
as ``Authorization: Bearer``, an auth token, custom auth headers) and canary content in the prompt,
the reply and a tool call; plus a provider error, a breaker trip, a budget warning, a store outage
and an unsettled lease. Then every place spendfuse writes to is searched: span names, attributes,
events and statuses; metric attributes; every ``spendfuse`` log record at DEBUG with its traceback;
the messages and attributes of the errors raised; the local ledger file. Keys never appear anywhere;
content only in spans, and only when capture is switched on.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

import spendfuse
from spendfuse.testing import FakeProvider, FakeUsage, RecordedRequest, Reply, clients

ANTHROPIC_KEY = "sk-ant-api03-CANARYKEYanthropic0123456789"
OPENAI_KEY = "sk-proj-CANARYKEYopenai0123456789abcdef"
AUTH_TOKEN = "CANARYTOKENbearer-0123456789"
HEADER_SECRET = "CANARYHEADERsecret-0123456789"
REDIS_PASSWORD = "CANARYredisPASSWORD-0123456789"
PROMPT = "CANARYPROMPT: my social security number is 078-05-1120"
SYSTEM = "CANARYSYSTEM: you are a very private assistant"
REPLY = "CANARYREPLY: the account balance is $1,234,567"
TOOL_ARGUMENT = "CANARYTOOLARG"
KEYS = (ANTHROPIC_KEY, OPENAI_KEY, AUTH_TOKEN, HEADER_SECRET, REDIS_PASSWORD)
CONTENT = ("CANARYPROMPT", "CANARYSYSTEM", "CANARYREPLY", TOOL_ARGUMENT)
USER = "secret-user"


def fragments(secret: str) -> list[str]:
    """The secret and any 12-character slice of it: a truncated or partially masked leak still counts."""
    return [secret] + [secret[i : i + 12] for i in range(0, max(len(secret) - 11, 1), 4)]


def leaks(haystack: str, secrets: tuple[str, ...]) -> list[str]:
    return sorted({secret for secret in secrets for piece in fragments(secret) if piece in haystack})


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Collected:
    """Everything spendfuse emitted, as one searchable text per destination."""

    def __init__(self) -> None:
        self.errors: list[BaseException] = []

    def spans(self, telemetry: Any) -> str:
        parts = []
        for span in telemetry.spans():
            parts += [span.name, repr(dict(span.attributes or {})), str(span.status.description)]
            for event in span.events:
                parts += [event.name, repr(dict(event.attributes or {}))]
            for link in span.links:
                parts.append(repr(dict(link.attributes or {})))
        return "\n".join(parts)

    def metrics(self, telemetry: Any) -> str:
        data = telemetry.metrics_data()
        parts = []
        for resource_metrics in data.resource_metrics if data else ():
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    parts.append(metric.name)
                    parts += [repr(dict(point.attributes or {})) for point in metric.data.data_points]
        return "\n".join(parts)

    @staticmethod
    def logs(caplog: pytest.LogCaptureFixture) -> str:
        formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
        return "\n".join(formatter.format(r) for r in caplog.records if r.name.split(".")[0] == "spendfuse")

    def error_text(self) -> str:
        parts = []
        for error in self.errors:
            parts += [str(error), repr(error), repr(vars(error)), repr(error.args)]
        return "\n".join(parts)


@pytest.fixture
def ledger(telemetry: Any, tmp_path: Path) -> Iterator[Path | None]:
    try:
        from spendfuse.ledger import LedgerExporter
    except Exception:  # being finished elsewhere: the rest of the suite still runs
        yield None
        return
    path = tmp_path / "ledger.db"
    exporter = LedgerExporter(path)
    telemetry.tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield path
    exporter.shutdown()


def ledger_bytes(path: Path) -> str:
    data = b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
    return data.decode("utf-8", "replace")


def anthropic_client(fake: FakeProvider, *, is_async: bool, token: bool = False) -> Any:
    credentials = {"auth_token": AUTH_TOKEN} if token else {"api_key": ANTHROPIC_KEY}
    factory = clients.async_anthropic_client if is_async else clients.anthropic_client
    return factory(transport=fake.transport(), default_headers={"X-Internal-Auth": HEADER_SECRET}, **credentials)


def openai_client(fake: FakeProvider, *, is_async: bool) -> Any:
    factory = clients.async_openai_client if is_async else clients.openai_client
    return factory(transport=fake.transport(), api_key=OPENAI_KEY, default_headers={"X-Internal-Auth": HEADER_SECRET})


def exercise(fake: FakeProvider, collected: Collected) -> None:
    """Every call shape, sync and async, JSON and stream, with canaries everywhere."""
    import asyncio

    anthropic_messages = [{"role": "user", "content": PROMPT}]
    chat_messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": PROMPT}]
    extra = {"extra_headers": {"X-Request-Auth": HEADER_SECRET}}

    for stream in (False, True):
        for token in (False, True):
            client = anthropic_client(fake, is_async=False, token=token)
            result = client.messages.create(model="claude-sonnet-4-5", max_tokens=256, system=SYSTEM,
                                            messages=anthropic_messages, stream=stream, **extra)  # fmt: skip
            if stream:
                list(result)
        client = openai_client(fake, is_async=False)
        result = client.chat.completions.create(model="gpt-4o", max_completion_tokens=256, messages=chat_messages,
                                                stream=stream, **extra)  # fmt: skip
        if stream:
            list(result)
        result = client.responses.create(model="gpt-4o", max_output_tokens=256, instructions=SYSTEM, input=PROMPT,
                                         stream=stream, **extra)  # fmt: skip
        if stream:
            list(result)

    async def asynchronous() -> None:
        client = anthropic_client(fake, is_async=True)
        await client.messages.create(model="claude-sonnet-4-5", max_tokens=256, messages=anthropic_messages)
        async for _ in await client.messages.create(model="claude-sonnet-4-5", max_tokens=256,
                                                     messages=anthropic_messages, stream=True):  # fmt: skip
            pass
        await client.close()
        oclient = openai_client(fake, is_async=True)
        await oclient.chat.completions.create(model="gpt-4o", messages=chat_messages)
        async for _ in await oclient.chat.completions.create(model="gpt-4o", messages=chat_messages, stream=True):
            pass
        await oclient.close()

    asyncio.run(asynchronous())

    # A provider error, the SDK's own exception (its message is the provider's, not ours).
    fake.enqueue(Reply.error(401, message="invalid x-api-key"))
    with pytest.raises(Exception) as caught:
        anthropic_client(fake, is_async=False).messages.create(model="claude-sonnet-4-5", max_tokens=8,
                                                                messages=anthropic_messages)  # fmt: skip
    assert not isinstance(caught.value, spendfuse.BudgetExceeded)


def respond(request: RecordedRequest) -> Reply:
    if request.stream:
        return Reply.text(REPLY)
    return Reply.tool_call("lookup", {"query": TOOL_ARGUMENT}, text=REPLY)


@pytest.mark.parametrize("capture", [False, True], ids=["capture-off", "capture-on"])
def test_no_secret_leaves_through_spendfuse(
    capture: bool,
    instrument: Any,
    telemetry: Any,
    ledger: Path | None,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true" if capture else "false")
    collected = Collected()
    instrument(user_budget={"usd": 1.0}, warn_at=0.01)  # warnings are logged, with their numbers
    fake = FakeProvider(usage=FakeUsage(1000, 200), responder=respond)

    with spendfuse.run("leak-check", user_id=USER, budget=spendfuse.Budget(usd=5, turns=30)) as run:
        exercise(fake, collected)
    assert run.spent.turns == fake.request_count

    # A breaker trip: its message and attributes.
    with spendfuse.run("trip", user_id=USER, budget=spendfuse.Budget(turns=0)):
        with pytest.raises(spendfuse.BudgetExceeded) as tripped:
            anthropic_client(fake, is_async=False).messages.create(
                model="claude-sonnet-4-5", max_tokens=8, messages=[{"role": "user", "content": PROMPT}]
            )
        collected.errors.append(tripped.value)

    # The store down, its URL carrying a password: closed refuses, open admits; both log.
    for policy in ("closed", "open"):
        instrument(store=f"redis://admin:{REDIS_PASSWORD}@127.0.0.1:{unused_port()}/0", user_budget={"usd": 1.0},
                   store_failure=policy, store_timeout=0.1)  # fmt: skip
        with spendfuse.run(f"outage-{policy}", user_id=USER):
            try:
                anthropic_client(fake, is_async=False).messages.create(
                    model="claude-sonnet-4-5", max_tokens=8, messages=[{"role": "user", "content": PROMPT}]
                )
            except spendfuse.BudgetStoreUnavailable as error:
                collected.errors.append(error)
    assert any(isinstance(e, spendfuse.BudgetStoreUnavailable) for e in collected.errors)
    with pytest.raises(spendfuse.ConfigError) as config_error:
        spendfuse.instrument(store=f"redis://admin:{REDIS_PASSWORD}@127.0.0.1:1/0?nonsense=1")
    collected.errors.append(config_error.value)

    # The SDKs did send the canaries: the search below is a real one.
    sent = "\n".join(repr(request.headers) + request.body.decode() for request in fake.requests)
    assert leaks(sent, (ANTHROPIC_KEY, OPENAI_KEY, AUTH_TOKEN, HEADER_SECRET)) == sorted(
        (ANTHROPIC_KEY, OPENAI_KEY, AUTH_TOKEN, HEADER_SECRET)
    )
    assert "CANARYPROMPT" in sent

    places = {
        "spans": collected.spans(telemetry),
        "metrics": collected.metrics(telemetry),
        "logs": Collected.logs(caplog),
        "errors": collected.error_text(),
    }
    if ledger is not None:
        telemetry.tracer_provider.force_flush()
        places["ledger"] = ledger_bytes(ledger)
    assert "budget store" in places["logs"] and "redis://admin:***@" in places["errors"]
    for where, text in places.items():
        assert text, f"nothing was collected from {where}: the search would prove nothing"
        assert leaks(text, KEYS) == [], f"a credential leaked into {where}"
        if not capture or where != "spans":
            assert leaks(text, CONTENT) == [], f"message content leaked into {where}"
    if capture:  # the positive control: capture on puts content on spans, and only there
        assert "CANARYPROMPT" in places["spans"] and "CANARYREPLY" in places["spans"]
        assert "CANARYSYSTEM" in places["spans"]
