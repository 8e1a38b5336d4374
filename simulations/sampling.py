"""SHARDS-style spatial sampling of keys: :func:`splitmix64`, :func:`sample_keys`, :func:`sample_batches`.

As libCacheSim's ``sampling/spatial.c``: keep a key iff its hash falls under ``rate`` of the
hash space, so a kept key keeps every one of its requests and a sampled cache of ``rate``
times the size sees the same miss ratio.
"""
from __future__ import annotations

from typing import Any, Iterable, Iterator

import numpy as np

_MASK32 = np.uint64(0xFFFFFFFF)


def splitmix64(values: Any) -> np.ndarray:
    """The splitmix64 finaliser over uint64 arrays (wrapping arithmetic)."""
    z = np.atleast_1d(np.asarray(values)).astype(np.uint64)
    with np.errstate(over="ignore"):
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def sample_keys(query_ids: Any, rate: float, salt: int = 0) -> np.ndarray:
    """Boolean mask keeping query id q iff ``hash(q, salt) mod 2**32 < rate * 2**32``.

    Deterministic per id, so a kept key keeps all its requests (SHARDS); scale a sampled
    cache's size by ``rate`` and its counts by ``1 / rate``."""
    if not 0 <= rate <= 1:
        raise ValueError("rate: must be between 0 and 1")
    hashed = splitmix64(np.atleast_1d(np.asarray(query_ids)).astype(np.uint64) ^ splitmix64(salt)[0])
    return (hashed & _MASK32) < np.uint64(min(int(rate * 2**32), 2**32))


def sample_batches(batches: Iterable[tuple[np.ndarray, np.ndarray]], rate: float,
                   salt: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """:meth:`Workload.batches` filtered by :func:`sample_keys`."""
    for times, ids in batches:
        keep = sample_keys(ids, rate, salt)
        yield times[keep], ids[keep]
