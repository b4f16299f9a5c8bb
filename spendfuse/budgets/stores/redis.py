"""``redis://`` / ``rediss://``: balances in Redis, shared by a fleet.

``redis://[user:pass@]host[:port][/db][?timeout=SECONDS&prefix=NAME&socket_timeout=...]``; ``rediss://``
for TLS. Reserve, settle, usage and each scope of ``expire`` are one Lua script each (EVALSHA, loaded
again transparently on NOSCRIPT after a server restart), so one round trip and atomic. The key layout
and the scripts are in ``redis_scripts``.

Timeouts and failures: connect and read timeouts are the store ``timeout`` (0.25 s by default), and
nothing is retried on the hot path: a refused connection, a timeout or any Redis error raises
``StoreUnavailableError`` at once, for the breaker's store-failure policy. Pooled connections left dead
by a server restart are detected and reopened by redis-py when they are next taken from the pool, so
calls flow again as soon as the server answers. Each store keeps at most 32 connections
(``?max_connections=N``); a caller thread waits for a free one at most the store timeout. A reserve that
timed out may still have been applied by the server: its lease id stays known here, so a release of it
afterwards refunds it; otherwise it expires and is charged at its reserved amount, the safe direction.

Lease routing: ``settle(lease_id)`` must find the scopes the lease was reserved on, and a global
lease-id index would be a key outside the scopes' hash slot. So each store object remembers, for the
leases it reserved, the scopes' hash tags, and settle sends the script straight to them. A lease is
therefore settled or released by the store object (the process) that reserved it, which is what the
breaker does; a settle for a lease this object never reserved returns False, and the lease is charged at
its reserved amount when it expires.

Redis Cluster: the keys of one scope share a hash tag, so a one-scope reservation (what the breaker
sends: run scopes stay in process memory, only the user window is remote) touches one slot and is
cluster-safe. A reservation over several scopes spans several slots; it is atomic only on a single
node (or if every scope hashes to one slot), so several scopes per reservation need a single node.
This client is a single-node client.

Persistence: the balances are only as durable as the server's persistence. Without AOF (``appendonly
yes``), a restart forgets all spend and leases, and budgets start over from zero: run Redis with AOF
for budgets that must survive a restart.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

from spendfuse.budgets.critical import GuardedLock, section
from spendfuse.budgets.stores._common import check_distinct, nonzero_amounts, redacted_url
from spendfuse.budgets.stores.base import (
    BudgetStore,
    Denial,
    ScopeRequest,
    ScopeUsage,
    StoreUnavailableError,
)
from spendfuse.budgets.stores.redis_scripts import EXPIRE, RESERVE, SETTLE, USAGE
from spendfuse.errors import ConfigError

REDIS_URL_FORM = "redis://[user:pass@]host[:port][/db][?timeout=SECONDS&prefix=NAME] or rediss://... (TLS)"
DEFAULT_PREFIX = "spendfuse:"
TTL_MARGIN_MS = 60_000
DEFAULT_MAX_CONNECTIONS = 32
# Leases remembered for settle are forgotten this long after their expiry (they are charged by then).
ROUTE_GRACE = 3600.0

# Query options handed to redis-py besides our own (timeout, prefix).
_CLIENT_OPTIONS = frozenset(
    {
        "socket_timeout",
        "socket_connect_timeout",
        "socket_keepalive",
        "health_check_interval",
        "max_connections",
        "client_name",
        "protocol",
        "ssl_cert_reqs",
        "ssl_ca_certs",
        "ssl_ca_path",
        "ssl_certfile",
        "ssl_keyfile",
        "ssl_check_hostname",
        "ssl_min_version",
    }
)


def parse_redis_url(url: str, timeout: float) -> tuple[dict[str, Any], float, str]:
    """Validate a store URL; returns (redis-py connection kwargs, timeout, key prefix)."""
    try:
        from redis.connection import parse_url
    except ImportError:  # pragma: no cover - the redis extra is not installed
        raise ConfigError(
            f"store: {redacted_url(url)!r} needs the redis client; install it with pip install 'spendfuse[redis]'"
        ) from None

    def bad(why: str) -> NoReturn:
        raise ConfigError(f"store: {why} in {redacted_url(url)!r}; accepted: {REDIS_URL_FORM}")

    if not isinstance(url, str):
        raise ConfigError(f"store: {url!r} is not a store URL; accepted: {REDIS_URL_FORM}")
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("redis", "rediss"):
        bad(f"unsupported scheme {parts.scheme!r} (redis+sentinel is not supported yet)")
    try:
        port = parts.port
    except ValueError:
        bad("the port is not a number between 0 and 65535")
    if port == 0:
        bad("the port must not be 0")
    path = parts.path.strip("/")
    if path and not path.isdigit():
        bad(f"the path must be a database number, not {parts.path!r}")
    query = parse_qs(parts.query, keep_blank_values=True)
    own: dict[str, str] = {}
    for name in ("timeout", "prefix"):
        if name in query:
            own[name] = query.pop(name)[-1]
    unknown = sorted(set(query) - _CLIENT_OPTIONS)
    if unknown:
        bad(f"unknown option(s) {', '.join(unknown)}")
    if "timeout" in own:
        try:
            timeout = float(own["timeout"])
        except ValueError:
            bad("timeout must be a number of seconds")
    if not timeout > 0:
        bad("timeout must be > 0 seconds")
    prefix = own.get("prefix", DEFAULT_PREFIX)
    if "{" in prefix or "}" in prefix:
        # The first {...} of a key is its Cluster hash tag: the prefix must not bring its own.
        bad("prefix must not contain braces")
    if prefix and not prefix.endswith(":"):
        prefix += ":"
    client_url = urlunsplit(
        (parts.scheme.lower(), parts.netloc, parts.path, urlencode(query, doseq=True), parts.fragment)
    )
    try:
        kwargs: dict[str, Any] = parse_url(client_url)  # type: ignore[no-untyped-call]
    except ValueError as exc:
        bad(str(exc))
    kwargs.setdefault("socket_timeout", timeout)
    kwargs.setdefault("socket_connect_timeout", timeout)
    return kwargs, timeout, prefix


def scope_tag(key: str) -> str:
    """The fixed-length hex name of a scope key: no user-supplied character ever reaches a key name."""
    return hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=20).hexdigest()


class RedisStore(BudgetStore):
    def __init__(self, url: str, *, timeout: float = 0.25) -> None:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self.url = url
        kwargs, self.timeout, self.prefix = parse_redis_url(url, timeout)
        # No retries: a retry doubles the time to a verdict, and the breaker's policy decides instead.
        # A bounded pool: a fleet of processes times many caller threads must not each hold a socket to
        # one server; a caller waits for a free connection at most the store timeout.
        kwargs.setdefault("max_connections", DEFAULT_MAX_CONNECTIONS)
        pool = redis.BlockingConnectionPool(  # type: ignore[no-untyped-call]
            retry=Retry(NoBackoff(), 0), timeout=self.timeout, **kwargs
        )
        self._client = redis.Redis(connection_pool=pool)
        self._reserve = self._client.register_script(RESERVE)
        self._settle = self._client.register_script(SETTLE)
        self._usage = self._client.register_script(USAGE)
        self._expire = self._client.register_script(EXPIRE)
        self._routes: dict[str, tuple[tuple[str, ...], float]] = {}
        self._last_scopes: tuple[tuple[ScopeRequest, ...], tuple[list[str], list[str], list[str | bytes]]] = (
            (),
            ([], [], []),
        )
        self._routes_lock = GuardedLock()
        self._next_prune = 0.0

    def _keys(self, tag: str) -> list[str]:
        base = f"{self.prefix}{{{tag}}}:"
        return [base + "s", base + "l", base + "r"]

    # -- BudgetStore -------------------------------------------------------------------------

    def reserve(
        self, lease_id: str, scopes: Sequence[ScopeRequest], lease_expires_at: float, now: float
    ) -> Denial | None:
        if not scopes:
            raise ValueError("a reservation needs at least one scope")
        tags, keys, scope_args = self._scope_args(scopes)
        args: list[str | bytes] = [self.prefix, repr(float(now)), repr(float(lease_expires_at)), lease_id]
        args.append(str(TTL_MARGIN_MS))
        args += scope_args
        # Remembered before the call: if the answer is lost, a later release still finds the lease.
        self._remember(lease_id, tuple(tags), lease_expires_at, now)
        try:
            with section:  # redis-py's pool and connection locks are held inside
                reply = self._reserve(keys=keys, args=args)
        except Exception as exc:
            self._raise_unavailable(exc)
        if int(reply[0]) == 1:
            return None
        self._forget(lease_id)
        _, index, metric, limit, spent, in_flight, requested = reply
        return Denial(
            scopes[int(index) - 1].key,
            _text(metric),
            int(limit),
            int(spent),
            int(in_flight),
            int(requested),
        )

    def _scope_args(self, scopes: Sequence[ScopeRequest]) -> tuple[list[str], list[str], list[str | bytes]]:
        """The script's keys and per-scope arguments, which depend on the requests alone.

        An agent loop resends the same request objects (the breaker caches one per scope while the
        worst case stays the same): their hashing, JSON and encoding are reused, not redone per call.
        """
        last, cached = self._last_scopes
        if len(last) == len(scopes) and all(a is b for a, b in zip(last, scopes, strict=False)):
            return cached
        check_distinct(scopes)
        tags = [scope_tag(request.key) for request in scopes]
        keys: list[str] = []
        args: list[str | bytes] = []
        for index, request in enumerate(scopes):
            keys += self._keys(tags[index])
            amounts = {metric: str(amount) for metric, amount in nonzero_amounts(request.amounts).items()}
            limits = [[metric, str(int(limit))] for metric, limit in request.limits.items()]
            record = {"a": amounts, "o": tags[:index] + tags[index + 1 :]}
            window_end = "" if request.expires_at is None else repr(float(request.expires_at))
            # Stored as is (HSETNX); surrogatepass: a key with a lone surrogate has no strict UTF-8 form.
            key = request.key.encode("utf-8", "surrogatepass")
            args += [tags[index], key, window_end, json.dumps(limits), json.dumps(record)]
        built = (tags, keys, args)
        self._last_scopes = (tuple(scopes), built)  # one tuple assignment: threads see old or new
        return built

    def settle(self, lease_id: str, amounts: Mapping[str, int], now: float) -> bool:
        actual = {metric: str(amount) for metric, amount in nonzero_amounts(amounts).items()}
        with self._routes_lock:
            route = self._routes.pop(lease_id, None)
        if route is None:
            return False
        tags, _ = route
        keys = [key for tag in tags for key in self._keys(tag)]
        args = [self.prefix, repr(float(now)), lease_id, json.dumps(actual), *tags]
        try:
            with section:
                found = self._settle(keys=keys, args=args)
        except Exception as exc:
            # The settle may not have happened: keep the route so that a retry can still find the lease.
            with self._routes_lock:
                self._routes.setdefault(lease_id, route)
            self._raise_unavailable(exc)
        return int(found) > 0

    def expire(self, now: float) -> int:
        # Scopes are only reachable by scanning: an index of them would be a cross-slot key. Touched
        # scopes expire their leases on their own; this sweep is for the idle ones.
        pattern = _glob_escape(self.prefix) + "{*}:l"
        charged = 0
        try:
            with section:
                for name in self._client.scan_iter(match=pattern, count=1000, _type="zset"):
                    text = _text(name)
                    tag = text[len(self.prefix) + 1 : text.index("}", len(self.prefix))]
                    charged += int(self._expire(keys=self._keys(tag), args=[self.prefix, repr(float(now)), tag]))
        except Exception as exc:
            self._raise_unavailable(exc)
        return charged

    def usage(self, key: str, now: float) -> ScopeUsage:
        tag = scope_tag(key)
        try:
            with section:
                fields, leases = self._usage(keys=self._keys(tag), args=[self.prefix, repr(float(now)), tag])
        except Exception as exc:
            self._raise_unavailable(exc)
        usage = ScopeUsage()
        for name, value in zip(fields[::2], fields[1::2], strict=True):
            field = _text(name)
            if field.startswith("s:"):
                usage.spent[field[2:]] = int(value)
            elif field.startswith("f:"):
                usage.in_flight[field[2:]] = int(value)
        usage.leases = int(leases)
        return usage

    def reset(self, key: str) -> None:
        try:
            with section:
                self._client.delete(*self._keys(scope_tag(key)))
        except Exception as exc:
            self._raise_unavailable(exc)

    def close(self) -> None:
        with section:
            self._client.close()
            self._client.connection_pool.disconnect()

    # -- internals ---------------------------------------------------------------------------

    def _remember(self, lease_id: str, tags: tuple[str, ...], lease_expires_at: float, now: float) -> None:
        with self._routes_lock:
            self._routes[lease_id] = (tags, lease_expires_at)
            if now >= self._next_prune:
                self._next_prune = now + 60.0
                stale = [lid for lid, (_, expiry) in self._routes.items() if expiry + ROUTE_GRACE < now]
                for lid in stale:
                    del self._routes[lid]

    def _forget(self, lease_id: str) -> None:
        with self._routes_lock:
            self._routes.pop(lease_id, None)

    def _raise_unavailable(self, exc: Exception) -> NoReturn:
        from redis.exceptions import RedisError

        if isinstance(exc, (RedisError, OSError)):
            raise StoreUnavailableError(f"redis store {redacted_url(self.url)}: {exc}") from exc
        raise exc


def _text(value: bytes | str) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value


def _glob_escape(text: str) -> str:
    return "".join("\\" + char if char in "*?[]\\" else char for char in text)


__all__ = ["REDIS_URL_FORM", "RedisStore", "parse_redis_url", "scope_tag"]
