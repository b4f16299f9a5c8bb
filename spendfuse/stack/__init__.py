"""The shipped observability stack (DESIGN §7): compose file, collector, Tempo, Prometheus and its
rules, Alertmanager, Grafana provisioning and dashboards, written out by ``spendfuse stack init``.

One source of truth: the files live at the repository root (where ``docker compose up`` in a clone
and the stack tests use them). Building the wheel copies them into ``spendfuse/stack/files``
(``setup.py``'s build step); an editable install reads them from the checkout instead.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from spendfuse._version import __version__

HERE = Path(__file__).resolve().parent
PACKAGED = HERE / "files"
CHECKOUT = HERE.parents[1]
# Paths relative to the stack's root, the same in the checkout and in the wheel.
STACK_PATHS: tuple[str, ...] = (
    "docker-compose.yml",
    "collector-config",
    "tempo",
    "prometheus",
    "alertmanager",
    "grafana",
)
# The checkout's demo image is built from its source tree; a written stack has none, so its image
# installs the same spendfuse release from the package index instead.
DEMO_DOCKERFILE = HERE / "demo.Dockerfile"


class StackError(Exception):
    """The stack cannot be written; the message says why, in one line."""


def source_dir() -> Path:
    """Where this installation's stack files are: inside the wheel, else the checkout."""
    for candidate in (PACKAGED, CHECKOUT):
        if all((candidate / path).exists() for path in STACK_PATHS):
            return candidate
    raise StackError(f"this spendfuse installation has no stack files (looked in {PACKAGED} and {CHECKOUT})")


def _files(root: Path) -> list[Path]:
    found: list[Path] = []
    for name in STACK_PATHS:
        path = root / name
        if path.is_dir():
            found.extend(p for p in sorted(path.rglob("*")) if p.is_file() and "__pycache__" not in p.parts)
        else:
            found.append(path)
    return found


def write_stack(target: Path, *, force: bool = False) -> list[Path]:
    """Write the stack into ``target`` (created if missing, but not its parent); return the files written."""
    source = source_dir()
    target = Path(target).expanduser()
    if not target.parent.is_dir():
        raise StackError(f"the folder {str(target.parent)!r} does not exist; create it first")
    if target.exists() and not target.is_dir():
        raise StackError(f"{str(target)!r} exists and is not a folder")
    plan = [(path, target / path.relative_to(source)) for path in _files(source)]
    plan.append((DEMO_DOCKERFILE, target / "Dockerfile"))
    existing = [str(dest.relative_to(target)) for _, dest in plan if dest.exists()]
    if existing and not force:
        shown = ", ".join(existing[:3]) + (", ..." if len(existing) > 3 else "")
        raise StackError(f"{target} already holds stack files ({shown}); pass --force to overwrite them")
    target.mkdir(exist_ok=True)
    written: list[Path] = []
    for src, dest in plan:
        dest.parent.mkdir(parents=True, exist_ok=True)
        if src == DEMO_DOCKERFILE:
            dest.write_text(src.read_text().replace("@VERSION@", __version__))
        else:
            shutil.copyfile(src, dest)
        # The containers run as other users and read these through bind mounts: world-readable.
        os.chmod(dest, 0o644)
        written.append(dest)
    return written


__all__ = ["STACK_PATHS", "StackError", "source_dir", "write_stack"]
