"""Where the local ledger lives.

``SPENDFUSE_LEDGER`` (or the ``ledger`` setting) names the file; ``off``, ``0``, ``false``, ``no`` or
``none`` turn the ledger off. Without it the ledger is a per-user data file:

* Linux and other Unixes: ``$XDG_DATA_HOME/spendfuse/ledger.db``, else
  ``~/.local/share/spendfuse/ledger.db``
* macOS: ``~/Library/Application Support/spendfuse/ledger.db``
* Windows: ``%LOCALAPPDATA%\\spendfuse\\ledger.db`` (else ``~\\AppData\\Local\\spendfuse\\ledger.db``)

The one rule, for the library and the CLI alike: ``--ledger`` (CLI only), else the ``ledger`` setting
(``instrument(ledger=...)``, else ``SPENDFUSE_LEDGER``, else ``ledger`` in the TOML file), else the
platform default. spendfuse creates the default's ``spendfuse`` folder (owner-only); a path the user
names must be in a folder that exists — a missing one is a configuration error, never created.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

from spendfuse.errors import ConfigError

LEDGER_ENV = "SPENDFUSE_LEDGER"
RETENTION_ENV = "SPENDFUSE_LEDGER_RETENTION_DAYS"
DEFAULT_RETENTION_DAYS = 30.0
DISABLED_WORDS = frozenset({"off", "0", "false", "no", "none"})
FILE_NAME = "ledger.db"


def default_ledger_path(environ: Mapping[str, str] | None = None, platform: str | None = None) -> Path:
    """The per-user default, following each platform's convention for application data."""
    environ = os.environ if environ is None else environ
    platform = sys.platform if platform is None else platform
    home = Path(environ.get("HOME") or Path.home())
    if platform.startswith("win"):
        local = environ.get("LOCALAPPDATA")
        base = Path(local) if local else home / "AppData" / "Local"
    elif platform == "darwin":
        base = home / "Library" / "Application Support"
    else:
        xdg = environ.get("XDG_DATA_HOME", "").strip()
        # The XDG spec says a relative XDG_DATA_HOME is invalid and must be ignored.
        base = Path(xdg) if xdg and Path(xdg).is_absolute() else home / ".local" / "share"
    return base / "spendfuse" / FILE_NAME


def is_disabled(value: str | None) -> bool:
    return value is not None and value.strip().lower() in DISABLED_WORDS


def resolve_ledger_path(configured: str | None = None, environ: Mapping[str, str] | None = None) -> Path | None:
    """The ledger file to use, or None when the ledger is turned off.

    ``configured`` (the ``ledger`` setting) wins over ``SPENDFUSE_LEDGER``, which wins over the
    platform default.
    """
    environ = os.environ if environ is None else environ
    value = configured if configured else environ.get(LEDGER_ENV)
    if value is not None and value.strip():
        if is_disabled(value):
            return None
        return Path(value.strip()).expanduser()
    return default_ledger_path(environ)


def ledger_path_for_writing(configured: str | None, environ: Mapping[str, str] | None = None) -> Path | None:
    """Like ``resolve_ledger_path``, creating the default folder (0700) when the default is used."""
    path = resolve_ledger_path(configured, environ)
    if path is None:
        return None
    if path == default_ledger_path(environ) and not path.parent.is_dir():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def check_ledger_setting(key: str, value: str) -> None:
    """A ledger path the user wrote must be in an existing folder; ``key`` is how they spelled it."""
    if is_disabled(value) or not value.strip():
        return
    try:
        folder = Path(value.strip()).expanduser().parent
        exists = folder.is_dir()
    except (ValueError, RuntimeError, OSError) as error:  # a NUL byte, an unknown ~user
        raise ConfigError(f"{key}: {value!r} is not a usable path ({error}); accepted: a file path, or off") from None
    if not exists:
        raise ConfigError(
            f"{key}: the folder {str(folder)!r} of the ledger file does not exist; accepted: a file path "
            f"in an existing folder, or off"
        )


def retention_days(environ: Mapping[str, str] | None = None) -> float | None:
    """Days of history to keep (``SPENDFUSE_LEDGER_RETENTION_DAYS``); None keeps everything (``0``)."""
    environ = os.environ if environ is None else environ
    raw = environ.get(RETENTION_ENV)
    if raw is None or not raw.strip():
        return DEFAULT_RETENTION_DAYS
    try:
        days = float(raw)
    except ValueError:
        days = -1.0
    if not days >= 0 or days == float("inf"):
        raise ConfigError(
            f"{RETENTION_ENV}: {raw!r} is not a number of days; accepted: a number >= 0 (0 keeps everything)"
        )
    return days or None
