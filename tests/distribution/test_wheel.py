"""The built wheel and sdist: metadata (twine), and the stack a pip user gets from `spendfuse stack init`.

Builds once per session with `python -m build`, installs the wheel into a fresh venv (no checkout on
its path) and checks the written stack with the same real tools as tests/stack.
"""

from __future__ import annotations

import filecmp
import json
import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "stack"))

import stack_support as sup  # noqa: E402

pytestmark = pytest.mark.slow

STACK_PATHS = ("docker-compose.yml", "collector-config", "tempo", "prometheus", "alertmanager", "grafana")


def _run(args: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=600, **kwargs)  # type: ignore[call-overload, no-any-return]


@pytest.fixture(scope="session")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    result = _run([sys.executable, "-m", "build", "--outdir", str(out), str(REPO)])
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out


@pytest.fixture(scope="session")
def installed(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel installed; returns its bin folder."""
    home = tmp_path_factory.mktemp("venv") / "env"
    venv.create(home, with_pip=True)
    binary = home / "bin"
    wheel = next(dist.glob("*.whl"))
    result = _run([str(binary / "python"), "-m", "pip", "install", "-q", str(wheel)])
    assert result.returncode == 0, result.stderr[-3000:]
    return binary


def test_twine_check_is_clean(dist: Path) -> None:
    files = sorted(str(p) for p in dist.iterdir())
    assert len(files) == 2, files
    result = _run([sys.executable, "-m", "twine", "check", "--strict", *files])
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("PASSED") == 2


def test_metadata_is_spdx_with_a_license_file(dist: Path) -> None:
    wheel = zipfile.ZipFile(next(dist.glob("*.whl")))
    metadata = wheel.read("spendfuse-0.1.0.dist-info/METADATA").decode()
    assert "License-Expression: Apache-2.0" in metadata
    assert "Classifier: Programming Language :: Python :: 3.10" in metadata
    assert "Project-URL: Source" in metadata
    assert not any(line.startswith("Classifier: License ::") for line in metadata.splitlines())
    assert "Apache License" in wheel.read("spendfuse-0.1.0.dist-info/licenses/LICENSE").decode()


def test_the_wheel_carries_the_stack_unchanged(dist: Path) -> None:
    wheel = zipfile.ZipFile(next(dist.glob("*.whl")))
    names = set(wheel.namelist())
    for root_file in (
        p
        for name in STACK_PATHS
        for p in ([REPO / name] if (REPO / name).is_file() else sorted((REPO / name).rglob("*")))
        if p.is_file() and "__pycache__" not in p.parts
    ):
        packaged = f"spendfuse/stack/files/{root_file.relative_to(REPO).as_posix()}"
        assert packaged in names, packaged
        assert wheel.read(packaged) == root_file.read_bytes(), packaged


def test_stack_init_from_the_wheel_passes_the_real_tools(installed: Path, tmp_path: Path) -> None:
    target = tmp_path / "stack"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith(("COMPOSE_", "DOCKER_"))}
    result = _run([str(installed / "spendfuse"), "stack", "init", str(target), "--json"], cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    written = {Path(p).relative_to(target).as_posix() for p in json.loads(result.stdout)}
    assert {
        "docker-compose.yml",
        "Dockerfile",
        "prometheus/rules/spendfuse.rules.yml",
        "alertmanager/alertmanager.yml",
        "grafana/dashboards/run-view.json",
        "grafana/provisioning/datasources/datasources.yaml",
        "collector-config/config.yaml",
        "tempo/tempo.yaml",
    } <= written
    # It came from the installed wheel, not from this checkout.
    where = _run(
        [str(installed / "python"), "-c", "import spendfuse.stack as s; print(s.source_dir())"], cwd=tmp_path, env=env
    )
    assert where.stdout.strip().endswith("site-packages/spendfuse/stack/files"), where.stdout + where.stderr
    assert filecmp.cmp(target / "docker-compose.yml", REPO / "docker-compose.yml", shallow=False)
    assert '"spendfuse[redis,demo]==0.1.0"' in (target / "Dockerfile").read_text()

    compose = _run(
        [sup.require_tool("docker-compose"), "-f", str(target / "docker-compose.yml"), "config", "-q"],
        cwd=target,
        env=env,
    )
    assert compose.returncode == 0, compose.stdout + compose.stderr
    promtool = sup.require_tool("promtool")
    config = _run([promtool, "check", "config", str(target / "prometheus" / "prometheus.yml")], cwd=target)
    assert config.returncode == 0, config.stdout + config.stderr
    rules = _run([promtool, "check", "rules", str(target / "prometheus" / "rules" / "spendfuse.rules.yml")])
    assert rules.returncode == 0 and "SUCCESS" in rules.stdout, rules.stdout + rules.stderr
    rule_tests = target / "prometheus" / "rules" / "tests"
    unit = _run([promtool, "test", "rules", *map(str, sorted(rule_tests.glob("*.yml")))], cwd=rule_tests)
    assert unit.returncode == 0, unit.stdout + unit.stderr
    amtool = _run([sup.require_tool("amtool"), "check-config", str(target / "alertmanager" / "alertmanager.yml")])
    assert amtool.returncode == 0, amtool.stdout + amtool.stderr
    for dashboard in sorted((target / "grafana" / "dashboards").glob("*.json")):
        data = sup.load_json(dashboard)
        panels = sup.dashboard_panels(data)
        assert data["uid"] and panels and len({p["id"] for p in panels}) == len(panels), dashboard.name
        assert sup.dashboard_queries(dashboard), dashboard.name
    hadolint = _run([sup.require_tool("hadolint"), "--no-color", str(target / "Dockerfile")])
    assert hadolint.returncode == 0, hadolint.stdout + hadolint.stderr
    again = _run([str(installed / "spendfuse"), "stack", "init", str(target)], cwd=tmp_path, env=env)
    assert again.returncode == 1 and "--force" in again.stderr and again.stderr.count("\n") == 1
