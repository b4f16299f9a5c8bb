"""docker-compose.yml and the demo Dockerfile: docker-compose 1.29, the compose-spec schema, hadolint."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import stack_support as sup

pytestmark = pytest.mark.stack

COMPOSE_FILE_SETS = [[sup.COMPOSE_FILE], [sup.COMPOSE_FILE, *sup.COMPOSE_OVERRIDES]]
EXPECTED_SERVICES = {"collector", "tempo", "prometheus", "alertmanager", "webhook", "grafana", "redis", "demo"}
IMAGE_RE = re.compile(r"^(?P<repo>[a-z0-9][a-z0-9._/-]*):(?P<tag>[A-Za-z0-9][A-Za-z0-9._-]*)$")


def compose() -> dict[str, Any]:
    data = sup.load_yaml(sup.COMPOSE_FILE)
    assert isinstance(data, dict)
    return data


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("COMPOSE_", "DOCKER_"))}


@pytest.mark.parametrize("files", COMPOSE_FILE_SETS, ids=lambda fs: "+".join(f.name for f in fs))
def test_docker_compose_accepts_the_files(files: list[Path]) -> None:
    """docker-compose 1.29 (`pip install docker-compose`) validates and resolves without an engine."""
    tool = sup.require_tool("docker-compose")
    args = [tool]
    for path in files:
        args += ["-f", str(path)]
    result = subprocess.run(
        [*args, "config", "-q"], capture_output=True, text=True, timeout=60, cwd=sup.REPO, env=clean_env()
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_services() -> None:
    assert set(compose()["services"]) == EXPECTED_SERVICES


@pytest.mark.parametrize("path", [sup.COMPOSE_FILE, *sup.COMPOSE_OVERRIDES], ids=lambda p: p.name)
def test_compose_spec_schema(path: Path) -> None:
    """The compose-spec JSON schema as vendored by check-jsonschema (`vendor.compose-spec`)."""
    tool = sup.require_tool("check-jsonschema")
    result = subprocess.run(
        [tool, "--builtin-schema", "vendor.compose-spec", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_images_are_pinned() -> None:
    for name, service in compose()["services"].items():
        if "build" in service:
            assert service.get("image", "").endswith(":local"), f"{name}: a built image gets a :local tag"
            continue
        m = IMAGE_RE.match(service["image"])
        assert m, f"{name}: image {service['image']!r} has no tag"
        assert m["tag"] != "latest" and re.search(r"\d", m["tag"]), f"{name}: {service['image']} is not pinned"


def test_bind_mounts_exist() -> None:
    for name, service in compose()["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (sup.REPO / source).exists(), f"{name}: {source} does not exist"


def test_ports_are_published_on_loopback_only() -> None:
    for name, service in compose()["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name}: {port} is reachable from the network"


def test_demo_service() -> None:
    demo = compose()["services"]["demo"]
    assert demo["build"] == {"context": ".", "dockerfile": "Dockerfile"}
    env = demo["environment"]
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://collector:4317"
    assert env["SPENDFUSE_STORE"] == "redis://redis:6379/0"
    assert env["SPENDFUSE_GRAFANA_URL"] == "http://localhost:3000"
    assert demo["command"] == ["demo", "--loop"]
    assert demo["depends_on"]["redis"] == {"condition": "service_healthy"}


def test_grafana_needs_no_login() -> None:
    env = compose()["services"]["grafana"]["environment"]
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert env["GF_AUTH_ANONYMOUS_ORG_ROLE"] in ("Admin", "Editor", "Viewer")
    assert env["GF_AUTH_DISABLE_LOGIN_FORM"] == "true"


def dockerfile() -> list[str]:
    text = (sup.REPO / "Dockerfile").read_text()
    lines = text.replace("\\\n", " ").splitlines()
    return [line for line in lines if line.strip() and not line.lstrip().startswith("#")]


def test_dockerfile_lints_clean() -> None:
    tool = sup.require_tool("hadolint")
    result = subprocess.run(
        [tool, "--no-color", str(sup.REPO / "Dockerfile")], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_builds_the_demo() -> None:
    lines = dockerfile()
    base = lines[0].split()
    assert base[0] == "FROM" and IMAGE_RE.match(base[1]) and base[1].startswith("python:3.11"), lines[0]
    assert any(re.search(r"pip install \"?\.(\[|\"|\s|$)", line) for line in lines), "no `pip install .`"
    assert lines[-2:] == ['ENTRYPOINT ["spendfuse"]', 'CMD ["demo", "--loop"]']


def test_dockerfile_copies_existing_files_past_dockerignore() -> None:
    allowed = {
        line[1:].rstrip("/") for line in (sup.REPO / ".dockerignore").read_text().splitlines() if line.startswith("!")
    }
    for line in dockerfile():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert source in allowed, f".dockerignore excludes {source}"
                assert (sup.REPO / source).exists(), f"Dockerfile copies {source}, which does not exist"
