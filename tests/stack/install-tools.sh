#!/usr/bin/env bash
# Installs the tools of tests/stack that neither apt nor the dev extra provide. Idempotent.
#   - docker-compose 1.29.2 (the classic Python tool; validates compose files without a Docker
#     engine) in a virtualenv of its own: it needs PyYAML < 6, whose sdist only builds with Cython < 3.
#   - @grafana/lezer-traceql for the TraceQL check (npm ci from tests/stack/traceql/package-lock.json).
# The stack tests find docker-compose in .stack-tools/compose/bin (or through SPENDFUSE_DOCKER_COMPOSE).
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON="${PYTHON:-python3}"
COMPOSE_VENV=".stack-tools/compose"

if [ ! -x "$COMPOSE_VENV/bin/docker-compose" ]; then
  "$PYTHON" -m venv "$COMPOSE_VENV"
  "$COMPOSE_VENV/bin/pip" install -q --disable-pip-version-check "cython<3" wheel
  "$COMPOSE_VENV/bin/pip" install -q --disable-pip-version-check --no-build-isolation "pyyaml==5.4.1"
  "$COMPOSE_VENV/bin/pip" install -q --disable-pip-version-check "docker-compose==1.29.2"
fi

if [ ! -d tests/stack/traceql/node_modules/@grafana/lezer-traceql ]; then
  npm ci --prefix tests/stack/traceql --no-audit --no-fund --loglevel=error
fi
