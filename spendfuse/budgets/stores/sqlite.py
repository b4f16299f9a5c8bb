"""``sqlite:///path``: balances in one SQLite file, shared by the processes of one host.

Durability and multi-process safety come from SQLite itself: WAL journal, every read-modify-write in
a ``BEGIN IMMEDIATE`` transaction (so the admission check and the write hold the one write lock), and
crash-safe commits, so a process SIGKILLed mid-transaction leaves the previous state intact.

Schema (keys and amounts are always bound parameters, never spliced into SQL)::

    scopes   (key PRIMARY KEY, expires_at)                    -- one row per scope (its window end)
    balances (key, metric, spent, in_flight) PK (key, metric) -- in_flight mirrors the live leases
    leases   (lease_id, key, amounts JSON, expires_at) PK (lease_id, key)

``balances.in_flight`` always equals the sum of the scope's ``leases`` amounts: both change in the same
transaction.

Lock waits vs. the short store timeout: the configured ``timeout`` (0.25 s by default) is meant for a
network store that may be down, where failing closed fast is right. A local file cannot be "down"; a
lock wait is only queueing behind other writers, each holding the lock for well under a millisecond.
Failing closed after 0.25 s would turn a load spike into refused calls, so lock waits are bounded by
``max(timeout, 5 s)`` (override with ``?busy_timeout=SECONDS``). Past that, something holds the write
lock abnormally long (a stopped process mid-transaction, a full disk) and the call raises
``StoreUnavailableError`` for the breaker's fail-closed policy. A SIGKILLed holder releases its lock at
once, so it never causes that wait.

``synchronous=NORMAL`` by default: a commit survives any process crash; only an OS crash or power loss
can drop the last commits (the file stays consistent). ``?synchronous=full`` fsyncs every commit.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

from spendfuse.budgets.critical import GuardedLock
from spendfuse.budgets.stores._common import check_distinct, nonzero_amounts
from spendfuse.budgets.stores.base import (
    METRICS,
    BudgetStore,
    Denial,
    ScopeRequest,
    ScopeUsage,
    StoreUnavailableError,
    check_fits,
)
from spendfuse.budgets.stores.sqlite_files import create_private, parse_sqlite_url
from spendfuse.errors import ConfigError

MIN_BUSY_TIMEOUT = 5.0
GC_INTERVAL = 60.0
MAX_POLL_INTERVAL = 0.002
SCHEMA_VERSION = 1

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS scopes (
        key TEXT PRIMARY KEY NOT NULL,
        expires_at REAL
    )""",
    """CREATE TABLE IF NOT EXISTS balances (
        key TEXT NOT NULL,
        metric TEXT NOT NULL,
        spent INTEGER NOT NULL DEFAULT 0,
        in_flight INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (key, metric)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS leases (
        lease_id TEXT NOT NULL,
        key TEXT NOT NULL,
        amounts TEXT NOT NULL,
        expires_at REAL NOT NULL,
        PRIMARY KEY (lease_id, key)
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS leases_by_key ON leases (key, expires_at)",
    "CREATE INDEX IF NOT EXISTS leases_by_expiry ON leases (expires_at)",
    "CREATE INDEX IF NOT EXISTS scopes_by_expiry ON scopes (expires_at) WHERE expires_at IS NOT NULL",
)

# A scope key as bound to SQL: text, or bytes for a key UTF-8 cannot encode (see ``_bound``).
_Key = str | bytes


def _bound(key: str) -> _Key:
    """A scope key as SQLite stores it. Keys are text; a key with a lone surrogate (a user id decoded
    from a JSON ``"\\udc80"`` escape, say) has no UTF-8 form, so it is bound as the bytes of its
    ``surrogatepass`` encoding: a BLOB, which never equals any text key, so no two keys ever meet."""
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        return key.encode("utf-8", "surrogatepass")
    return key


# Connections inherited through fork() must never be used or closed by the child (SQLite forbids
# carrying a connection across fork); they are parked here so garbage collection cannot close them.
_ABANDONED: list[sqlite3.Connection] = []


class SQLiteStore(BudgetStore):
    def __init__(self, url: str, *, timeout: float = 0.25) -> None:
        self.url = url
        self.path, options = parse_sqlite_url(url)
        if not self.path.parent.is_dir():
            # A typo in a path must not scatter budget files in folders nobody looks at.
            raise ConfigError(
                f"store: the folder {str(self.path.parent)!r} of the budget database {str(self.path)!r} does "
                "not exist; create it first (spendfuse does not create folders) or point the store elsewhere"
            )
        busy = options.get("busy_timeout")
        self.busy_timeout = float(busy) if busy is not None else max(float(timeout), MIN_BUSY_TIMEOUT)
        self._synchronous = options.get("synchronous", "normal").upper()
        # One connection per process, one operation at a time: writes serialize on SQLite's lock anyway,
        # and queueing this process's threads on a Python lock leaves one of them at a time polling for
        # the file lock against other processes (see _begin). Guarded: a settlement the garbage
        # collector starts inside a transaction is deferred (see spendfuse.budgets.critical).
        self._lock = GuardedLock()
        self._conn: sqlite3.Connection | None = None
        self._pid = os.getpid()
        self._next_gc = 0.0

    # -- BudgetStore -------------------------------------------------------------------------

    def reserve(
        self, lease_id: str, scopes: Sequence[ScopeRequest], lease_expires_at: float, now: float
    ) -> Denial | None:
        check_distinct(scopes)
        reserved = [nonzero_amounts(request.amounts) for request in scopes]
        with self._transaction() as conn:
            if conn.execute("SELECT 1 FROM leases WHERE lease_id = ? LIMIT 1", (lease_id,)).fetchone():
                # A repeated reservation (a resend after an unanswered call) is already admitted.
                return None
            if now >= self._next_gc:
                self._next_gc = now + GC_INTERVAL
                self._collect(conn, now)
            keys = [_bound(request.key) for request in scopes]
            for request, key, amounts in zip(scopes, keys, reserved, strict=True):
                self._touch(conn, key, now)
                spent, in_flight = self._balance(conn, key)
                denial = check_fits(request.key, request.limits, amounts, spent, in_flight)
                if denial is not None:
                    # Committing keeps the leases the touch charged: they expired whatever the verdict.
                    return denial
            for request, key, amounts in zip(scopes, keys, reserved, strict=True):
                conn.execute(
                    "INSERT OR IGNORE INTO scopes (key, expires_at) VALUES (?, ?)",
                    (key, request.expires_at),
                )
                conn.executemany(
                    "INSERT INTO balances (key, metric, in_flight) VALUES (?, ?, ?) "
                    "ON CONFLICT (key, metric) DO UPDATE SET in_flight = in_flight + excluded.in_flight",
                    [(key, metric, amount) for metric, amount in amounts.items()],
                )
                conn.execute(
                    "INSERT INTO leases (lease_id, key, amounts, expires_at) VALUES (?, ?, ?, ?)",
                    (lease_id, key, json.dumps(amounts), float(lease_expires_at)),
                )
            return None

    def settle(self, lease_id: str, amounts: Mapping[str, int], now: float) -> bool:
        actual = nonzero_amounts(amounts)
        with self._transaction() as conn:
            rows = conn.execute("SELECT key, amounts FROM leases WHERE lease_id = ?", (lease_id,)).fetchall()
            if not rows:
                return False
            for key, raw in rows:
                reserved: dict[str, int] = json.loads(raw)
                changes = {metric: (0, -amount) for metric, amount in reserved.items()}
                for metric, amount in actual.items():
                    spent_delta, flight_delta = changes.get(metric, (0, 0))
                    changes[metric] = (spent_delta + amount, flight_delta)
                self._apply(conn, key, changes)
            conn.execute("DELETE FROM leases WHERE lease_id = ?", (lease_id,))
            return True

    def expire(self, now: float) -> int:
        with self._transaction() as conn:
            return self._expire_where(conn, "expires_at <= ?", (now,))

    def usage(self, key: str, now: float) -> ScopeUsage:
        bound = _bound(key)
        with self._transaction() as conn:
            self._touch(conn, bound, now)
            spent, in_flight = self._balance(conn, bound)
            (leases,) = conn.execute("SELECT COUNT(*) FROM leases WHERE key = ?", (bound,)).fetchone()
            usage = ScopeUsage()
            usage.spent.update(spent)
            usage.in_flight.update(in_flight)
            usage.leases = int(leases)
            return usage

    def reset(self, key: str) -> None:
        with self._transaction() as conn:
            self._forget(conn, _bound(key))

    def close(self) -> None:
        if self._pid != os.getpid():
            self._after_fork()
            return
        with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                conn.close()

    # -- internals (lock held, inside a transaction) -----------------------------------------

    def _touch(self, conn: sqlite3.Connection, key: _Key, now: float) -> None:
        """Charge the scope's expired leases; forget the scope when its window ended and it is idle."""
        self._expire_where(conn, "key = ? AND expires_at <= ?", (key, now))
        row = conn.execute("SELECT expires_at FROM scopes WHERE key = ?", (key,)).fetchone()
        if row is None or row[0] is None or row[0] > now:
            return
        if conn.execute("SELECT 1 FROM leases WHERE key = ? LIMIT 1", (key,)).fetchone() is None:
            self._forget(conn, key)

    def _expire_where(self, conn: sqlite3.Connection, where: str, params: tuple[object, ...]) -> int:
        lease_ids = [row[0] for row in conn.execute(f"SELECT DISTINCT lease_id FROM leases WHERE {where}", params)]
        for lease_id in lease_ids:
            # A lease is charged on every scope it holds, like the memory store, even when only one of
            # them was touched.
            for key, raw in conn.execute("SELECT key, amounts FROM leases WHERE lease_id = ?", (lease_id,)).fetchall():
                reserved: dict[str, int] = json.loads(raw)
                self._apply(conn, key, {metric: (amount, -amount) for metric, amount in reserved.items()})
            conn.execute("DELETE FROM leases WHERE lease_id = ?", (lease_id,))
        return len(lease_ids)

    @staticmethod
    def _apply(conn: sqlite3.Connection, key: _Key, changes: Mapping[str, tuple[int, int]]) -> None:
        conn.executemany(
            "INSERT INTO balances (key, metric, spent, in_flight) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (key, metric) DO UPDATE SET spent = spent + excluded.spent, "
            "in_flight = in_flight + excluded.in_flight",
            [(key, metric, spent, flight) for metric, (spent, flight) in changes.items() if spent or flight],
        )

    @staticmethod
    def _balance(conn: sqlite3.Connection, key: _Key) -> tuple[dict[str, int], dict[str, int]]:
        spent = dict.fromkeys(METRICS, 0)
        in_flight = dict.fromkeys(METRICS, 0)
        for metric, used, flying in conn.execute("SELECT metric, spent, in_flight FROM balances WHERE key = ?", (key,)):
            spent[metric] = int(used)
            in_flight[metric] = int(flying)
        return spent, in_flight

    @staticmethod
    def _forget(conn: sqlite3.Connection, key: _Key) -> None:
        conn.execute("DELETE FROM leases WHERE key = ?", (key,))
        conn.execute("DELETE FROM balances WHERE key = ?", (key,))
        conn.execute("DELETE FROM scopes WHERE key = ?", (key,))

    def _collect(self, conn: sqlite3.Connection, now: float) -> None:
        """Charge every expired lease, then drop idle scopes whose window ended."""
        self._expire_where(conn, "expires_at <= ?", (now,))
        idle = (
            "SELECT key FROM scopes WHERE expires_at IS NOT NULL AND expires_at <= ? "
            "AND NOT EXISTS (SELECT 1 FROM leases WHERE leases.key = scopes.key)"
        )
        conn.execute(f"DELETE FROM balances WHERE key IN ({idle})", (now,))
        conn.execute(f"DELETE FROM scopes WHERE key IN ({idle})", (now,))

    # -- connection and transactions ---------------------------------------------------------

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        if self._pid != os.getpid():
            self._after_fork()
        deadline = time.monotonic() + self.busy_timeout
        if not self._lock.acquire(timeout=self.busy_timeout):
            raise StoreUnavailableError(
                f"sqlite store {self.path}: waited {self.busy_timeout:g}s for this process's other callers"
            )
        try:
            conn = self._connection()
            self._begin(conn, deadline)
            try:
                yield conn
            except BaseException as exc:
                self._rollback(conn)
                if _is_store_failure(exc):
                    raise self._unavailable(exc) from exc
                raise
            try:
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback(conn)
                raise self._unavailable(exc) from exc
        finally:
            self._lock.release()

    def _begin(self, conn: sqlite3.Connection, deadline: float) -> None:
        """Take the write lock, polling: SQLite's own busy handler sleeps 1, 2, 5 ... up to 100 ms
        between tries, which under contention between processes turns a sub-millisecond wait into tens
        of milliseconds. The connection's busy timeout is 0, so each try returns at once."""
        delay = 0.00005
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                remaining = deadline - time.monotonic()
                if not _is_busy(exc) or remaining <= 0:
                    raise self._unavailable(exc) from exc
            time.sleep(min(delay * (0.5 + random.random()), remaining))
            delay = min(delay * 2, MAX_POLL_INTERVAL)

    def _rollback(self, conn: sqlite3.Connection) -> None:
        try:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        except sqlite3.Error:
            # The connection is in an unknown state: drop it, the next call opens a fresh one.
            self._conn = None
            conn.close()

    def _unavailable(self, exc: BaseException) -> StoreUnavailableError:
        return StoreUnavailableError(f"sqlite store {self.path}: {exc}")

    def _after_fork(self) -> None:
        # The parent's connection belongs to the parent, and its lock may have been held by a thread
        # that does not exist here.
        if self._conn is not None:
            _ABANDONED.append(self._conn)
        self._conn = None
        self._lock = GuardedLock()
        self._pid = os.getpid()

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            try:
                self._conn = self._open()
            except (sqlite3.Error, OSError) as exc:
                raise self._unavailable(exc) from exc
        return self._conn

    def _open(self) -> sqlite3.Connection:
        """A connection to a database in WAL mode with the current schema.

        Processes that open a new database at the same moment race to switch it to WAL and to
        create the schema; SQLite answers a lock upgrade it cannot wait for without deadlocking
        with an immediate "database is locked", not with its busy handler. So that setup is
        retried until the busy timeout, as a transaction's write lock is (``_begin``).
        """
        create_private(self.path)
        deadline = time.monotonic() + self.busy_timeout
        delay = 0.001
        while True:
            try:
                return self._setup()
            except sqlite3.OperationalError as exc:
                remaining = deadline - time.monotonic()
                if not _is_busy(exc) or remaining <= 0:
                    raise
            time.sleep(min(delay * (0.5 + random.random()), remaining))
            delay = min(delay * 2, MAX_POLL_INTERVAL)

    def _setup(self) -> sqlite3.Connection:
        conn = sqlite3.connect(str(self.path), timeout=self.busy_timeout, isolation_level=None, check_same_thread=False)
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            # journal_mode is persistent in the file; switching needs a moment alone with it.
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise sqlite3.OperationalError(f"could not switch {self.path} to WAL (journal_mode={mode})")
            conn.execute(f"PRAGMA synchronous = {self._synchronous}")
            conn.execute("BEGIN IMMEDIATE")
            try:
                (version,) = conn.execute("PRAGMA user_version").fetchone()
                if version > SCHEMA_VERSION:
                    raise sqlite3.OperationalError(
                        f"{self.path} has budget schema v{version}; this spendfuse knows v{SCHEMA_VERSION}"
                    )
                for statement in _SCHEMA:
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            # From here on only BEGIN IMMEDIATE waits for the lock (see _begin): once it holds the write
            # lock, a WAL transaction takes no other lock (its checkpoints are passive).
            conn.execute("PRAGMA busy_timeout = 0")
        except BaseException:
            conn.close()
            raise
        return conn


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (5, 6)  # SQLITE_BUSY, SQLITE_LOCKED (named in the module from 3.11)
    return "locked" in str(exc) or "busy" in str(exc)


def _is_store_failure(exc: BaseException) -> bool:
    """Errors of the file or the lock (not of our SQL) that the breaker's failure policy handles."""
    if isinstance(exc, (sqlite3.ProgrammingError, sqlite3.IntegrityError, sqlite3.InterfaceError)):
        return False
    return isinstance(exc, sqlite3.Error)
