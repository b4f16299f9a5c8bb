# Shared by scripts/test.sh and scripts/newest.sh: system tools and test virtualenvs. Sourced, not run.

# redis-server, promtool, amtool (and npm for the stack's TraceQL check) from apt when missing.
ensure_system_tools() {
  local missing=()
  command -v redis-server >/dev/null || missing+=(redis-server)
  command -v promtool >/dev/null || missing+=(prometheus)
  command -v amtool >/dev/null || missing+=(prometheus-alertmanager)
  command -v npm >/dev/null || missing+=(npm)
  ((${#missing[@]})) || return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing ${missing[*]} (apt-get)"
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "missing ${missing[*]}: install them (Debian/Ubuntu: apt-get install ${missing[*]})" >&2
    return 1
  fi
}

# locked_venv DIR LOCKFILE: a virtualenv holding exactly the lock's versions, plus spendfuse (editable).
# --no-deps and pip check: a package missing from the lock fails here instead of being resolved
# to whatever PyPI serves today.
locked_venv() {
  local venv=$1 lock=$2
  [ -x "$venv/bin/python" ] || "${PYTHON:-python3}" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps -r "$lock"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps -e .
  "$venv/bin/python" -m pip check >/dev/null || { "$venv/bin/python" -m pip check; return 1; }
}

sdk_versions() {
  "$1/bin/python" -c 'import anthropic, openai; print("anthropic", anthropic.__version__, "openai", openai.__version__)'
}

# frozen VENV: the venv's exact pins on stdout, sorted, without spendfuse itself (the lock format).
frozen() {
  "$1/bin/python" -m pip freeze --exclude-editable --disable-pip-version-check | grep -v '^spendfuse[= ]' | LC_ALL=C sort -f
}
