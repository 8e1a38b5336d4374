"""Latency as data: :class:`LatencyModel`, :class:`Calibration` and :func:`load_calibration`.

A :class:`LatencyModel` is an empirical distribution given by a quantile table
(probability in (0, 1) -> milliseconds, non-decreasing). It draws by inverse-CDF
interpolation: a uniform ``u`` between two listed probabilities gets the linearly
interpolated latency; below the lowest listed probability it gets the lowest latency (a
backend has a floor); above the highest it gets an exponential tail whose steepness is that
of the last two quantiles in ``-log(1 - p)``, so the tail neither stops at the table's last
row nor explodes. Draws come from the model's own :class:`numpy.random.Generator`, seeded
explicitly: the same seed gives the same sequence.

A :class:`Calibration` holds one model per tier (``memory``, ``redis``, ``postgres``) and
operation (``get``, ``set``), measured on real servers by ``wedcache calibrate``
(:mod:`simulations.calibrate`). The shipped ``simulations/calibration.json`` is one such
measurement. Its format, human-readable on purpose::

    {"source": "shipped defaults", "measured_at": "2026-01-31", "notes": "...",
     "tiers": {"redis": {"get": {"p1": 0.081, "p50": 0.112, "p99.9": 0.9, ...},
                         "set": {...}}, ...}}

A quantile is keyed ``"p"`` + its percentage (``"p50"``, ``"p99.9"``) and valued in
milliseconds.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

TIERS = ("memory", "redis", "postgres")
OPS = ("get", "set")
GRID = (0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999)
"""The probabilities :meth:`LatencyModel.from_samples` and :meth:`LatencyModel.lognormal` list."""
SHIPPED_CALIBRATION = Path(__file__).with_name("calibration.json")
BUFFER = 4096
"""Draws made at once behind :meth:`LatencyModel.draw`."""

Seed = int | Sequence[int] | np.random.SeedSequence


def label(p: float) -> str:
    """``0.999`` as ``"p99.9"``."""
    return f"p{p * 100:.6g}"


def probability(name: str) -> float:
    """``"p99.9"`` as ``0.999``; raises ValueError for anything else."""
    try:
        if not name.startswith("p"):
            raise ValueError
        return round(float(name[1:]) / 100, 12)
    except ValueError:
        raise ValueError(f"quantile key {name!r}: expected 'p' and a percentage, like 'p50' or 'p99.9'") from None


def _significant(ms: float) -> float:
    return float(f"{ms:.4g}")


def _check(table: Mapping[float, float]) -> list[tuple[float, float]]:
    """The table's rows sorted by probability; raises ValueError naming the first problem."""
    if not table:
        raise ValueError("quantiles_ms: empty table (need at least one probability -> ms row)")
    rows = sorted((float(p), float(ms)) for p, ms in table.items())
    for p, ms in rows:
        if not 0.0 < p < 1.0:
            raise ValueError(f"quantiles_ms: probability {p} is outside (0, 1)")
        if not math.isfinite(ms):
            raise ValueError(f"quantiles_ms: latency at {label(p)} is not finite ({ms})")
        if ms < 0:
            raise ValueError(f"quantiles_ms: negative latency at {label(p)} ({ms} ms)")
    for (p0, ms0), (p1, ms1) in zip(rows, rows[1:]):
        if ms1 < ms0:
            raise ValueError(f"quantiles_ms: not monotone: {label(p1)} = {ms1} ms < {label(p0)} = {ms0} ms")
    return rows


class LatencyModel:
    """An empirical latency distribution: a quantile table drawn by inverse-CDF interpolation.

    :param quantiles_ms: probability in (0, 1) -> milliseconds, non-decreasing in probability.
    :param seed: seed of the model's own generator (an int, ints, or a SeedSequence).

    ``draw`` is rebound per instance to a buffered stream (the way
    :class:`~wedcache.tiers.memory.MemoryTier` rebinds ``get``): one call is a generator step.
    """

    def __init__(self, quantiles_ms: Mapping[float, float], seed: Seed = 0):
        rows = _check(quantiles_ms)
        self.quantiles_ms: dict[float, float] = dict(rows)
        self.seed = seed
        self._p = np.array([p for p, _ in rows])
        self._s = np.array([ms for _, ms in rows]) / 1000.0
        self._tail = self._tail_scale()
        self._rng = np.random.default_rng(seed)
        self._next = self.draw = self._stream().__next__  # the hot path: no extra call layer

    # -- constructors --------------------------------------------------------------------
    @classmethod
    def from_samples(cls, seconds: Any, seed: Seed = 0, grid: Sequence[float] = GRID) -> "LatencyModel":
        """The model whose table lists ``grid``'s quantiles of measured ``seconds`` (4 significant digits)."""
        samples = np.asarray(seconds, dtype=float).ravel()
        if samples.size == 0:
            raise ValueError("samples: empty (need at least one measured latency)")
        if not np.all(np.isfinite(samples)) or samples.min() < 0:
            raise ValueError("samples: every latency must be finite and >= 0 seconds")
        values = np.quantile(samples, grid) * 1000.0
        return cls({p: _significant(ms) for p, ms in zip(grid, values)}, seed)

    @classmethod
    def lognormal(cls, median_ms: float, p95_ms: float, seed: Seed = 0,
                  grid: Sequence[float] = GRID) -> "LatencyModel":
        """A lognormal with the given median and 95th percentile, tabulated on ``grid``."""
        if not 0 < median_ms <= p95_ms:
            raise ValueError(f"lognormal: need 0 < median_ms <= p95_ms (got {median_ms}, {p95_ms})")
        from statistics import NormalDist
        z95 = NormalDist().inv_cdf(0.95)
        sigma = math.log(p95_ms / median_ms) / z95
        return cls({p: median_ms * math.exp(sigma * NormalDist().inv_cdf(p)) for p in grid}, seed)

    @classmethod
    def constant(cls, ms: float, seed: Seed = 0) -> "LatencyModel":
        """Always ``ms`` milliseconds."""
        return cls({0.5: ms}, seed)

    @classmethod
    def from_dict(cls, data: Mapping[str, float], seed: Seed = 0) -> "LatencyModel":
        """The inverse of :meth:`to_dict` (``{"p50": 0.11, ...}``)."""
        return cls({probability(name): ms for name, ms in data.items()}, seed)

    def to_dict(self) -> dict[str, float]:
        """The table as ``{"p1": ms, …, "p99.9": ms}``."""
        return {label(p): ms for p, ms in self.quantiles_ms.items()}

    def reseeded(self, seed: Seed) -> "LatencyModel":
        """A fresh copy of this model drawing from ``seed``."""
        return LatencyModel(self.quantiles_ms, seed)

    # -- drawing -------------------------------------------------------------------------
    def draw(self) -> float:
        """One latency, in seconds (rebound per instance to the buffered stream's ``__next__``)."""
        return self._next()

    def draws(self, n: int) -> np.ndarray:
        """``n`` latencies, in seconds."""
        return self._inverse(self._rng.random(n))

    def quantile(self, p: float) -> float:
        """The model's ``p`` quantile, in milliseconds."""
        if not 0.0 <= p < 1.0:
            raise ValueError(f"quantile: p = {p} is outside [0, 1)")
        return float(self._inverse(np.array([p]))[0]) * 1000.0

    @property
    def mean_ms(self) -> float:
        """The exact mean of the interpolated distribution, in milliseconds."""
        p, s = self._p, self._s
        body = float(np.sum(np.diff(p) * (s[1:] + s[:-1]) / 2))
        tail = (1.0 - p[-1]) * (s[-1] + self._tail)
        return float((p[0] * s[0] + body + tail) * 1000.0)

    def _stream(self) -> Iterator[float]:
        while True:
            yield from self.draws(BUFFER).tolist()

    def _inverse(self, u: np.ndarray) -> np.ndarray:
        """Seconds at uniform values ``u`` (interpolated, floored, exponential tail)."""
        out = np.interp(u, self._p, self._s)
        top = self._p[-1]
        beyond = u > top
        if self._tail and beyond.any():
            out[beyond] = self._s[-1] + self._tail * np.log((1.0 - top) / (1.0 - u[beyond]))
        return out

    def _tail_scale(self) -> float:
        """Seconds per unit of ``-log(1 - p)`` over the last two rows (0 with a single row)."""
        if self._p.size < 2:
            return 0.0
        (p0, p1), (s0, s1) = self._p[-2:], self._s[-2:]
        return float((s1 - s0) / math.log((1.0 - p0) / (1.0 - p1)))

    def __repr__(self) -> str:
        return f"LatencyModel(p50={self.quantile(0.5):.4g} ms, p99={self.quantile(0.99):.4g} ms, seed={self.seed!r})"


@dataclass
class Calibration:
    """Latency models per tier and operation, and where they came from."""

    models: dict[str, dict[str, LatencyModel]]
    """``models[tier][op]``: tier ``memory``/``redis``/``postgres``, op ``get``/``set``."""
    source: str = "shipped defaults"
    """``"shipped defaults"`` or ``"wedcache calibrate"``."""
    measured_at: str = ""
    """ISO date of the measurement."""
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict, repr=False)
    """Other top-level keys of the file, kept as they are."""

    def model(self, tier: str, op: str, seed: int = 0) -> LatencyModel:
        """A fresh copy of ``tier``'s ``op`` model; tiers and ops get independent streams for one seed."""
        if tier not in self.models:
            raise ValueError(f"calibration: no latency model for tier {tier!r} (known: {', '.join(self.models)})")
        if op not in self.models[tier]:
            raise ValueError(f"calibration: no latency model for {tier} operation {op!r} "
                             f"(known: {', '.join(self.models[tier])})")
        return self.models[tier][op].reseeded([seed, _index(tier, TIERS), _index(op, OPS)])

    def to_dict(self) -> dict[str, Any]:
        tiers = {t: {op: m.to_dict() for op, m in ops.items()} for t, ops in self.models.items()}
        return {"source": self.source, "measured_at": self.measured_at, "notes": self.notes,
                **self.extra, "tiers": tiers}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Calibration":
        if not isinstance(data.get("tiers"), Mapping):
            raise ValueError("calibration: missing 'tiers' (tier -> op -> quantile table)")
        models = {t: {op: LatencyModel.from_dict(table) for op, table in ops.items()}
                  for t, ops in data["tiers"].items()}
        extra = {k: v for k, v in data.items() if k not in ("source", "measured_at", "notes", "tiers")}
        return cls(models, str(data.get("source", "")), str(data.get("measured_at", "")),
                   str(data.get("notes", "")), extra)

    def save(self, path: Path) -> None:
        """Write the calibration as indented JSON."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")


def _index(name: str, known: tuple[str, ...]) -> int:
    """A stable small number per name (its position when known, else a hash of its bytes)."""
    return known.index(name) if name in known else int.from_bytes(name.encode()[:8], "little") + len(known)


def load_calibration(path: Path | None = None) -> Calibration:
    """The calibration in ``path``, or the shipped ``simulations/calibration.json``."""
    source = SHIPPED_CALIBRATION if path is None else Path(path)
    try:
        return Calibration.from_dict(json.loads(source.read_text(encoding="utf-8")))
    except ValueError as error:
        raise ValueError(f"{source}: {error}") from error
