"""The SQLite store's files: its URL, and a database file created readable by its owner only."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import parse_qs, unquote

from spendfuse.errors import ConfigError

SQLITE_URL_FORM = "sqlite:///relative/path.db or sqlite:////absolute/path.db"


def parse_sqlite_url(url: str) -> tuple[Path, dict[str, str]]:
    """``sqlite:///rel.db`` / ``sqlite:////abs.db`` -> (absolute path, query options)."""
    if not isinstance(url, str) or not url.lower().startswith("sqlite:///"):
        raise ConfigError(f"store: {url!r} is not a SQLite store URL; accepted: {SQLITE_URL_FORM}")
    rest = url[len("sqlite:///") :]
    raw_path, _, query = rest.partition("?")
    path = unquote(raw_path)
    if not path or path == ":memory:" or path.endswith("/"):
        raise ConfigError(
            f"store: {url!r} names no database file (use memory:// for an in-process store); "
            f"accepted: {SQLITE_URL_FORM}"
        )
    options: dict[str, str] = {}
    for name, values in parse_qs(query, keep_blank_values=True).items():
        if name not in ("busy_timeout", "synchronous"):
            raise ConfigError(
                f"store: unknown option {name!r} in {url!r}; accepted: busy_timeout=SECONDS, synchronous=normal|full"
            )
        options[name] = values[-1]
    if "synchronous" in options and options["synchronous"].lower() not in ("normal", "full"):
        raise ConfigError(f"store: synchronous must be normal or full in {url!r}")
    if "busy_timeout" in options:
        try:
            if float(options["busy_timeout"]) <= 0:
                raise ValueError
        except ValueError:
            raise ConfigError(f"store: busy_timeout must be a positive number of seconds in {url!r}") from None
    return Path(path).expanduser().resolve(), options


def create_private(path: Path) -> None:
    """Create the database file readable by its owner only (budgets name users and their spend).

    SQLite gives the ``-wal`` and ``-shm`` files the mode of the database file, so they follow. An
    existing file keeps the mode its owner chose.
    """
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    os.close(fd)


__all__ = ["SQLITE_URL_FORM", "create_private", "parse_sqlite_url"]
