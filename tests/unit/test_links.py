from __future__ import annotations

import pytest

from spendfuse.telemetry.links import GRAFANA_URL_ENV, run_view_url


def test_explicit_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(GRAFANA_URL_ENV, "http://ignored:3000")
    assert (
        run_view_url("ticket-4711", "http://localhost:3000")
        == "http://localhost:3000/d/spendfuse-run/spendfuse-run?var-run_id=ticket-4711"
    )


def test_env_base_url_and_trailing_slash(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(GRAFANA_URL_ENV, "https://grafana.example.com/sub/ ")
    assert run_view_url("r1") == "https://grafana.example.com/sub/d/spendfuse-run/spendfuse-run?var-run_id=r1"


@pytest.mark.parametrize("value", [None, "", "   "])
def test_unset_gives_none(monkeypatch: pytest.MonkeyPatch, value: str | None) -> None:
    if value is None:
        monkeypatch.delenv(GRAFANA_URL_ENV, raising=False)
    else:
        monkeypatch.setenv(GRAFANA_URL_ENV, value)
    assert run_view_url("r1") is None


def test_explicit_empty_base_does_not_fall_back_to_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(GRAFANA_URL_ENV, "http://localhost:3000")
    assert run_view_url("r1", "") is None


def test_run_id_is_url_quoted() -> None:
    url = run_view_url("user/alice run#1&x=ü", "http://g")
    assert url == "http://g/d/spendfuse-run/spendfuse-run?var-run_id=user%2Falice%20run%231%26x%3D%C3%BC"


def test_trace_id_fills_the_trace_variable() -> None:
    url = run_view_url("r1", "http://g", trace_id="4bf92f3577b34da6a3ce929d0e0e4736")
    assert url == ("http://g/d/spendfuse-run/spendfuse-run?var-run_id=r1&var-trace_id=4bf92f3577b34da6a3ce929d0e0e4736")
