"""The durable tier (L3): :class:`PostgresTier` over ``ai_cache_entries``, and :class:`AccessCounter`.

One row per key (unique ``cache_key``), written by upsert. A read is one prepared
``SELECT`` through a cursor kept on each pooled autocommit connection
(:class:`TierConnection`); the row is decoded straight into a
:class:`~wedcache.entry.CacheEntry` (float epochs from the server, uuids and enums as text,
JSONB parsed by orjson). ``access_count`` and ``last_accessed_at`` are not updated per read: hits are
buffered in an :class:`AccessCounter` and written by one batched ``UPDATE`` every
``flush_interval`` seconds from a daemon thread, and on :meth:`PostgresTier.close`.

Invalidation is a single ``DELETE … WHERE`` built from the :class:`~wedcache.entry.Selector`
with the same meaning as :meth:`Selector.matches`; glob patterns become ``LIKE`` patterns
(or, for a ``[set]``, an anchored regular expression). :meth:`PostgresTier.entries` lists an
organization's rows page by page in key order (its ``organization_id`` index). Every driver error, pool timeout
and statement timeout becomes :class:`~wedcache.errors.TierUnavailable`; the pool replaces
broken connections by itself, so the tier recovers once PostgreSQL is back.
"""
from __future__ import annotations

import fnmatch
import re
import threading
from contextlib import contextmanager
from typing import Any, Iterator

import orjson
import psycopg
import psycopg_pool
from psycopg import sql
from psycopg.types.json import Jsonb, set_json_dumps, set_json_loads
from psycopg.types.string import TextLoader

from ..clock import Clock, SystemClock
from ..entry import CacheEntry, Selector
from ..errors import TierUnavailable
from . import register_tier

_ERRORS = (psycopg.Error, psycopg_pool.PoolTimeout, OSError)
RECONNECT_TIMEOUT = 2.0
"""Seconds the pool keeps retrying one failed connect before a new request starts afresh."""

# Columns in CacheEntry's positional order. Casts cost server time, so there are none: times
# come as float8 epochs (date_part, not the slower numeric extract), uuids as text (the pool's
# connections load them with a text loader), enums as text, vendor_types as its array literal.
_COLUMNS = """cache_key, cache_value, date_part('epoch', created_at), date_part('epoch', expires_at),
  organization_id, cache_type, query_text, wedding_id, coalesce(market_tier, 'tier_3'), vendor_types,
  wedding_context"""
_SELECT = f"SELECT {_COLUMNS}\nFROM ai_cache_entries WHERE cache_key = %s"
# One page of an organization's rows in key order (keyset pagination: no cursor held between pages).
_PAGE = (f"SELECT {_COLUMNS}\nFROM ai_cache_entries WHERE organization_id = %s AND cache_key > %s "
         "ORDER BY cache_key LIMIT %s")

# (column, placeholder) written by set(); every column but the key is replaced on conflict.
_WRITTEN = (
    ("cache_key", "%s"), ("cache_value", "%s"), ("ttl_seconds", "%s"),
    ("created_at", "to_timestamp(%s)"), ("expires_at", "to_timestamp(%s)"), ("wedding_id", "%s"),
    ("organization_id", "%s"), ("cache_type", "%s"), ("wedding_context", "%s"),
    ("market_tier", "%s"), ("vendor_type", "%s"), ("vendor_types", "%s::vendor_type_enum[]"),
    ("query_text", "%s"),
)
_UPSERT = (
    f"INSERT INTO ai_cache_entries ({', '.join(c for c, _ in _WRITTEN)}, last_accessed_at)"
    f" VALUES ({', '.join(p for _, p in _WRITTEN)}, to_timestamp(%s))"
    " ON CONFLICT (cache_key) DO UPDATE SET "
    + ", ".join(f"{c} = EXCLUDED.{c}" for c, _ in _WRITTEN[1:])
)

_FLUSH = """UPDATE ai_cache_entries AS e
SET access_count = coalesce(e.access_count, 0) + u.hits, last_accessed_at = to_timestamp(u.seen)
FROM unnest(%s::text[], %s::int[], %s::float8[]) AS u(cache_key, hits, seen)
WHERE e.cache_key = u.cache_key"""

_ENSURE_ORG = "INSERT INTO organizations (id) VALUES (%s) ON CONFLICT DO NOTHING"
_ENSURE_WEDDING = "INSERT INTO weddings (id, organization_id) VALUES (%s, %s) ON CONFLICT DO NOTHING"


class TierConnection(psycopg.Connection):
    """A pooled connection that keeps one cursor for :meth:`PostgresTier.get`.

    A fresh cursor resolves a loader per column on every query; a kept one resolves them once.
    """

    read_cursor: psycopg.Cursor


class AccessCounter:
    """Hits per key and the clock time of the latest one, buffered in memory (thread-safe)."""

    def __init__(self, clock: Clock):
        self.clock = clock
        self._lock = threading.Lock()
        self._hits: dict[str, int] = {}
        self._seen: dict[str, float] = {}

    def hit(self, key: str) -> None:
        now = self.clock.now()
        with self._lock:
            self._hits[key] = self._hits.get(key, 0) + 1
            self._seen[key] = now

    def take(self) -> tuple[list[str], list[int], list[float]]:
        """Empty the buffer; returns parallel lists (keys sorted, so batches lock rows in order)."""
        with self._lock:
            hits, seen = self._hits, self._seen
            self._hits, self._seen = {}, {}
        keys = sorted(hits)
        return keys, [hits[k] for k in keys], [seen[k] for k in keys]

    def restore(self, keys: list[str], hits: list[int], seen: list[float]) -> None:
        """Put back a batch that could not be written."""
        with self._lock:
            for key, count, when in zip(keys, hits, seen):
                self._hits[key] = self._hits.get(key, 0) + count
                self._seen[key] = max(self._seen.get(key, when), when)


class PostgresTier:
    """L3: entries as rows of ``ai_cache_entries`` (run :func:`wedcache.migrations.apply_migrations` first).

    Times are ``TIMESTAMPTZ`` columns, so an entry comes back with ``created_at`` and
    ``expires_at`` rounded to the microsecond; every other field is returned as stored.

    :param url: a ``postgresql://`` URL.
    :param timeout_ms: per-statement timeout of reads and writes; a pool checkout waits at
        most a small multiple of it, so a down server is detected fast.
    :param pool_max: most connections held open.
    :param clock: the time ``last_accessed_at`` records.
    :param flush_interval: seconds between batched writes of access counts.
    :param bulk_timeout_ms: statement timeout of invalidation, purge and stats (many rows).
    """

    name = "postgres"

    def __init__(self, url: str, *, timeout_ms: float = 200, pool_max: int = 10, clock: Clock | None = None,
                 flush_interval: float = 1.0, bulk_timeout_ms: int = 30_000):
        self.url = url
        self.clock = clock or SystemClock()
        self.bulk_timeout_ms = bulk_timeout_ms
        self._checkout_timeout = max(0.1, 1.5 * timeout_ms / 1000)
        self._ensured: set[tuple[str, str]] = set()
        self._access = AccessCounter(self.clock)
        self._pool = _open_pool(url, int(timeout_ms), pool_max, self._checkout_timeout)
        self._warm_up()
        self._stopping = threading.Event()
        self._flusher = threading.Thread(target=self._flush_loop, args=(flush_interval,),
                                         name="wedcache-postgres-flush", daemon=True)
        self._flusher.start()

    def get(self, key: str) -> CacheEntry | None:
        pool = self._pool
        try:
            conn = pool.getconn(self._checkout_timeout)
            try:
                cursor = conn.read_cursor
                cursor.execute(_SELECT, (key,))
                row = cursor.fetchone()
            finally:
                pool.putconn(conn)
        except _ERRORS as exc:
            raise self._unavailable(exc) from exc
        if row is None:
            return None
        self._access.hit(key)
        return _entry(row)

    def set(self, entry: CacheEntry) -> None:
        params = _row_params(entry)
        with self._connection() as conn:
            self._ensure_parents(conn, entry)
            try:
                conn.execute(_UPSERT, params)
            except psycopg.errors.ForeignKeyViolation:
                self._ensured.difference_update({("org", entry.org_id), ("wedding", entry.wedding_id)})
                self._ensure_parents(conn, entry)
                conn.execute(_UPSERT, params)

    def delete(self, key: str) -> bool:
        with self._connection() as conn:
            return conn.execute("DELETE FROM ai_cache_entries WHERE cache_key = %s", (key,)).rowcount > 0

    def invalidate(self, selector: Selector) -> int:
        where, params = selector_where(selector)
        if where is None:
            return 0
        return self._bulk(sql.SQL("DELETE FROM ai_cache_entries WHERE {}").format(where), params)

    def entries(self, org_id: str, page: int = 500) -> Iterator[CacheEntry]:
        """``org_id``'s rows, ``page`` at a time in key order (reads are not counted as hits)."""
        after = ""
        while True:
            with self._connection() as conn:
                rows = conn.execute(_PAGE, (org_id, after, page)).fetchall()
            yield from map(_entry, rows)
            if len(rows) < page:
                return
            after = rows[-1][0]

    def purge_expired(self, before: float) -> int:
        """Delete rows that expired before ``before`` (epoch seconds); garbage collection only."""
        return self._bulk("DELETE FROM ai_cache_entries WHERE expires_at < to_timestamp(%s)", (before,))

    def count(self, org_id: str | None = None) -> int:
        """Rows stored, for one organization or all."""
        if org_id is None:
            return self._bulk("SELECT count(*) FROM ai_cache_entries", ())[0]
        return self._bulk("SELECT count(*) FROM ai_cache_entries WHERE organization_id = %s", (org_id,))[0]

    def stats(self) -> dict[str, Any]:
        entries, size = self._bulk("SELECT count(*), pg_total_relation_size('ai_cache_entries') "
                                   "FROM ai_cache_entries", ())
        return {"entries": entries, "bytes": size}

    def flush_access_counts(self) -> int:
        """Write buffered hits in one ``UPDATE``; returns how many keys it covered."""
        batch = self._access.take()
        if not batch[0]:
            return 0
        try:
            with self._connection() as conn:
                conn.execute(_FLUSH, batch)
        except TierUnavailable:
            self._access.restore(*batch)
            raise
        return len(batch[0])

    def wait_ready(self, timeout: float = 10.0) -> None:
        """Block until the pool holds working connections again (after a server restart).

        :raises TierUnavailable: when none can be made within ``timeout`` seconds.
        """
        try:
            self._pool.check()
            self._pool.wait(timeout)
        except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
            raise TierUnavailable(self.name, exc) from exc

    def close(self) -> None:
        """Stop the flusher, write the last access counts (if the server answers), close the pool."""
        self._stopping.set()
        self._flusher.join()
        try:
            self.flush_access_counts()
        except TierUnavailable:
            pass
        self._pool.close()

    # -- internals ---------------------------------------------------------------------
    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection]:
        try:
            with self._pool.connection(self._checkout_timeout) as conn:
                yield conn
        except _ERRORS as exc:
            raise self._unavailable(exc) from exc

    def _unavailable(self, exc: Exception) -> TierUnavailable:
        """``exc`` as the tier's error; a broken connection (a server restart) also makes the
        pool test its idle connections and replace the dead ones, so the failures after a
        restart are not one per pooled connection. (Checking at every checkout would cost a
        round trip per hit.)"""
        if isinstance(exc, psycopg.OperationalError):
            try:
                self._pool.check()
            except _ERRORS:
                pass
        return TierUnavailable(self.name, exc)

    def _warm_up(self) -> None:
        """Wait (one checkout timeout at most) for the first connection; a down server is fine."""
        try:
            self._pool.putconn(self._pool.getconn(self._checkout_timeout))
        except _ERRORS:
            pass

    def _bulk(self, query, params) -> Any:
        """Run a statement over many rows with the longer ``bulk_timeout_ms``: its first row, or its rowcount."""
        with self._connection() as conn, conn.transaction():
            conn.execute("SELECT set_config('statement_timeout', %s, true)", (str(self.bulk_timeout_ms),))
            cursor = conn.execute(query, params)
            return cursor.fetchone() if cursor.description else cursor.rowcount

    def _ensure_parents(self, conn: psycopg.Connection, entry: CacheEntry) -> None:
        """Insert the organization (and wedding) rows the entry references, once per process."""
        if ("org", entry.org_id) not in self._ensured:
            conn.execute(_ENSURE_ORG, (entry.org_id,))
            self._ensured.add(("org", entry.org_id))
        if entry.wedding_id and ("wedding", entry.wedding_id) not in self._ensured:
            conn.execute(_ENSURE_WEDDING, (entry.wedding_id, entry.org_id))
            self._ensured.add(("wedding", entry.wedding_id))

    def _flush_loop(self, interval: float) -> None:
        while not self._stopping.wait(interval):
            try:
                self.flush_access_counts()
            except TierUnavailable:
                pass  # kept in the buffer; the next round retries


def _open_pool(url: str, timeout_ms: int, pool_max: int, checkout_timeout: float) -> psycopg_pool.ConnectionPool:
    kwargs = {"autocommit": True, "connect_timeout": 2, "application_name": "wedcache",
              "options": f"-c statement_timeout={timeout_ms}"}
    return psycopg_pool.ConnectionPool(url, connection_class=TierConnection, kwargs=kwargs, min_size=1,
                                       max_size=pool_max, open=True,
                                       timeout=checkout_timeout, reconnect_timeout=RECONNECT_TIMEOUT,
                                       configure=_configure, name="wedcache-postgres")


def _configure(conn: TierConnection) -> None:
    """JSON through orjson, uuids as plain strings, and the kept read cursor."""
    set_json_loads(orjson.loads, conn)
    set_json_dumps(orjson.dumps, conn)
    conn.adapters.register_loader("uuid", TextLoader)
    conn.read_cursor = conn.cursor()


def _entry(row: tuple) -> CacheEntry:
    """A :data:`_COLUMNS` row as an entry."""
    return CacheEntry(*row[:9], _enum_array(row[9]), row[10])


def _enum_array(literal: str) -> tuple[str, ...]:
    """``'{venue,florist}'`` as ``('venue', 'florist')`` (enum labels need no quoting)."""
    return tuple(literal[1:-1].split(",")) if len(literal) > 2 else ()


def _row_params(entry: CacheEntry) -> tuple:
    """Parameters of ``_UPSERT`` for ``entry`` (in ``_WRITTEN`` order, then last_accessed_at)."""
    context = Jsonb(entry.context) if entry.context is not None else None
    return (entry.key, Jsonb(entry.value), round(entry.expires_at - entry.created_at), entry.created_at,
            entry.expires_at, entry.wedding_id, entry.org_id, entry.cache_type, context, entry.market_tier,
            entry.vendor_types[0] if entry.vendor_types else None, list(entry.vendor_types), entry.query,
            entry.created_at)


# -- selectors -> SQL ----------------------------------------------------------------------
def selector_where(selector: Selector) -> tuple[sql.Composable | None, list]:
    """The ``WHERE`` condition and parameters equivalent to ``selector.matches``.

    ``None`` when the selector can match nothing (every pattern has a set like ``[z-a]``
    that matches no character).
    """
    clauses: list[sql.Composable] = []
    params: list = []

    def where(clause: str, value) -> None:
        clauses.append(sql.SQL(clause))
        params.append(value)

    if selector.org_id is not None:
        where("organization_id = %s", selector.org_id)
    if selector.wedding_id is not None:
        where("wedding_id = %s", selector.wedding_id)
    if selector.vendor_types:
        where("vendor_types && %s::vendor_type_enum[]", list(selector.vendor_types))
    if selector.market_tiers:
        where("market_tier = ANY(%s::market_tier_enum[])", list(selector.market_tiers))
    if selector.cache_types:
        where("cache_type = ANY(%s::cache_type_enum[])", list(selector.cache_types))
    if selector.patterns:
        likes, regexes = patterns_sql(selector.patterns)
        if not likes and not regexes:
            return None, []
        clauses.append(sql.SQL("(query_text LIKE ANY(%s::text[]) OR query_text ~ ANY(%s::text[]))"))
        params += [likes, regexes]
    return sql.SQL(" AND ").join(clauses or [sql.SQL("TRUE")]), params


def patterns_sql(patterns) -> tuple[list[str], list[str]]:
    """Shell globs as SQL: ``LIKE`` patterns, and anchored regexes for globs with a ``[set]``."""
    likes, regexes = [], []
    for pattern in patterns:
        kind, text = glob_to_sql(pattern)
        if kind == "like":
            likes.append(text)
        elif kind == "regex":
            regexes.append(text)
    return likes, regexes


_LIKE = {"*": "%", "?": "_", "%": "\\%", "_": "\\_", "\\": "\\\\"}
_REGEX = {"*": ".*", "?": "."}
_TRANSLATED_SET = re.compile(r"\(\?s:(.*)\)\\[zZ]", re.S)


def glob_to_sql(pattern: str) -> tuple[str, str]:
    """``("like", p)``, ``("regex", p)`` (the glob has a ``[set]``) or ``("none", "")``.

    ``*`` and ``?`` become ``%`` and ``_`` (``%``, ``_`` and ``\\`` are escaped); a set is
    translated by :func:`fnmatch.translate` itself, so it means exactly what it means to
    :func:`fnmatch.fnmatchcase`.
    """
    like, regex, has_set = [], [], False
    i = 0
    while i < len(pattern):
        char, end = pattern[i], _set_end(pattern, i)
        if end < 0:
            like.append(_LIKE.get(char, char))
            regex.append(_REGEX.get(char) or (char if char.isalnum() else "\\" + char))
            i += 1
            continue
        piece = _TRANSLATED_SET.fullmatch(fnmatch.translate(pattern[i:end + 1])).group(1)
        if piece == "(?!)":
            return "none", ""
        regex.append(piece)
        has_set, i = True, end + 1
    return ("regex", "^" + "".join(regex) + "$") if has_set else ("like", "".join(like))


def _set_end(pattern: str, i: int) -> int:
    """Index of the ``]`` closing a set opened at ``i`` (as fnmatch reads it), or -1."""
    if pattern[i] != "[":
        return -1
    j, n = i + 1, len(pattern)
    if j < n and pattern[j] == "!":
        j += 1
    if j < n and pattern[j] == "]":
        j += 1
    while j < n and pattern[j] != "]":
        j += 1
    return j if j < n else -1


def _from_url(url: str, **kwargs: Any) -> PostgresTier:
    return PostgresTier(url, **kwargs)


register_tier("postgresql", _from_url)
register_tier("postgres", _from_url)
