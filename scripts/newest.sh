#!/usr/bin/env bash
# The newest-releases lane: the whole suite against the newest releases PyPI serves today (SDKs,
# OpenTelemetry, every other dependency), in a virtualenv rebuilt each time (.venv-newest).
# Run it every session; when it passes, `bash scripts/lock.sh` moves the lock files to those releases.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_env.sh
ensure_system_tools

VENV="${SPENDFUSE_NEWEST_VENV:-.venv-newest}"
rm -rf "$VENV"
"${PYTHON:-python3}" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade-strategy eager -e ".[dev,frameworks]"
"$VENV/bin/python" -m pip check
PYTHON="${PYTHON:-python3}" bash tests/stack/install-tools.sh
if [ -n "${CI:-}" ]; then export SPENDFUSE_STACK_STRICT=1; fi
echo "== newest releases: $(sdk_versions "$VENV")"
echo "   differences from requirements/dev.lock:"
diff <(grep -v '^#' requirements/dev.lock) \
  <(frozen "$VENV") \
  | sed -n 's/^> /     /p' || true
"$VENV/bin/python" -m pytest "$@"
