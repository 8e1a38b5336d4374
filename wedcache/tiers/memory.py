"""The in-process tier (L1): :class:`MemoryTier`.

Bounded by bytes (``AI_CACHE_MEMORY_SIZE_MB``) and entries (``AI_CACHE_MAX_ENTRIES``) with
a selectable eviction policy (``lru`` or ``tinylfu``, see :mod:`.eviction`). A hit is the
policy's own ``get`` — a dict lookup plus O(1) bookkeeping, without taking the lock (each
dict operation is atomic under CPython's GIL); writes take the lock. Lookup counting is
:class:`~wedcache.cache.TieredCache`'s job, so the hit path does no double bookkeeping.

Invalidation walks only the selected organization's keys, or every key for a global
selector. The per-organization key index is built by the first organization-scoped
invalidation and kept from then on: a cache that is never invalidated by organization (a
simulation, a benchmark) does not pay for it on every write; :meth:`MemoryTier.entries`
(listing one organization's entries for compliance work) builds it too.
"""
from __future__ import annotations

import threading
from typing import Any, Callable, Iterator
from urllib.parse import parse_qs, urlsplit

from ..entry import CacheEntry, Selector
from . import register_tier
from .eviction import Budget, make_policy

MiB = 1024 * 1024


class MemoryTier:
    """L1: a bounded in-process map of entries."""

    name = "memory"

    def __init__(self, max_bytes: int = 512 * MiB, max_entries: int = 1_000_000, eviction: str = "tinylfu",
                 on_evict: Callable[[CacheEntry], None] | None = None):
        self._lock = threading.Lock()
        self._use(make_policy(eviction, Budget(max_bytes, max_entries), self._lock))
        self._by_org: dict[str, set[str]] | None = None
        """Keys per organization; ``None`` until an organization-scoped invalidation needs it."""
        self._on_evict = on_evict
        self.evictions = 0

    @property
    def eviction(self) -> str:
        return self._policy.name

    def get(self, key: str) -> CacheEntry | None:
        """The entry under ``key`` or ``None`` (rebound to the policy's ``get`` by :meth:`_use`)."""
        return self._policy.get(key)

    def _use(self, policy) -> None:
        self._policy = policy
        self.get = policy.get  # the hit path: no extra call layer

    def set(self, entry: CacheEntry) -> None:
        with self._lock:
            evicted = self._policy.put(entry)
            if self._by_org is not None:
                self._index(entry)
                self._forget(evicted)
        if evicted:  # _evicted, inlined: a full cache evicts on every fill
            self.evictions += len(evicted)
            if self._on_evict:
                for gone in evicted:
                    self._on_evict(gone)

    def delete(self, key: str) -> bool:
        with self._lock:
            entry = self._policy.remove(key)
            if entry is not None:
                self._forget([entry])
            return entry is not None

    def invalidate(self, selector: Selector) -> int:
        with self._lock:
            keys = self._candidates(selector)
            doomed = [e for e in map(self._policy.peek, keys) if e is not None and selector.matches(e)]
            for entry in doomed:
                self._policy.remove(entry.key)
            self._forget(doomed)
            return len(doomed)

    def entries(self, org_id: str) -> Iterator[CacheEntry]:
        """A snapshot of ``org_id``'s entries, read with ``peek`` (eviction order is left alone)."""
        with self._lock:
            keys = self._candidates(Selector(org_id=org_id))
            found = [e for e in map(self._policy.peek, keys) if e is not None]
        return iter(found)

    def resize(self, max_bytes: int, max_entries: int) -> int:
        """Change the budget (seasonal scaling); returns how many entries were evicted."""
        with self._lock:
            evicted = self._policy.resize(Budget(max_bytes, max_entries))
            self._forget(evicted)
        self._evicted(evicted)
        return len(evicted)

    def clear(self) -> None:
        with self._lock:
            self._use(make_policy(self._policy.name, self._policy.budget, self._lock))
            self._by_org = None

    def stats(self) -> dict[str, Any]:
        budget = self._policy.budget
        return {"entries": len(self._policy), "bytes": self._policy.bytes, "max_bytes": budget.max_bytes,
                "max_entries": budget.max_entries, "eviction": self._policy.name, "evictions": self.evictions}

    def close(self) -> None:
        self.clear()

    def _candidates(self, selector: Selector) -> list[str]:
        if selector.org_id is None:
            return [e.key for e in self._policy]
        if self._by_org is None:
            self._by_org = {}
            for entry in self._policy:
                self._index(entry)
        return list(self._by_org.get(selector.org_id, ()))

    def _index(self, entry: CacheEntry) -> None:
        keys = self._by_org.get(entry.org_id)
        if keys is None:
            keys = self._by_org[entry.org_id] = set()
        keys.add(entry.key)

    def _forget(self, entries: list[CacheEntry]) -> None:
        """Drop ``entries`` from the organization index, if there is one."""
        by_org = self._by_org
        if by_org is None:
            return
        for entry in entries:
            keys = by_org.get(entry.org_id)
            if keys is not None:
                keys.discard(entry.key)
                if not keys:
                    del by_org[entry.org_id]

    def _evicted(self, evicted: list[CacheEntry]) -> None:
        self.evictions += len(evicted)
        if self._on_evict:
            for entry in evicted:
                self._on_evict(entry)


def _from_url(url: str, **kwargs: Any) -> MemoryTier:
    """``memory://?max_mb=64&max_entries=10000&eviction=lru``."""
    query = {k: v[-1] for k, v in parse_qs(urlsplit(url).query).items()}
    if "max_mb" in query:
        kwargs.setdefault("max_bytes", int(float(query["max_mb"]) * MiB))
    if "max_entries" in query:
        kwargs.setdefault("max_entries", int(query["max_entries"]))
    if "eviction" in query:
        kwargs.setdefault("eviction", query["eviction"])
    return MemoryTier(**kwargs)


register_tier("memory", _from_url)
