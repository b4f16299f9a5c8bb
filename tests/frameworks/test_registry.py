"""The adapter registry: lazy post-import hooks, the disable setting, uninstrument, is_budget_stop."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable

import pytest

import spendfuse
from spendfuse.config.settings import load_settings
from spendfuse.frameworks import ADAPTERS, installed
from spendfuse.frameworks.errors import find_budget_stop, is_budget_stop
from tests.conftest import Telemetry

FRAMEWORK_MODULES = ("pydantic_ai", "agents", "langgraph", "litellm", "smolagents", "langchain_core")


def run_python(code: str, **env: str) -> dict[str, object]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SPENDFUSE_")}
    environment.update(env)
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=240,
        env=environment,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_nothing_is_imported_for_a_framework_the_program_does_not_use() -> None:
    pytest.importorskip("pydantic_ai")
    result = run_python(
        f"""
        import json, sys
        import spendfuse
        from spendfuse import frameworks
        spendfuse.instrument()
        modules = {FRAMEWORK_MODULES!r}
        before = sorted(m for m in sys.modules if m.split(".")[0] in modules)
        import pydantic_ai
        after = sorted({{m.split(".")[0] for m in sys.modules if m.split(".")[0] in modules}})
        import wrapt
        wrapped = isinstance(pydantic_ai.Agent.__dict__["iter"], wrapt.FunctionWrapper)
        adapters = sorted(frameworks.installed())
        spendfuse.uninstrument()
        print(json.dumps({{"before": before, "after": after, "wrapped": wrapped, "adapters": adapters,
                          "unwrapped": not isinstance(pydantic_ai.Agent.__dict__["iter"], wrapt.FunctionWrapper),
                          "left": sorted(frameworks.installed())}}))
        """
    )
    assert result == {
        "before": [],
        "after": ["pydantic_ai"],
        "wrapped": True,
        "adapters": ["pydantic_ai"],
        "unwrapped": True,
        "left": [],
    }


def test_each_adapter_installs_when_its_framework_is_imported() -> None:
    present = [m for m in ("pydantic_ai", "agents", "langgraph", "smolagents", "litellm") if _importable(m)]
    if not present:
        pytest.skip("no framework installed")
    triggers = {
        "pydantic_ai": ("pydantic_ai", "pydantic_ai"),
        "agents": ("agents", "openai_agents"),
        "langgraph": ("langgraph.graph", "langgraph"),
        "smolagents": ("smolagents", "smolagents"),
        "litellm": ("litellm", "litellm"),
    }
    result = run_python(
        f"""
        import importlib, json
        import spendfuse.auto
        from spendfuse import frameworks
        steps = []
        for module, adapter in {[triggers[m] for m in present]!r}:
            importlib.import_module(module)
            steps.append([adapter, sorted(frameworks.installed())])
        print(json.dumps({{"steps": steps}}))
        """,
        LITELLM_LOCAL_MODEL_COST_MAP="True",
    )
    expected, installed_so_far = [], []
    for module in present:
        installed_so_far = sorted([*installed_so_far, triggers[module][1]])
        expected.append([triggers[module][1], installed_so_far])
    assert result == {"steps": expected}


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def test_environment_variable_turns_adapters_off() -> None:
    pytest.importorskip("pydantic_ai")
    result = run_python(
        """
        import json, sys
        import pydantic_ai, spendfuse
        from spendfuse import frameworks
        spendfuse.instrument()
        print(json.dumps({"adapters": sorted(frameworks.installed())}))
        """,
        SPENDFUSE_DISABLE_FRAMEWORKS="pydantic_ai, litellm",
    )
    assert result == {"adapters": []}


def test_instrument_again_with_an_adapter_disabled_removes_it(instrument: Callable[..., None]) -> None:
    pytest.importorskip("pydantic_ai")
    import pydantic_ai  # noqa: F401

    instrument()
    assert "pydantic_ai" in installed()
    instrument(disable_frameworks="all")
    assert installed() == frozenset()
    instrument()
    assert "pydantic_ai" in installed()
    spendfuse.uninstrument()
    assert installed() == frozenset()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("litellm", {"litellm"}),
        ("LangGraph, pydantic-ai", {"langgraph", "pydantic_ai"}),
        ("all", {adapter.name for adapter in ADAPTERS}),
        ("", set()),
    ],
)
def test_disable_frameworks_setting(value: str, expected: set[str]) -> None:
    assert load_settings(environ={"SPENDFUSE_DISABLE_FRAMEWORKS": value}).disable_frameworks == expected


def test_unknown_framework_name_fails_at_start_up_naming_the_variable() -> None:
    with pytest.raises(spendfuse.ConfigError, match="SPENDFUSE_DISABLE_FRAMEWORKS: unknown framework 'crewai'"):
        load_settings(environ={"SPENDFUSE_DISABLE_FRAMEWORKS": "litellm,crewai"})


def _stop() -> spendfuse.TurnLimitExceeded:
    return spendfuse.TurnLimitExceeded(
        "run 'r' has used 3 of its 3 turns", scope="run", key="r", limit="turns", limit_value=3, spent=3, requested=1
    )


class Wrapper(Exception):
    pass


def test_is_budget_stop_follows_cause_context_and_wrapper_attributes() -> None:
    stop = _stop()
    assert is_budget_stop(stop)
    try:
        try:
            raise stop
        except spendfuse.BudgetExceeded:
            raise Wrapper("implicit") from None  # cause suppressed, context kept
    except Wrapper as implicit:
        assert is_budget_stop(implicit)
    explicit = Wrapper("explicit")
    explicit.__cause__ = RuntimeError("middle")
    explicit.__cause__.__context__ = stop
    assert find_budget_stop(explicit) is stop
    kept = Wrapper("kept")
    kept.original_exception = stop  # type: ignore[attr-defined]
    assert is_budget_stop(kept)
    inner = Wrapper("in a task group")
    inner.__context__ = stop
    grouped = Wrapper("group")
    grouped.exceptions = [ValueError("x"), inner]  # type: ignore[attr-defined]  # ExceptionGroup's shape
    assert is_budget_stop(grouped)


def test_is_budget_stop_is_false_for_other_errors_and_cycles() -> None:
    first, second = Wrapper("a"), Wrapper("b")
    first.__context__, second.__context__ = second, first
    assert not is_budget_stop(first)
    assert not is_budget_stop(None)
    assert not is_budget_stop(ValueError("turns limit"))


@pytest.mark.parametrize(
    ("scope", "name", "attributes", "marked"),
    [
        ("pydantic-ai", "chat gpt-4o", {"gen_ai.operation.name": "chat"}, True),
        (
            "opentelemetry.instrumentation.openai",
            "openai.chat",
            {"llm.request.type": "chat", "gen_ai.system": "openai"},
            True,
        ),
        ("logfire", "chat claude-sonnet-4-6", {}, True),
        (
            "opentelemetry.instrumentation.google_genai",
            "chat gemini-2.5",
            {"gen_ai.provider.name": "gcp.gemini"},
            False,
        ),  # a provider spendfuse does not meter: its span is the only record
        ("pydantic-ai", "invoke_agent weather", {"gen_ai.operation.name": "invoke_agent"}, False),
        ("pydantic-ai", "running tool", {"gen_ai.operation.name": "execute_tool"}, False),
    ],
)
def test_framework_model_spans_are_marked_duplicate(
    scope: str,
    name: str,
    attributes: dict[str, object],
    marked: bool,
    instrument: Callable[..., None],
    telemetry: Telemetry,
) -> None:
    from spendfuse.frameworks.usage import DUPLICATE

    instrument()
    tracer = telemetry.tracer_provider.get_tracer(scope)
    tracer.start_span(name, attributes=attributes).end()
    ours_span = telemetry.tracer_provider.get_tracer("spendfuse")
    ours_span.start_span("chat gpt-4o", attributes={"gen_ai.operation.name": "chat"}).end()

    spans = {(s.instrumentation_scope.name if s.instrumentation_scope else ""): s for s in telemetry.spans()}
    assert (spans[scope].attributes or {}).get(DUPLICATE, False) is marked
    assert DUPLICATE not in (spans["spendfuse"].attributes or {})


def test_no_mark_when_spendfuse_is_not_instrumented(telemetry: Telemetry) -> None:
    from spendfuse.frameworks.usage import DUPLICATE, DuplicateUsageMarker

    telemetry.tracer_provider.add_span_processor(DuplicateUsageMarker())
    telemetry.tracer_provider.get_tracer("pydantic-ai").start_span("chat gpt-4o").end()
    assert DUPLICATE not in (telemetry.spans()[0].attributes or {})
