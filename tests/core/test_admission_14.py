"""Issue #14: admission that cannot be bypassed, block or leak (the budgets side).

Each test here failed on the code before the fix it names.
"""

from __future__ import annotations

import builtins
from typing import Any

import openai
import pytest

import spendfuse
from spendfuse.budgets.estimate import estimate_input_tokens
from spendfuse.budgets.pricing import PriceBook
from spendfuse.testing import FakeProvider, FakeUsage

GPT = "gpt-4o"
CHAT = [{"role": "user", "content": "Give me four taglines for a bakery."}]


def _worst_micros(choices: int, per_choice: int) -> int:
    prices = PriceBook()
    rates = prices.rates("openai", GPT)
    assert rates is not None
    body = {"model": GPT, "messages": CHAT, "n": choices}
    estimate = estimate_input_tokens("openai", "chat", GPT, body)
    return prices.worst_case_micros(rates, input_tokens=estimate, max_output_tokens=per_choice * choices)


# -- item 1: n > 1 without max_tokens ------------------------------------------------------------


def test_n_choices_without_max_tokens_reserve_every_choice(instrument: Any, telemetry: Any) -> None:
    instrument()
    fake = FakeProvider(usage=FakeUsage(input_tokens=20, output_tokens=40))
    client = fake.openai_client()
    model_max = PriceBook().max_output_tokens("openai", GPT)
    assert model_max == 16_384
    four = _worst_micros(4, model_max)
    one = _worst_micros(1, model_max)
    # A limit the one-choice worst case fits under and the four-choice one does not.
    limit_micros = (one + four) // 2
    budget = spendfuse.Budget(usd=limit_micros / 1e6)
    with pytest.raises(spendfuse.CostLimitExceeded) as caught, spendfuse.run("n4", budget=budget):
        client.chat.completions.create(model=GPT, messages=CHAT, n=4)
    assert fake.request_count == 0
    assert round(caught.value.requested * 1e6) == four
    # With room for it, the reservation on the span is the exact four-choice worst case.
    with spendfuse.run("n4-fits", budget=spendfuse.Budget(usd=1.0)):
        client.chat.completions.create(model=GPT, messages=CHAT, n=4)
    assert fake.request_count == 1
    [span] = [s for s in telemetry.spans("chat ") if s.attributes and "spendfuse.reserved.usd" in s.attributes]
    assert round(span.attributes["spendfuse.reserved.usd"] * 1e6) == four


def test_n_choices_with_max_tokens_reserve_max_tokens_times_n(instrument: Any, telemetry: Any) -> None:
    instrument()
    fake = FakeProvider(usage=FakeUsage(input_tokens=20, output_tokens=40))
    client = fake.openai_client()
    with spendfuse.run("n3", budget=spendfuse.Budget(usd=1.0)):
        client.chat.completions.create(model=GPT, messages=CHAT, n=3, max_completion_tokens=500)
    [span] = telemetry.spans("chat ")
    assert round(span.attributes["spendfuse.reserved.usd"] * 1e6) == _worst_micros(3, 500)


def test_user_window_is_not_overspent_by_n_choices(instrument: Any) -> None:
    # The report: n=4 without max_tokens overspent a $1.00 user limit. Each call's actual cost is
    # its full four-choice worst case here, so one-choice reservations admit two calls ($1.31).
    model_max = 16_384
    fake = FakeProvider(usage=FakeUsage(input_tokens=10, output_tokens=4 * model_max))
    instrument(user_budget=spendfuse.Budget(usd=1.0, window="1d"))
    client = fake.openai_client()
    refused = 0
    for index in range(3):
        with spendfuse.run(f"u{index}", user_id="bob"):
            try:
                client.chat.completions.create(model=GPT, messages=CHAT, n=4)
            except spendfuse.CostLimitExceeded:
                refused += 1
    assert fake.request_count == 1
    assert refused == 2
    assert not issubclass(spendfuse.BudgetExceeded, openai.APIError)


# -- item 4: refusals that repeat ----------------------------------------------------------------

SONNET = "claude-sonnet-4-5"
ASK = [{"role": "user", "content": "hi"}]


def _ask(client: Any) -> Any:
    return client.messages.create(model=SONNET, max_tokens=64, messages=ASK)


def test_a_retried_refusal_is_one_trip(instrument: Any, telemetry: Any) -> None:
    instrument()
    fake = FakeProvider(usage=FakeUsage(input_tokens=10, output_tokens=5))
    client = fake.anthropic_client()
    errors: list[spendfuse.BudgetExceeded] = []
    with spendfuse.run("retried", budget=spendfuse.Budget(turns=2)) as run:
        _ask(client)
        _ask(client)
        for _attempt in range(4):  # what LangChain with_retry / LiteLLM num_retries do with the refusal
            try:
                _ask(client)
            except spendfuse.TurnLimitExceeded as error:
                errors.append(error)
    assert fake.request_count == 2
    assert len(errors) == 4
    assert [e.repeated for e in errors] == [False, True, True, True]
    assert all((e.scope, e.key, e.limit, e.limit_value) == ("run", "retried", "turns", 2) for e in errors)
    assert len({id(e) for e in errors}) == 4
    assert telemetry.metric_sum("spendfuse.breaker.trips", **{"spendfuse.limit": "turns"}) == 1
    spans = telemetry.spans("chat ")
    tripped = [s for s in spans if (s.attributes or {}).get("spendfuse.breaker.tripped")]
    repeated = [s for s in spans if (s.attributes or {}).get("spendfuse.breaker.repeated")]
    assert len(tripped) == 1 and len(repeated) == 3
    assert all(s.status.status_code.name == "ERROR" for s in repeated)
    assert all(not s.events for s in repeated)  # no new tripped event to alert on
    assert run.spent.turns == 2 and run.balance.flight_turns == 0


def test_a_hard_stopped_run_refuses_at_once_without_the_store(instrument: Any, telemetry: Any) -> None:
    instrument(user_budget=spendfuse.Budget(usd=100, window="1d"))
    from spendfuse import runtime

    active = runtime.current()
    assert active is not None
    store = active.breaker.store
    reserves: list[str] = []
    real_reserve = store.reserve

    def counting_reserve(lease_id: str, *args: Any) -> Any:
        reserves.append(lease_id)
        return real_reserve(lease_id, *args)

    store.reserve = counting_reserve  # type: ignore[method-assign]
    fake = FakeProvider(usage=FakeUsage(input_tokens=10, output_tokens=5))
    client = fake.anthropic_client()
    with spendfuse.run("stopped", user_id="carol", budget=spendfuse.Budget(turns=1)):
        _ask(client)
        assert len(reserves) == 1
        for _attempt in range(3):
            with pytest.raises(spendfuse.TurnLimitExceeded):
                _ask(client)
    assert len(reserves) == 1  # the refusals never reached the store
    assert fake.request_count == 1
    assert telemetry.metric_sum("spendfuse.breaker.trips") == 1


def test_a_user_window_refusal_retried_in_one_run_is_one_trip(instrument: Any, telemetry: Any) -> None:
    instrument(user_budget=spendfuse.Budget(turns=1, window="1d"))
    fake = FakeProvider(usage=FakeUsage(input_tokens=10, output_tokens=5))
    client = fake.anthropic_client()
    with spendfuse.run("first", user_id="dave"):
        _ask(client)
    with spendfuse.run("second", user_id="dave"):
        for _attempt in range(3):
            with pytest.raises(spendfuse.TurnLimitExceeded):
                _ask(client)
    with spendfuse.run("third", user_id="dave"), pytest.raises(spendfuse.TurnLimitExceeded) as caught:
        _ask(client)
    assert caught.value.repeated is False  # another run: its own trip
    assert telemetry.metric_sum("spendfuse.breaker.trips", **{"spendfuse.scope": "user"}) == 2


def test_is_budget_stop_sees_through_wrapping() -> None:
    stop = spendfuse.TurnLimitExceeded("stop", scope="run", key="r", limit="turns", limit_value=1, spent=1, requested=1)

    class FrameworkError(Exception):
        pass

    def wrapped(cause: BaseException, *, explicit: bool) -> BaseException:
        try:
            try:
                raise cause
            except BaseException as inner:
                if explicit:
                    raise FrameworkError("agent step failed") from inner
                raise FrameworkError("agent step failed")  # noqa: B904 - the implicit __context__ case
        except FrameworkError as outer:
            return outer

    assert spendfuse.is_budget_stop(stop)
    assert spendfuse.is_budget_stop(wrapped(stop, explicit=True))
    assert spendfuse.is_budget_stop(wrapped(wrapped(stop, explicit=False), explicit=True))
    group_type = getattr(builtins, "ExceptionGroup", None)  # Python 3.11+
    if group_type is not None:
        assert spendfuse.is_budget_stop(group_type("tools", [ValueError("x"), wrapped(stop, explicit=True)]))
    assert not spendfuse.is_budget_stop(wrapped(ValueError("x"), explicit=True))
    assert not spendfuse.is_budget_stop(None)
    # A cycle of contexts ends the search instead of looping forever.
    first, second = FrameworkError("a"), FrameworkError("b")
    first.__context__, second.__context__ = second, first
    assert not spendfuse.is_budget_stop(first)
    second.__cause__ = stop
    assert spendfuse.is_budget_stop(first)
    assert spendfuse.retry_unless_budget_stop(ValueError("x"))
    assert not spendfuse.retry_unless_budget_stop(wrapped(stop, explicit=True))
    assert not issubclass(spendfuse.BudgetExceeded, (openai.APIError,))


def test_tenacity_stops_retrying_a_budget_stop(instrument: Any, telemetry: Any) -> None:
    tenacity = pytest.importorskip("tenacity")
    instrument()
    fake = FakeProvider(usage=FakeUsage(input_tokens=10, output_tokens=5))
    client = fake.anthropic_client()
    attempts: list[int] = []

    @tenacity.retry(
        retry=tenacity.retry_if_exception(spendfuse.retry_unless_budget_stop),
        stop=tenacity.stop_after_attempt(4),
        reraise=True,
    )
    def step() -> Any:
        attempts.append(1)
        try:
            return _ask(client)
        except spendfuse.BudgetExceeded as error:
            raise RuntimeError("the agent step failed") from error

    with spendfuse.run("tenacious", budget=spendfuse.Budget(turns=1)):
        step()
        with pytest.raises(RuntimeError) as caught:
            step()
    assert len(attempts) == 2  # one success, then one refused attempt: not retried
    assert spendfuse.is_budget_stop(caught.value)
    assert telemetry.metric_sum("spendfuse.breaker.trips") == 1
