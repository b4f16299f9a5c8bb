"""Create the virtualenvs of the peer instrumentations compared by ``bench_overhead.py``.

    python bench/setup_peers.py              # every peer, into .bench-venvs/<mode>/
    python bench/setup_peers.py --force      # recreate them

A peer gets its own venv because its pins may conflict with spendfuse's dev environment. Each venv
holds this checkout (editable, no extras: the benchmark's fake provider lives in
``spendfuse.testing``) and the peer's packages, constrained to the exact versions of the SDKs and
the OpenTelemetry packages of the venv running this script (``pip freeze``), so every mode runs the
same anthropic, openai and OpenTelemetry SDK and only the instrumentation differs. When a peer cannot
be installed under those constraints, the venv is not made and ``.bench-venvs/<mode>.json`` keeps
pip's exact error; the benchmark reports it instead of running the mode.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
VENVS = ROOT / ".bench-venvs"

# mode -> the packages that make it (pip requirement strings; --pre for OTel's beta releases)
PEERS: dict[str, list[str]] = {
    # OpenLLMetry (Traceloop): one package per SDK.
    "openllmetry": ["opentelemetry-instrumentation-anthropic", "opentelemetry-instrumentation-openai"],
    # The official OpenTelemetry OpenAI instrumentation (beta releases only).
    "otel-openai-v2": ["opentelemetry-instrumentation-openai-v2"],
}
# mode -> modules that must import for the mode to run
IMPORTS: dict[str, list[str]] = {
    "openllmetry": ["opentelemetry.instrumentation.anthropic", "opentelemetry.instrumentation.openai"],
    "otel-openai-v2": ["opentelemetry.instrumentation.openai_v2"],
}
# mode -> packages added when the peer does not import as installed (the error is kept and reported).
# openai-v2 2.4b0 imports ``httpx`` (for ``httpx.URL``) but does not depend on it (openai 3.x is built
# on httpx2, so nothing else brings httpx in), and imports ``opentelemetry.util.genai.instruments``,
# which opentelemetry-util-genai 1.2b0 and later no longer have although it accepts them.
WORKAROUNDS: dict[str, list[str]] = {"otel-openai-v2": ["httpx", "opentelemetry-util-genai==1.1b0"]}
# The SDKs themselves (spendfuse does not depend on them), pinned below like the rest.
SDKS = ("anthropic", "openai")
# Packages whose versions must match the benchmark's own venv.
PINNED_PREFIXES = ("anthropic", "openai", "httpx", "httpcore", "opentelemetry-", "wrapt", "pydantic")


def python_of(mode: str) -> Path:
    return VENVS / mode / "bin" / "python"


def status_of(mode: str) -> dict[str, object]:
    """What the last setup of ``mode`` said: {"ok": bool, "error"?: str, "versions"?: {...}}."""
    path = VENVS / f"{mode}.json"
    if not path.exists():
        return {"ok": False, "error": f"not set up: run `python bench/setup_peers.py` ({path} missing)"}
    return dict(json.loads(path.read_text(encoding="utf-8")))


def _constraints() -> str:
    frozen = subprocess.run(
        [sys.executable, "-m", "pip", "freeze", "--exclude-editable"], capture_output=True, text=True, check=True
    ).stdout
    keep = []
    for line in frozen.splitlines():
        name = line.split("==")[0].strip().lower()
        if "==" in line and name.startswith(PINNED_PREFIXES):
            keep.append(line.strip())
    return "\n".join(keep) + "\n"


def _versions(python: Path) -> dict[str, str]:
    listing = subprocess.run([str(python), "-m", "pip", "list", "--format=json"], capture_output=True, text=True)
    wanted = ("anthropic", "openai", "opentelemetry-sdk", "opentelemetry-api", "opentelemetry-instrumentation")
    versions = {}
    for entry in json.loads(listing.stdout or "[]"):
        name = entry["name"].lower()
        peer_like = ("opentelemetry-instrumentation-", "opentelemetry-semantic-conventions", "opentelemetry-util")
        if name in wanted or name.startswith(peer_like):
            versions[name] = entry["version"]
    return versions


def _import_error(mode: str) -> str:
    """The last lines of the traceback of importing the peer's modules, or '' when they import."""
    code = "; ".join(f"import {module}" for module in IMPORTS[mode])
    done = subprocess.run([str(python_of(mode)), "-c", code], capture_output=True, text=True)
    if done.returncode == 0:
        return ""
    return "\n".join(done.stderr.strip().splitlines()[-4:])


def setup(mode: str, packages: list[str], force: bool) -> dict[str, object]:
    venv = VENVS / mode
    if force and venv.exists():
        shutil.rmtree(venv)
    VENVS.mkdir(exist_ok=True)
    constraints = VENVS / "constraints.txt"
    constraints.write_text(_constraints(), encoding="utf-8")
    started = time.monotonic()
    if not python_of(mode).exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    command = [
        *(str(python_of(mode)), "-m", "pip", "install", "-q", "--pre", "-c", str(constraints)),
        *("-e", str(ROOT), *SDKS, *packages),
    ]
    done = subprocess.run(command, capture_output=True, text=True)
    status: dict[str, object]
    if done.returncode != 0:
        # The last lines of pip's output name the conflict.
        error = "\n".join(line for line in done.stderr.splitlines() if not line.startswith("WARNING: Location"))
        status = {"ok": False, "error": error.strip()[-3000:], "command": " ".join(command[3:])}
        shutil.rmtree(venv, ignore_errors=True)
    else:
        status = {"ok": True, "packages": packages}
        import_error = _import_error(mode)
        if import_error and WORKAROUNDS.get(mode):
            status["import_error"] = import_error
            status["workaround"] = WORKAROUNDS[mode]
            fix = [str(python_of(mode)), "-m", "pip", "install", "-q", "-c", str(constraints), *WORKAROUNDS[mode]]
            subprocess.run(fix, capture_output=True, text=True)
            import_error = _import_error(mode)
        if import_error:
            status.update(ok=False, error=import_error)
        status["versions"] = _versions(python_of(mode))
    status["seconds"] = round(time.monotonic() - started)
    (VENVS / f"{mode}.json").write_text(json.dumps(status, indent=2), encoding="utf-8")
    return status


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--force", action="store_true", help="recreate existing venvs")
    parser.add_argument("--only", default="", help="comma-separated subset of: " + ", ".join(PEERS))
    args = parser.parse_args()
    chosen = [name for name in args.only.split(",") if name] or list(PEERS)
    for mode in chosen:
        status = setup(mode, PEERS[mode], args.force)
        if status["ok"]:
            print(f"{mode}: ok ({status['seconds']} s) {json.dumps(status['versions'])}")
            if status.get("import_error"):
                print(f"  did not import as installed; added {status['workaround']}:\n  {status['import_error']}")
        else:
            print(f"{mode}: FAILED ({status['seconds']} s)\n{status['error']}", file=sys.stderr)


if __name__ == "__main__":
    main()
