"""Miss-ratio curves of an LRU cache: byte-weighted stack distances and SHARDS sampling.

**Stack distances (Mattson et al. 1970).** LRU has the inclusion property: a cache of
``C`` bytes holds the most recently used objects that fit. A request hits in every LRU
cache larger than its *stack distance*: the bytes of the distinct objects referenced since
the previous request for the same object, its own size included (``inf`` for a first
request). One pass gives the distance of every request, hence the hit rate at every size.

**How they are counted (:func:`stack_distances`).** Number the requests ``0 .. n - 1``;
``prev[i]`` and ``nxt[i]`` are the previous and next request for the same object. The
distinct objects seen before ``i`` weigh ``F(i)`` (a cumulative sum over first requests);
those not referenced in ``(prev[i], i]`` are the ones whose last request ``j <= prev[i]``
has ``nxt[j] > i``. So::

    distance[i] = F(i) - G(prev[i], i),   G(p, t) = sum of w[j] over j <= p with nxt[j] > t

``G`` is a 2-D dominance sum, answered for all requests at once over a merge-sort tree held
in numpy arrays: at level ``L`` the positions form blocks of ``2**L`` sorted by ``nxt``
(with cumulative weights), a prefix ``[0, p]`` is the union of at most one block per level
(the set bits of ``p + 1``), and one ``searchsorted`` per level answers every request.
``O(N log^2 N)`` work in ``log N`` vectorised passes, no Python loop per request.

**SHARDS (Waldspurger et al., FAST 2015).** Keep an object iff its hash falls under ``R``
of the hash space (:func:`simulations.sampling.sample_keys`, the same hash the simulation
samples with); an object kept keeps all its requests. The sampled stream's distances, scaled
by ``1 / R``, estimate the full stream's: :meth:`MissRatioCurve.from_distances` with
``rate=R`` (fixed-rate SHARDS), with SHARDS-adj when the full stream's request count is
known: the sample's shortfall against ``R`` times that count is added as hits at distance 0.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def previous_and_next(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each request, the index of the previous (``-1`` if none) and the next (``n`` if
    none) request for the same object."""
    ids = np.asarray(ids)
    n = ids.size
    order = np.argsort(ids, kind="stable")  # requests grouped by object, in time order
    same = ids[order[1:]] == ids[order[:-1]]
    prev, nxt = np.full(n, -1, np.int64), np.full(n, n, np.int64)
    prev[order[1:][same]] = order[:-1][same]
    nxt[order[:-1][same]] = order[1:][same]
    return prev, nxt


def _dominance_sums(nxt: np.ndarray, weights: np.ndarray, p: np.ndarray, t: np.ndarray) -> np.ndarray:
    """``sum(weights[j] for j <= p[q] if nxt[j] > t[q])`` for every query ``q`` (merge-sort tree)."""
    n = nxt.size
    by_nxt = np.argsort(nxt, kind="stable")
    total = np.zeros(p.size, np.float64)
    length = p + 1  # the prefix [0, p] has p + 1 positions
    for level in range(max(1, int(n).bit_length())):
        in_level = (length >> level) & 1 == 1
        if not in_level.any():
            continue
        order = by_nxt[np.argsort(by_nxt >> level, kind="stable")]  # blocks of 2**level, by nxt
        keys = (order >> level) * (n + 1) + nxt[order]
        cumulative = np.concatenate(([0.0], np.cumsum(weights[order], dtype=np.float64)))
        block = (length[in_level] >> level) - 1
        end = np.minimum((block + 1) << level, n)
        cut = np.searchsorted(keys, block * (n + 1) + t[in_level], side="right")
        total[in_level] += cumulative[end] - cumulative[cut]
    return total


def stack_distances(ids: np.ndarray, sizes: np.ndarray | None = None) -> np.ndarray:
    """The LRU stack distance of every request (float64, ``inf`` for a first request).

    :param ids: object id per request, in time order.
    :param sizes: size per request (bytes of its object, constant per object); ``None``
        counts objects (Mattson's distances in entries)."""
    ids = np.asarray(ids)
    weights = np.ones(ids.size) if sizes is None else np.asarray(sizes, np.float64)
    prev, nxt = previous_and_next(ids)
    seen = np.concatenate(([0.0], np.cumsum(np.where(prev < 0, weights, 0.0))))[:-1]  # F(i)
    distances = np.full(ids.size, np.inf)
    again = np.flatnonzero(prev >= 0)
    if again.size:
        distances[again] = seen[again] - _dominance_sums(nxt, weights, prev[again], again)
    return distances


@dataclass(frozen=True)
class MissRatioCurve:
    """Hit rate of an LRU cache as a function of its size, from (scaled) stack distances.

    ``hit_rate(C) = (weight of distances <= C + adjustment) / total``, clipped to ``[0, 1]``;
    each request weighs 1 unless it stands for more (:meth:`from_distances` ``weights``)."""

    distances: np.ndarray
    """Sorted stack distances (bytes), already scaled by ``1 / rate``; ``inf`` for cold misses."""
    rate: float = 1.0
    """SHARDS sampling rate the distances come from (1: exact)."""
    adjustment: float = 0.0
    """SHARDS-adj: requests the sample lacks (or, negative, has too many), counted as hits
    at distance 0."""
    cumulative: np.ndarray | None = None
    """Cumulative request weights in ``distances`` order (``None``: every request weighs 1)."""

    @classmethod
    def from_distances(cls, distances: np.ndarray, rate: float = 1.0, expected: float | None = None,
                       weights: np.ndarray | None = None) -> "MissRatioCurve":
        """The curve of a stream's distances; a SHARDS sample at ``rate`` scales them by ``1 / rate``.

        :param expected: requests the sample should hold (``rate`` times the full stream's).
            Given, the difference is added at distance 0 (SHARDS-adj, Waldspurger et al.):
            a sample that missed (or caught) a few very hot keys is mostly
            missing (or holding extra) reuses at tiny distances.
        :param weights: how many requests each one stands for (a request of a stationary
            window extrapolated over the rest of a run, :mod:`wedcache.tuning.size`)."""
        if not 0 < rate <= 1:
            raise ValueError("rate: must be in (0, 1]")
        distances = np.asarray(distances, np.float64)
        order = np.argsort(distances, kind="stable")
        cumulative = None if weights is None else np.cumsum(np.asarray(weights, np.float64)[order])
        distances = distances[order] / rate
        held = float(cumulative[-1]) if cumulative is not None and cumulative.size else float(distances.size)
        adjustment = 0.0 if expected is None or not distances.size else float(expected) - held
        return cls(distances, float(rate), adjustment, cumulative)

    @property
    def requests(self) -> int:
        """Requests the curve was measured on (sampled ones under SHARDS)."""
        return int(self.distances.size)

    def _weight(self, count: np.ndarray | int) -> np.ndarray:
        """The weight of the first ``count`` sorted distances."""
        count = np.asarray(count)
        if self.cumulative is None:
            return count.astype(np.float64)
        padded = np.concatenate(([0.0], self.cumulative))
        return padded[count]

    @property
    def weight(self) -> float:
        """The requests the sample stands for, before the SHARDS adjustment."""
        return float(self._weight(self.requests))

    @property
    def total(self) -> float:
        """The denominator: requests (weighted), plus the SHARDS adjustment."""
        return self.weight + self.adjustment

    def _rate(self, count: np.ndarray | int) -> np.ndarray:
        if self.total <= 0:
            return np.zeros(np.shape(count))
        return np.clip((self._weight(count) + self.adjustment) / self.total, 0.0, 1.0)

    @property
    def max_hit_rate(self) -> float:
        """The hit rate of an unbounded cache (only first requests miss)."""
        return float(self._rate(int(np.isfinite(self.distances).sum())))

    @property
    def saturation_bytes(self) -> float:
        """The largest finite distance: from this size on, only first requests miss."""
        finite = self.distances[np.isfinite(self.distances)]
        return float(finite[-1]) if finite.size else 0.0

    def hit_rate(self, size_bytes: float | np.ndarray) -> float | np.ndarray:
        """Hit rate of an LRU cache of ``size_bytes`` (a scalar or an array of sizes)."""
        rates = self._rate(np.searchsorted(self.distances, size_bytes, side="right"))
        return float(rates) if np.ndim(rates) == 0 else rates

    def size_for(self, target: float) -> float | None:
        """The smallest size whose hit rate reaches ``target``; ``None`` if no size does."""
        needed = target * self.total - self.adjustment - 1e-9
        if needed <= 0:
            return 0.0
        weights = np.arange(1, self.requests + 1, dtype=np.float64) if self.cumulative is None else self.cumulative
        index = int(np.searchsorted(weights, needed, side="left"))
        if index >= self.requests or not math.isfinite(self.distances[index]):
            return None
        return float(self.distances[index])

    def points(self, count: int = 64, up_to: float | None = None) -> list[tuple[float, float]]:
        """``(size_bytes, hit_rate)`` on a log-spaced grid from the smallest distance to ``up_to``
        (default: the largest finite distance), for tables and plots."""
        finite = self.distances[np.isfinite(self.distances)]
        if not finite.size:
            return []
        high = max(float(finite[-1]), up_to or 0.0)
        grid = np.unique(np.geomspace(max(float(finite[0]), 1.0), max(high, 1.0), count))
        return [(float(size), float(rate)) for size, rate in zip(grid, self.hit_rate(grid))]
