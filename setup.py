"""Build step: copy the stack files from the repository root into the wheel (spendfuse/stack/files).

The root files stay the one source of truth (a clone's `docker compose up` and the stack tests use
them in place); setuptools cannot take package data from outside the package, and symlinks do not
survive every wheel and sdist toolchain, so the wheel gets a copy made at build time.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
STACK_PATHS = ("docker-compose.yml", "collector-config", "tempo", "prometheus", "alertmanager", "grafana")


class build_py_with_stack(build_py):
    def run(self) -> None:
        super().run()
        target = Path(self.build_lib) / "spendfuse" / "stack" / "files"
        for name in STACK_PATHS:
            source = ROOT / name
            if not source.exists():
                raise SystemExit(f"setup.py: the stack file {source} is missing; cannot build the wheel")
            if source.is_dir():
                shutil.copytree(source, target / name, dirs_exist_ok=True,
                                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                target.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, target / name)


setup(cmdclass={"build_py": build_py_with_stack})
