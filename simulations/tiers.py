"""Backends as models: :class:`ModeledTier`, and the ``modeled://`` tier URL.

A modeled tier stands in for Redis or PostgreSQL in the simulation. It keeps entries in a
dict (with a per-organization key index for invalidation, like
:class:`~wedcache.tiers.memory.MemoryTier`) and charges each operation a latency drawn from
a :class:`~simulations.latency.LatencyModel` to the clock (``clock.sleep``: on a
:class:`~simulations.clock.SimClock` that is the request's latency debt). Like the real
tiers it returns entries whatever their freshness, except entries past
``expires_at + grace_seconds``, which the backend would have collected (Redis ``PX``, the
purge job) and which are dropped when met.

``modeled://redis?grace_seconds=600&max_entries=100000`` builds a tier named after the URL
host (``redis`` or ``postgres``) from a calibration's ``get`` and ``set`` models::

    import simulations.tiers  # registers the scheme
    tier = tier_from_url("modeled://redis?grace_seconds=600", clock=clock, calibration=cal, seed=7)

``tier.fail(True)`` makes every operation raise
:class:`~wedcache.errors.TierUnavailable`, for fault scenarios.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any
from urllib.parse import parse_qs, urlsplit

from wedcache.clock import Clock
from wedcache.entry import CacheEntry, Selector
from wedcache.errors import TierUnavailable
from wedcache.tiers import register_tier

from .latency import Calibration, LatencyModel, load_calibration

_OPERATIONS = ("get", "set", "delete", "invalidate", "stats")


class ModeledTier:
    """A dict of entries behind modeled latencies.

    :param name: what results report (``redis``, ``postgres``).
    :param clock: the clock charged with each operation's latency and read for the grace check.
    :param get_latency: latency of ``get``.
    :param set_latency: latency of ``set``, and of one ``delete`` or ``invalidate``.
    :param grace_seconds: how long an entry outlives its ``expires_at`` in the backend.
    :param max_entries: when full, the oldest-inserted entry is evicted (``None``: unbounded).
    """

    def __init__(self, name: str, clock: Clock, get_latency: LatencyModel, set_latency: LatencyModel,
                 grace_seconds: float = 0.0, max_entries: int | None = None):
        if max_entries is not None and max_entries < 1:
            raise ValueError(f"max_entries must be >= 1 or None (got {max_entries})")
        self.name = name
        self.clock = clock
        self.get_latency, self.set_latency = get_latency, set_latency
        self.grace_seconds = grace_seconds
        self.max_entries = max_entries
        self._entries: OrderedDict[str, CacheEntry] = OrderedDict()
        self._by_org: dict[str, set[str]] = {}
        self._bytes = 0
        self.evictions = 0
        self.failing = False
        self._failure_latency = 0.0
        self._sleep, self._draw_get, self._now = clock.sleep, get_latency.draw, clock.now

    def get(self, key: str) -> CacheEntry | None:
        """The entry under ``key`` whatever its freshness, unless the backend collected it."""
        self._sleep(self._draw_get())
        entry = self._entries.get(key)
        if entry is None or self._now() < entry.expires_at + self.grace_seconds:
            return entry
        self._remove(key)
        return None

    def set(self, entry: CacheEntry) -> None:
        self._sleep(self.set_latency.draw())
        self._remove(entry.key)
        self._entries[entry.key] = entry
        self._bytes += entry.size
        self._by_org.setdefault(entry.org_id, set()).add(entry.key)
        if self.max_entries is not None and len(self._entries) > self.max_entries:
            self._remove(next(iter(self._entries)))
            self.evictions += 1

    def delete(self, key: str) -> bool:
        self._sleep(self.set_latency.draw())
        return self._remove(key) is not None

    def invalidate(self, selector: Selector) -> int:
        self._sleep(self.set_latency.draw())
        keys = self._entries if selector.org_id is None else self._by_org.get(selector.org_id, ())
        doomed = [key for key in keys if selector.matches(self._entries[key])]
        for key in doomed:
            self._remove(key)
        return len(doomed)

    def stats(self) -> dict[str, Any]:
        return {"entries": len(self._entries), "bytes": self._bytes, "evictions": self.evictions}

    def close(self) -> None:
        self._entries.clear()
        self._by_org.clear()
        self._bytes = 0

    def fail(self, failing: bool = True, after_seconds: float = 0.0) -> None:
        """Make every operation but ``close`` raise TierUnavailable (or work again).

        ``after_seconds`` is charged before each failure: 0 for a refused connection, the
        client's timeout for a server that stopped answering.
        """
        self.failing, self._failure_latency = failing, after_seconds
        for op in _OPERATIONS:
            if failing:
                setattr(self, op, self._refuse)
            else:
                self.__dict__.pop(op, None)

    def _refuse(self, *args: Any) -> Any:
        self._sleep(self._failure_latency)
        raise TierUnavailable(self.name, "modeled failure")

    def _remove(self, key: str) -> CacheEntry | None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= entry.size
            keys = self._by_org.get(entry.org_id)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._by_org[entry.org_id]
        return entry

    def __len__(self) -> int:
        return len(self._entries)


def _from_url(url: str, *, clock: Clock, calibration: Calibration | None = None, seed: int = 0,
              **kwargs: Any) -> ModeledTier:
    """``modeled://<tier>?grace_seconds=…&max_entries=…`` with ``calibration``'s models (default: shipped)."""
    parts = urlsplit(url)
    name = parts.hostname or ""
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    unknown = set(query) - {"grace_seconds", "max_entries"}
    if unknown:
        raise ValueError(f"{url}: unknown parameter {sorted(unknown)[0]!r} (known: grace_seconds, max_entries)")
    if "grace_seconds" in query:
        kwargs.setdefault("grace_seconds", float(query["grace_seconds"]))
    if "max_entries" in query:
        kwargs.setdefault("max_entries", int(query["max_entries"]))
    cal = calibration or load_calibration()
    return ModeledTier(name, clock, cal.model(name, "get", seed), cal.model(name, "set", seed), **kwargs)


register_tier("modeled", _from_url)
