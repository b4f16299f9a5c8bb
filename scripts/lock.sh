#!/usr/bin/env bash
# Refresh the test lock files from the newest releases PyPI serves today:
#   requirements/dev.lock     every package of the `dev` and `frameworks` extras, newest releases (scripts/test.sh)
#   requirements/oldest.lock  the same with anthropic and openai at pyproject's floors (the oldest-SDK stage)
# Run `bash scripts/newest.sh` first: lock only what passed. Review the diff, then commit it.
# The locks are for the CPython that runs this script (CI: the machine's python3, Linux x86_64).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_env.sh
PYTHON="${PYTHON:-python3}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

floor() { sed -n "s/.*\"$1>=\([0-9.]*\)\".*/\1/p" pyproject.toml | head -n 1; }

header() {  # header NAME VENV
  echo "# Locked test environment ($1): exact versions of every package the test suite imports."
  echo "# Made by scripts/lock.sh on $(date -u +%F) with $("$2/bin/python" -V); installed by scripts/test.sh."
}


"$PYTHON" -m venv "$work/newest"
"$work/newest/bin/python" -m pip install -q --disable-pip-version-check --upgrade-strategy eager -e ".[dev,frameworks]"
"$work/newest/bin/python" -m pip check
{
  header dev "$work/newest"
  frozen "$work/newest"
} > requirements/dev.lock

"$PYTHON" -m venv "$work/oldest"
"$work/oldest/bin/python" -m pip install -q --disable-pip-version-check -e ".[dev]" \
  "anthropic==$(floor anthropic)" "openai==$(floor openai)"
"$work/oldest/bin/python" -m pip check
{
  header oldest "$work/oldest"
  frozen "$work/oldest"
} > requirements/oldest.lock
echo "wrote requirements/dev.lock ($(grep -vc '^#' requirements/dev.lock) packages) and requirements/oldest.lock ($(grep -vc '^#' requirements/oldest.lock) packages)"
