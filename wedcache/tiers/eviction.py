"""Eviction policies for the memory tier: :class:`LruPolicy` and :class:`TinyLfuPolicy`.

Both bound a cache by entries *and* bytes (:class:`Budget`) and do O(1) work per hit.
W-TinyLFU follows Caffeine: a small LRU window (1 %) admits new entries; a segmented LRU
main area (probation 20 %, protected 80 %) keeps the rest; a window victim enters the main
area only if a count-min sketch says it is used more often than the main area's victim.
Hits are only *recorded* on the hot path (a bounded buffer) and applied to the sketch and
the segments in a batch on the next write, as Caffeine's read buffer does.
"""
from __future__ import annotations

import threading
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Iterator

from ..entry import CacheEntry

_HALVE = bytes(b >> 1 for b in range(256))
_NOTHING: list = []  # shared "evicted nothing" result; never mutated


@dataclass(slots=True)
class Budget:
    """How much a segment may hold."""

    max_bytes: int
    max_entries: int

    def exceeded(self, segment_bytes: int, segment_entries: int) -> bool:
        return segment_bytes > self.max_bytes or segment_entries > self.max_entries

    def share(self, fraction: float) -> "Budget":
        return Budget(max(1, int(self.max_bytes * fraction)), max(1, int(self.max_entries * fraction)))


class Segment:
    """An LRU-ordered map of entries with a byte count (oldest first)."""

    __slots__ = ("items", "bytes")

    def __init__(self) -> None:
        self.items: OrderedDict[str, CacheEntry] = OrderedDict()
        self.bytes = 0

    def __len__(self) -> int:
        return len(self.items)

    def add(self, entry: CacheEntry) -> None:
        self.items[entry.key] = entry
        self.bytes += entry.size

    def pop(self, key: str) -> CacheEntry | None:
        entry = self.items.pop(key, None)
        if entry is not None:
            self.bytes -= entry.size
        return entry

    def pop_oldest(self) -> CacheEntry:
        entry = self.items.popitem(last=False)[1]
        self.bytes -= entry.size
        return entry

    def oldest(self) -> CacheEntry | None:
        return next(iter(self.items.values()), None)

    def over(self, budget: Budget) -> bool:
        return budget.exceeded(self.bytes, len(self.items))


class LruPolicy:
    """Least recently used."""

    name = "lru"

    def __init__(self, budget: Budget, lock: threading.Lock | None = None):
        self.budget = budget
        self._segment = Segment()
        self._items = self._segment.items

    def get(self, key: str) -> CacheEntry | None:
        """Lock-free: each OrderedDict call is atomic under the GIL; a concurrent removal is a miss."""
        items = self._items
        entry = items.get(key)
        if entry is not None:
            try:
                items.move_to_end(key)
            except KeyError:
                return None
        return entry

    def put(self, entry: CacheEntry) -> list[CacheEntry]:
        """Store ``entry``; returns the entries evicted to make room (inlined: a hot path)."""
        segment, budget, key = self._segment, self.budget, entry.key
        items = segment.items
        old = items.pop(key, None)
        total = segment.bytes + (entry._size or entry.size) - (old._size if old is not None else 0)
        items[key] = entry  # stored entries were measured when they came in
        max_bytes, max_entries = budget.max_bytes, budget.max_entries
        if total <= max_bytes and len(items) <= max_entries:
            segment.bytes = total
            return _NOTHING
        evicted = []
        while (total > max_bytes or len(items) > max_entries) and len(items) > 1:
            oldest = items.popitem(False)[1]  # positional: no keyword parsing per eviction
            total -= oldest._size
            evicted.append(oldest)
        segment.bytes = total
        return evicted

    def remove(self, key: str) -> CacheEntry | None:
        return self._segment.pop(key)

    def peek(self, key: str) -> CacheEntry | None:
        return self._segment.items.get(key)

    def resize(self, budget: Budget) -> list[CacheEntry]:
        self.budget = budget
        evicted = []
        while self._segment.over(budget) and len(self._segment):
            evicted.append(self._segment.pop_oldest())
        return evicted

    def __iter__(self) -> Iterator[CacheEntry]:
        return iter(list(self._segment.items.values()))

    def __len__(self) -> int:
        return len(self._segment)

    @property
    def bytes(self) -> int:
        return self._segment.bytes


class FrequencySketch:
    """A 4-row count-min sketch of 4-bit counters, halved every ``10 * width`` additions."""

    def __init__(self, expected_entries: int):
        width = 16
        while width < expected_entries:
            width <<= 1
        self._mask = width - 1
        self._width = width
        self._table = bytearray(4 * width)
        self._additions = 0
        self._sample = 10 * width

    def _slots(self, key: str) -> tuple[int, int, int, int]:
        """Four cells by double hashing a stable hash of ``key``: CRC-32, not ``hash()``, whose
        salt changes per process and would make admission (and so every simulation result)
        differ between two runs with the same seed."""
        lo = zlib.crc32(key.encode())
        hi, mask, width = ((lo * 0x9E3779B97F4A7C15) >> 32 & 0xFFFFFFFF) | 1, self._mask, self._width
        return ((lo & mask), width + ((lo + hi) & mask),
                2 * width + ((lo + 2 * hi) & mask), 3 * width + ((lo + 3 * hi) & mask))

    def increment(self, key: str) -> None:
        table = self._table
        for slot in self._slots(key):
            if table[slot] < 15:
                table[slot] += 1
        self._additions += 1
        if self._additions >= self._sample:
            self._table = bytearray(table.translate(_HALVE))
            self._additions //= 2

    def frequency(self, key: str) -> int:
        table = self._table
        return min(table[slot] for slot in self._slots(key))


class TinyLfuPolicy:
    """Window TinyLFU: LRU window, frequency-gated admission, segmented-LRU main area."""

    name = "tinylfu"
    READ_BUFFER = 128

    def __init__(self, budget: Budget, lock: threading.Lock | None = None):
        self._lock = lock or threading.Lock()
        self._sketch = FrequencySketch(min(budget.max_entries, max(16, budget.max_bytes // 512)))
        self.window, self.probation, self.protected = Segment(), Segment(), Segment()
        self._where: dict[str, Segment] = {}
        self._reads: list[str] = []
        self.resize(budget)

    def get(self, key: str) -> CacheEntry | None:
        """Records the read; the buffer is applied under the tier's lock when full."""
        segment = self._where.get(key)
        if segment is None:
            return None
        reads = self._reads
        reads.append(key)
        if len(reads) >= self.READ_BUFFER:
            with self._lock:
                self._drain()
        return segment.items.get(key)

    def peek(self, key: str) -> CacheEntry | None:
        segment = self._where.get(key)
        return segment.items[key] if segment is not None else None

    def put(self, entry: CacheEntry) -> list[CacheEntry]:
        self._drain()
        self._sketch.increment(entry.key)
        segment = self._where.get(entry.key)
        if segment is not None:
            segment.pop(entry.key)
            segment.add(entry)
            return self._rebalance()
        self._place(self.window, entry)
        return self._rebalance()

    def remove(self, key: str) -> CacheEntry | None:
        segment = self._where.pop(key, None)
        return segment.pop(key) if segment is not None else None

    def resize(self, budget: Budget) -> list[CacheEntry]:
        self.budget = budget
        self.window_budget = budget.share(0.01)
        self.main_budget = Budget(max(1, budget.max_bytes - self.window_budget.max_bytes),
                                  max(1, budget.max_entries - self.window_budget.max_entries))
        self.protected_budget = self.main_budget.share(0.8)
        return self._rebalance() if self._where else []

    def __iter__(self) -> Iterator[CacheEntry]:
        return iter([e for s in (self.window, self.probation, self.protected) for e in s.items.values()])

    def __len__(self) -> int:
        return len(self._where)

    @property
    def bytes(self) -> int:
        return self.window.bytes + self.probation.bytes + self.protected.bytes

    # -- internals ---------------------------------------------------------------------
    def _place(self, segment: Segment, entry: CacheEntry) -> None:
        segment.add(entry)
        self._where[entry.key] = segment

    def _drain(self) -> None:
        reads, self._reads = self._reads, []
        for key in reads:
            self._sketch.increment(key)
            segment = self._where.get(key)
            if segment is self.probation:
                self._place(self.protected, self.probation.pop(key))
                self._demote_protected()
            elif segment is not None:
                segment.items.move_to_end(key)

    def _demote_protected(self) -> None:
        while self.protected.over(self.protected_budget) and len(self.protected) > 1:
            self._place(self.probation, self.protected.pop_oldest())

    def _main_over(self, extra: CacheEntry | None = None) -> bool:
        size = self.probation.bytes + self.protected.bytes + (extra.size if extra else 0)
        count = len(self.probation) + len(self.protected) + (1 if extra else 0)
        return self.main_budget.exceeded(size, count)

    def _rebalance(self) -> list[CacheEntry]:
        evicted: list[CacheEntry] = []
        self._demote_protected()
        while self.window.over(self.window_budget) and len(self.window) > 1:
            candidate = self.window.pop_oldest()
            del self._where[candidate.key]
            self._admit(candidate, evicted)
        while self._main_over() and (len(self.probation) + len(self.protected)) > 0:
            evicted.append(self._evict_main_victim())
        return evicted

    def _admit(self, candidate: CacheEntry, evicted: list[CacheEntry]) -> None:
        """Let ``candidate`` into probation if it beats the main area's victims."""
        freq = self._sketch.frequency(candidate.key)
        while self._main_over(candidate):
            victim = self.probation.oldest() or self.protected.oldest()
            if victim is None or self._sketch.frequency(victim.key) >= freq:
                evicted.append(candidate)
                return
            evicted.append(self._evict_main_victim())
        self._place(self.probation, candidate)

    def _evict_main_victim(self) -> CacheEntry:
        segment = self.probation if len(self.probation) else self.protected
        victim = segment.pop_oldest()
        del self._where[victim.key]
        return victim


def make_policy(name: str, budget: Budget, lock: threading.Lock | None = None) -> LruPolicy | TinyLfuPolicy:
    """``lru`` or ``tinylfu``; ``lock`` is the tier's lock (TinyLFU drains reads under it)."""
    policies = {"lru": LruPolicy, "tinylfu": TinyLfuPolicy}
    if name not in policies:
        raise ValueError(f"eviction must be one of {', '.join(policies)}, not {name!r}")
    return policies[name](budget, lock)
