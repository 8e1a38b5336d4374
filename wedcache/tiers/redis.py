"""The shared tier (L2): :class:`RedisTier` over a pooled redis-py client.

An entry is one compact string (:meth:`CacheEntry.encode`) under its key, with a ``PX``
that only collects garbage (freshness is decided by the entry's own ``expires_at``). Each
entry is also added to index sets under the organization's hash tag — all keys, and one
set per wedding, vendor type, market tier and cache type — so invalidation reads the
selected sets and never SCANs the keyspace; :meth:`RedisTier.entries` lists an organization
through its ``all`` set (SSCAN of that one set). Redis errors and timeouts become
:class:`~wedcache.errors.TierUnavailable`.

The URL may name a Redis Cluster (``redis+cluster://host:port[,host:port…]``, see
:mod:`wedcache.redis_client`): the hash tag puts an organization's entries and index sets
in one slot, so every multi-key command here (``MGET``, ``SUNION``, ``DEL``) and each
organization's pipeline go to one node; only the ``ai:orgs`` set lives elsewhere.
"""
from __future__ import annotations

import logging
from typing import Any, Iterable, Iterator

from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.retry import Retry

from ..clock import Clock, SystemClock
from ..entry import CacheEntry, Selector
from ..errors import TierUnavailable
from ..redis_client import CLUSTER_SCHEMES, redis_client
from ..redis_client import ERRORS as REDIS_ERRORS
from . import Unreadable, register_tier

log = logging.getLogger(__name__)

ORGS_SET = "ai:orgs"
_ERRORS = REDIS_ERRORS


def index_keys(entry: CacheEntry) -> list[str]:
    """The index sets ``entry`` belongs to."""
    base = f"ai:{{{entry.org_id}}}:idx:"
    names = [base + "all", base + "tier:" + entry.market_tier, base + "type:" + entry.cache_type]
    names += [base + "vendor:" + v for v in entry.vendor_types]
    if entry.wedding_id:
        names.append(base + "wedding:" + entry.wedding_id)
    return names


def selector_sets(org_id: str, selector: Selector) -> list[list[str]]:
    """Groups of index sets: union within a group, intersection across groups."""
    base = f"ai:{{{org_id}}}:idx:"
    groups = [[base + "vendor:" + v for v in selector.vendor_types],
              [base + "tier:" + t for t in selector.market_tiers],
              [base + "type:" + t for t in selector.cache_types],
              [base + "wedding:" + selector.wedding_id] if selector.wedding_id else []]
    return [g for g in groups if g] or [[base + "all"]]


class RedisTier:
    """L2: entries and their index sets in Redis.

    :param url: a ``redis://`` URL, or ``redis+cluster://`` for a Redis Cluster.
    :param timeout_ms: socket connect and read timeout; a slower Redis counts as failed.
    :param grace_seconds: extra life given to ``PX`` past ``expires_at`` (stale-while-revalidate).
    :param index_ttl_seconds: how long an index set outlives its last addition.
    """

    name = "redis"

    def __init__(self, url: str, *, timeout_ms: float = 50, clock: Clock | None = None,
                 grace_seconds: float = 0.0, index_ttl_seconds: int = 3 * 86400, pool_max: int = 64):
        self.url = url
        self.clock = clock or SystemClock()
        self.grace_seconds = grace_seconds
        self.index_ttl_ms = index_ttl_seconds * 1000
        timeout = timeout_ms / 1000
        self.client = redis_client(url, socket_timeout=timeout, socket_connect_timeout=timeout,
                                   retry=Retry(NoBackoff(), 0), max_connections=pool_max)
        self.cluster = isinstance(self.client, RedisCluster)

    def get(self, key: str) -> CacheEntry | None:
        try:
            raw = self.client.get(key)
        except _ERRORS as exc:
            raise TierUnavailable(self.name, exc) from exc
        if raw is None:
            return None
        found = _decoded(key, raw)
        if isinstance(found, Unreadable):  # corrupt bytes are a miss (and removed), never an error
            log.warning("redis tier: removing %s: %s", key, found.reason)
            self._remove_unreadable(key)
            return None
        return found

    def set(self, entry: CacheEntry) -> None:
        px = int((entry.remaining(self.clock.now()) + self.grace_seconds) * 1000)
        if px <= 0:
            return
        pipe = self.client.pipeline(transaction=False)
        pipe.set(entry.key, entry.encode(), px=px)
        for name in index_keys(entry):
            pipe.sadd(name, entry.key)
            pipe.pexpire(name, self.index_ttl_ms)
        pipe.sadd(ORGS_SET, entry.org_id)
        self._execute(pipe)

    def delete(self, key: str) -> bool:
        raw = self._call(self.client.get, key)
        if raw is None:
            return False
        found = _decoded(key, raw)
        if isinstance(found, Unreadable):
            return self._remove_unreadable(key)
        return self._remove([found]) > 0

    def invalidate(self, selector: Selector) -> int:
        orgs = [selector.org_id] if selector.org_id else self._call(self.client.smembers, ORGS_SET)
        removed = 0
        for org in orgs:
            org = org.decode() if isinstance(org, bytes) else org
            entries = self._load(self._candidates(org, selector))
            removed += self._remove([e for e in entries if selector.matches(e)])
        return removed

    def entries(self, org_id: str, chunk: int = 500) -> Iterator[CacheEntry | Unreadable]:
        """``org_id``'s entries: SSCAN of its ``idx:all`` set, then MGET ``chunk`` keys at a time.

        Index members whose entry Redis already collected are skipped (and pruned)."""
        index, cursor, seen = f"ai:{{{org_id}}}:idx:all", 0, set()
        while True:
            cursor, keys = self._call(self.client.sscan, index, cursor, count=chunk)
            fresh = [k for k in keys if k not in seen]
            seen.update(fresh)
            if fresh:
                yield from self._fetch(fresh)
            if not cursor:
                return

    def stats(self) -> dict[str, Any]:
        orgs = self._call(self.client.smembers, ORGS_SET)
        pipe = self.client.pipeline(transaction=False)
        for org in orgs:
            pipe.scard(f"ai:{{{org.decode()}}}:idx:all")
        entries = sum(self._execute(pipe))
        if self.cluster:
            per_node = self._call(self.client.info, "memory", target_nodes=RedisCluster.PRIMARIES)
            return {"entries": entries, "bytes": sum(m.get("used_memory", 0) for m in per_node.values())}
        memory = self._call(self.client.info, "memory")
        return {"entries": entries, "bytes": memory.get("used_memory", 0)}

    def ping(self) -> bool:
        return bool(self._call(self.client.ping))

    def close(self) -> None:
        self.client.close()

    # -- internals ---------------------------------------------------------------------
    def _candidates(self, org: str, selector: Selector) -> set[bytes]:
        pipe = self.client.pipeline(transaction=False)
        groups = selector_sets(org, selector)
        for group in groups:
            if self.cluster:  # redis-py blocks SUNION in cluster pipelines; a group shares one slot
                pipe.execute_command("SUNION", *group)
            else:
                pipe.sunion(group)
        found = self._execute(pipe)
        return set.intersection(*found) if found else set()

    def _load(self, keys: Iterable[bytes], chunk: int = 500) -> list[CacheEntry]:
        """The entries under ``keys``; bytes that do not decode are skipped (an integrity check removes them)."""
        keys = list(keys)
        found = [e for start in range(0, len(keys), chunk) for e in self._fetch(keys[start:start + chunk])]
        return [e for e in found if isinstance(e, CacheEntry)]

    def _fetch(self, keys: list[bytes]) -> list[CacheEntry | Unreadable]:
        """What is stored under ``keys`` (one MGET), decoded; index members whose entry Redis
        already collected are pruned."""
        raws = self._call(self.client.mget, keys)
        found = [_decoded(k.decode(), raw) for k, raw in zip(keys, raws) if raw is not None]
        self._prune_missing(keys, found)
        return found

    def _prune_missing(self, keys: list[bytes], entries: list[CacheEntry | Unreadable]) -> None:
        """Drop index members whose entry already expired (Redis collected it)."""
        live = {e.key.encode() for e in entries}
        gone = [k for k in keys if k not in live]
        if gone:
            org = gone[0].decode().split("}")[0][4:]
            self._call(self.client.srem, f"ai:{{{org}}}:idx:all", *gone)

    def _remove(self, entries: list[CacheEntry]) -> int:
        if not entries:
            return 0
        pipe = self.client.pipeline(transaction=False)
        if self.cluster:  # redis-py refuses a multi-key DEL in cluster pipelines; these share one slot
            pipe.execute_command("DEL", *[e.key for e in entries])
        else:
            pipe.delete(*[e.key for e in entries])
        for entry in entries:
            for name in index_keys(entry):
                pipe.srem(name, entry.key)
        return self._execute(pipe)[0]

    def _remove_unreadable(self, key: str) -> bool:
        """Delete bytes that do not decode, and their ``all`` index membership (the other index
        sets cannot be known; their dangling member is skipped by every read and expires with them)."""
        org = key.split("}")[0][4:]
        pipe = self.client.pipeline(transaction=False)
        pipe.delete(key)
        pipe.srem(f"ai:{{{org}}}:idx:all", key)
        return self._execute(pipe)[0] > 0

    def _execute(self, pipe) -> list:
        try:
            return pipe.execute()
        except _ERRORS as exc:
            raise TierUnavailable(self.name, exc) from exc

    def _call(self, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except _ERRORS as exc:
            raise TierUnavailable(self.name, exc) from exc


def _decoded(key: str, raw: bytes) -> CacheEntry | Unreadable:
    """The entry stored as ``raw``, or :class:`Unreadable` when the bytes are not an encoded entry."""
    try:
        return CacheEntry.decode(raw)
    except (ValueError, TypeError) as exc:  # orjson.JSONDecodeError is a ValueError
        return Unreadable(key, f"stored bytes do not decode: {exc}")


def _from_url(url: str, **kwargs: Any) -> RedisTier:
    return RedisTier(url, **kwargs)


for _scheme in ("redis", "rediss", "unix", *CLUSTER_SCHEMES):
    register_tier(_scheme, _from_url)
