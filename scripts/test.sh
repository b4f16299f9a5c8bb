#!/usr/bin/env bash
# The whole test suite, on a fresh machine: system tools, a virtualenv, then pytest.
# Extra arguments go to pytest (e.g. `bash scripts/test.sh tests/core -x`).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v promtool >/dev/null || missing+=(prometheus)
command -v amtool >/dev/null || missing+=(prometheus-alertmanager)
command -v npm >/dev/null || missing+=(nodejs npm)
if ((${#missing[@]})); then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing ${missing[*]} (apt-get)"
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "missing ${missing[*]}: install them (Debian/Ubuntu: apt-get install ${missing[*]})" >&2
    exit 1
  fi
fi

PYTHON="${PYTHON:-python3}"
VENV="${SPENDFUSE_TEST_VENV:-.venv}"
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -e ".[dev]"
# docker-compose 1.29 and the TraceQL parser for the stack checks (tests/stack).
PYTHON="$PYTHON" bash tests/stack/install-tools.sh
# In CI a missing tool is a failure, never a skip.
if [ -n "${CI:-}" ]; then export SPENDFUSE_STACK_STRICT=1; fi
"$VENV/bin/python" -m pytest "$@"

# SDK matrix: the newest releases ran above; now the oldest supported ones (pyproject floors).
OLDEST="${SPENDFUSE_OLDEST_VENV:-.venv-oldest-sdks}"
[ -x "$OLDEST/bin/python" ] || "$PYTHON" -m venv "$OLDEST"
"$OLDEST/bin/python" -m pip install -q --disable-pip-version-check -e ".[dev]" \
  "anthropic==$(sed -n 's/.*"anthropic>=\([0-9.]*\)".*/\1/p' pyproject.toml | head -n 1)" \
  "openai==$(sed -n 's/.*"openai>=\([0-9.]*\)".*/\1/p' pyproject.toml | head -n 1)"
echo "oldest supported SDKs: $("$OLDEST/bin/python" -c 'import anthropic, openai; print("anthropic", anthropic.__version__, "openai", openai.__version__)')"
"$OLDEST/bin/python" -m pytest tests/core tests/testing "$@"
