#!/usr/bin/env bash
# The whole test suite on a fresh machine, from the lock files: system tools, virtualenvs, checks.
# Three stages, all always run and all reported; the exit code fails if any failed:
#   0. lint                ruff check, ruff format --check, mypy --strict on the package
#   1. newest locked SDKs  (requirements/dev.lock)     the whole suite
#   2. oldest SDKs         (requirements/oldest.lock)  the call-path suites (tests/core, tests/testing)
# Extra arguments go to pytest in both stages (e.g. `bash scripts/test.sh -x -q`).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_env.sh
ensure_system_tools

VENV="${SPENDFUSE_TEST_VENV:-.venv}"
OLDEST="${SPENDFUSE_OLDEST_VENV:-.venv-oldest-sdks}"
locked_venv "$VENV" requirements/dev.lock
locked_venv "$OLDEST" requirements/oldest.lock
# docker-compose 1.29 and the TraceQL parser for the stack checks (tests/stack).
PYTHON="${PYTHON:-python3}" bash tests/stack/install-tools.sh
# In CI a missing tool is a failure, never a skip.
if [ -n "${CI:-}" ]; then export SPENDFUSE_STACK_STRICT=1; fi

lint_rc=0
echo "== stage 0: lint (ruff check, ruff format --check, mypy)"
{ "$VENV/bin/ruff" check spendfuse tests bench && "$VENV/bin/ruff" format --check spendfuse tests bench \
    && "$VENV/bin/mypy"; } || lint_rc=$?

newest_rc=0
echo "== stage 1: newest locked SDKs ($(sdk_versions "$VENV"))"
"$VENV/bin/python" -m pytest "$@" || newest_rc=$?

oldest_rc=0
echo "== stage 2: oldest supported SDKs ($(sdk_versions "$OLDEST"))"
"$OLDEST/bin/python" -m pytest tests/core tests/testing "$@" || oldest_rc=$?

verdict() { if [ "$1" = 0 ]; then echo passed; else echo "FAILED (pytest exit $1)"; fi; }
echo "== stage 0, lint: $(verdict $lint_rc | sed 's/pytest exit/exit/')"
echo "== stage 1, newest locked SDKs: $(verdict $newest_rc)"
echo "== stage 2, oldest supported SDKs: $(verdict $oldest_rc)"
[ "$lint_rc" = 0 ] && [ "$newest_rc" = 0 ] && [ "$oldest_rc" = 0 ]
