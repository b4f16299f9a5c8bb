"""Open the ledger file, create its schema, append rows, prune old ones.

Several processes may write one ledger at once (an app, its workers, the CLI), so the file is in
WAL mode (readers never block the writer), every connection waits on a busy lock instead of failing
at once, and each batch is one ``BEGIN IMMEDIATE`` transaction: taking the write lock up front
avoids the read-to-write upgrade that SQLite answers with an immediate "database is locked".
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from spendfuse.ledger.rows import EventRow, SpanRow
from spendfuse.ledger.schema import ADDED_COLUMNS, DDL, EVENT_COLUMNS, SCHEMA_VERSION, SPAN_COLUMNS

BUSY_TIMEOUT_SECONDS = 10.0
LOCK_RETRIES = 5

INSERT_SPAN = f"INSERT OR IGNORE INTO spans ({', '.join(SPAN_COLUMNS)}) VALUES ({', '.join('?' for _ in SPAN_COLUMNS)})"
INSERT_EVENT = (
    f"INSERT OR IGNORE INTO events ({', '.join(EVENT_COLUMNS)}) VALUES ({', '.join('?' for _ in EVENT_COLUMNS)})"
)

T = TypeVar("T")


class LedgerMissingError(Exception):
    """The ledger file does not exist (nothing was ever recorded there)."""


def _is_busy(error: sqlite3.OperationalError) -> bool:
    text = str(error).lower()
    return "locked" in text or "busy" in text


def _with_retries(action: Callable[[], T]) -> T:
    # The busy timeout covers ordinary waits; this covers the cases where SQLite gives up without
    # calling the busy handler (a journal-mode switch, a WAL checkpoint racing a new writer).
    for attempt in range(LOCK_RETRIES):
        try:
            return action()
        except sqlite3.OperationalError as error:
            if not _is_busy(error) or attempt == LOCK_RETRIES - 1:
                raise
            time.sleep(0.05 * (2**attempt))
    raise AssertionError("unreachable")


def _create_file(path: Path) -> None:
    # No mkdir: a missing folder is a configuration error (a typo), reported where the path is read.
    with contextlib.suppress(FileExistsError):
        # Owner-only: the ledger names users and what they spent.
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))


def connect(path: Path, *, create: bool) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), with the schema in place."""
    path = Path(path)
    if create:
        _create_file(path)
    elif not path.is_file():
        raise LedgerMissingError(str(path))
    connection = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=False)
    try:
        connection.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_SECONDS * 1000)}")
        _with_retries(lambda: connection.execute("PRAGMA journal_mode = WAL").fetchone())
        connection.execute("PRAGMA synchronous = NORMAL")
        _with_retries(lambda: _ensure_schema(connection))
    except BaseException:
        connection.close()
        raise
    return connection


def _ensure_schema(connection: sqlite3.Connection) -> None:
    exists = connection.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'spans'").fetchone()
    if exists:
        _add_missing_columns(connection)
        return
    connection.execute("BEGIN IMMEDIATE")
    try:
        for statement in DDL.split(";"):
            if statement.strip():
                connection.execute(statement)
        connection.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
        )
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise


def _missing_columns(connection: sqlite3.Connection) -> list[tuple[str, str, str]]:
    missing: list[tuple[str, str, str]] = []
    for table, columns in ADDED_COLUMNS.items():
        present = {row[1] for row in connection.execute(f"PRAGMA table_info({table})")}
        missing.extend((table, name, kind) for name, kind in columns if name not in present)
    return missing


def _add_missing_columns(connection: sqlite3.Connection) -> None:
    if not _missing_columns(connection):
        return
    connection.execute("BEGIN IMMEDIATE")
    try:
        # Checked again under the write lock: another process may have upgraded the file meanwhile.
        for table, name, kind in _missing_columns(connection):
            connection.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")
        connection.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
        )
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise


def _transaction(connection: sqlite3.Connection, body: Callable[[], None]) -> None:
    def attempt() -> None:
        connection.execute("BEGIN IMMEDIATE")
        try:
            body()
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise

    _with_retries(attempt)


class LedgerWriter:
    """Appends rows to one ledger file; safe to call from several threads."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None

    def _connect(self) -> sqlite3.Connection:
        if self._connection is None:
            self._connection = connect(self.path, create=True)
        return self._connection

    def write(self, spans: Sequence[SpanRow], events: Sequence[EventRow]) -> None:
        if not spans and not events:
            return
        with self._lock:
            connection = self._connect()

            def insert() -> None:
                connection.executemany(INSERT_SPAN, [row.values() for row in spans])
                if events:
                    connection.executemany(INSERT_EVENT, [row.values() for row in events])

            _transaction(connection, insert)

    def prune(self, older_than_ns: int) -> None:
        """Delete spans and events that started before ``older_than_ns`` (unix nanoseconds)."""
        with self._lock:
            connection = self._connect()

            def delete() -> None:
                connection.execute("DELETE FROM spans WHERE start_ns < ?", (older_than_ns,))
                connection.execute("DELETE FROM events WHERE time_ns < ?", (older_than_ns,))

            _transaction(connection, delete)

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None
