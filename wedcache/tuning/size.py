"""Memory sizing per market tier (``wedcache tune size``): :func:`size_market_tiers`, :func:`write_sizing`.

The memory tier's byte budget is split by :class:`~wedcache.partition.LocationBasedCachePartitioner`:
each market tier gets its own ``cacheSize`` (seed: 1GB / 512MB / 256MB) and runs its own LRU
over its own requests. So each market tier gets its own miss-ratio curve
(:mod:`wedcache.tuning.mrc`), over the requests of the objects in that tier:

1. The requests come from the simulation's own sources (:func:`simulations.run.build_source`):
   the scenario's workload model, or a trace file. For SHARDS the source is built at the
   sampling rate, so the workload generates only the sampled keys' requests (no full stream).
2. Each object's size is its entry's encoded size as the memory tier budgets it
   (:attr:`wedcache.entry.CacheEntry.size`), measured on the entry the simulation would store
   (:meth:`simulations.engine.Engine.prepare`: the real key, context and answer). Beyond
   :data:`MAX_MEASURED` objects, a hash sample of them is measured and the others take the
   mean of their (market tier, vendor type) group.
3. Byte-weighted stack distances give the hit rate at every size; the report reads off the
   bytes that reach the tier's SLA hit rate (``sla.market_tier.<tier>.hitRate``) and the hit
   rate of the seed's ``cacheSize``.

**auto's rate.** SHARDS's error falls with the number of sampled *objects* (Waldspurger et
al., FAST'15), and under this Zipf 0.9 workload with how much hot-key mass the hash happens to
keep (without SHARDS-adj the error is 5-10 points even at R = 0.5; with it, ~1 point at 6,000
objects per tier, 0.2-0.6 at 20,000). So ``auto`` takes the largest of: ``EXACT_LIMIT /
expected`` requests, ``MIN_SAMPLED_OBJECTS / objects`` of the smallest tier
(:func:`expected_objects_per_tier`: the catalogue's ``sum(1 - exp(-N p))``, or a trace's
count) and ``MIN_AUTO_RATE``; capped at ``MAX_SAMPLED_REQUESTS`` sampled requests (CLI time).
peak-saturday and off-season keep >= 20,000 objects per tier (the request rule already binds);
the full year cannot (~90 M requests needed): its tiers keep ~1,000 sampled objects and are
not held to the 1-point bound.

What the curve leaves out: expiry (an entry past its TTL misses at any size, so the
simulated hit rate is lower), the ``memory_entries`` cap, and W-TinyLFU (the curve is LRU's).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from wedcache.errors import InvalidInput
from wedcache.partition import LocationBasedCachePartitioner
from wedcache.policy import MARKET_TIERS, Policy
from wedcache.reporting import Report, fmt_bytes, fmt_number, fmt_percent, write_json

from .mrc import MissRatioCurve, stack_distances

METHODS = ("auto", "exact", "shards")
EXACT_LIMIT = 1_000_000
"""``auto`` computes exact curves up to this many (expected) requests; above, SHARDS at a
rate that leaves at least about this many."""
MIN_AUTO_RATE = 0.001
"""The lowest rate ``auto`` picks (the SHARDS paper's usual fixed rate)."""
MIN_SAMPLED_OBJECTS = 20_000
"""``auto`` raises the rate until every market tier keeps about this many sampled objects:
SHARDS's error falls with the number of sampled *objects* (Waldspurger et al.), not requests."""
MAX_SAMPLED_REQUESTS = 4_000_000
"""``auto`` never samples more requests than this (CLI time: ~10 s of stack distances); when
the object rule would need more, the cap wins and the report says the tier is under-sampled."""
MAX_MEASURED = 20_000
"""Objects whose entry is built and measured; more are sized by their group's mean."""
CURVE_POINTS = 64


@dataclass
class TierSizing:
    """One market tier's curve and what it says."""

    tier: str
    curve: MissRatioCurve
    target: float
    seed_bytes: int
    objects: int
    mean_entry_bytes: float

    @property
    def required_bytes(self) -> float | None:
        return self.curve.size_for(self.target)

    @property
    def hit_rate_at_seed(self) -> float:
        return float(self.curve.hit_rate(self.seed_bytes))

    @property
    def resolution_bytes(self) -> float:
        """Below this size a SHARDS curve rests on fewer than 100 sampled entries."""
        return self.mean_entry_bytes * (100 / self.curve.rate if self.curve.rate < 1 else 1)

    def to_dict(self) -> dict[str, Any]:
        top = max(self.seed_bytes, self.required_bytes or 0.0) * 1.5
        return {"target_hit_rate": self.target, "required_bytes": self.required_bytes,
                "seed_bytes": self.seed_bytes, "hit_rate_at_seed": self.hit_rate_at_seed,
                "max_hit_rate": self.curve.max_hit_rate, "saturation_bytes": self.curve.saturation_bytes,
                "resolution_bytes": self.resolution_bytes, "requests": self.curve.requests,
                "objects": self.objects, "mean_entry_bytes": self.mean_entry_bytes,
                "curve": [[size, rate] for size, rate in self.curve.points(CURVE_POINTS, top)]}


@dataclass
class Sizing:
    """The result of :func:`size_market_tiers`."""

    scenario: str
    trace: str | None
    method: str
    sample_rate: float
    expected_requests: float
    tiers: dict[str, TierSizing] = field(default_factory=dict)

    @property
    def requests(self) -> int:
        return sum(t.curve.requests for t in self.tiers.values())

    def conclusions(self) -> list[str]:
        return [conclusion(t) for t in self.tiers.values()]

    def to_dict(self) -> dict[str, Any]:
        return {"scenario": self.scenario, "trace": self.trace, "method": self.method,
                "sample_rate": self.sample_rate, "requests": self.requests,
                "expected_requests": self.expected_requests, "conclusions": self.conclusions(),
                "tiers": {name: {"method": self.method, "sample_rate": self.sample_rate,
                                 "under_sampled": self.under_sampled(t), **t.to_dict()}
                          for name, t in self.tiers.items()}}

    def under_sampled(self, tier: "TierSizing") -> bool:
        """A sampled tier with fewer than :data:`MIN_SAMPLED_OBJECTS` objects: its curve is outside
        the 1-point accuracy the object rule buys (``auto`` capped by :data:`MAX_SAMPLED_REQUESTS`,
        or a ``--sample-rate`` set too low)."""
        return self.method != "exact" and 0 < tier.objects < MIN_SAMPLED_OBJECTS


# --- figures in words ----------------------------------------------------------------------

def conclusion(t: TierSizing) -> str:
    """One sentence: the bytes the tier needs for its target, and what the seed's size reaches."""
    if not t.curve.requests:
        return f"{t.tier}: no requests"
    seed = f"the seed's {fmt_bytes(t.seed_bytes)} reaches {t.hit_rate_at_seed:.3f}"
    need = t.required_bytes
    if need is None:
        return (f"{t.tier} cannot reach {t.target:.2f} with memory alone: first requests cap LRU at "
                f"{t.curve.max_hit_rate:.3f} (reached at {fmt_bytes(t.curve.saturation_bytes)}); {seed}")
    return f"{t.tier} needs {fmt_bytes(need)} to reach {t.target:.2f}; {seed}"


# --- choosing the method ---------------------------------------------------------------------

def expected_requests(scenario: Any, policy: Policy, trace: Any = None) -> float:
    """Requests of the full run: the trace's length, or the workload's rate integrated per minute."""
    if trace is not None:
        return float(len(trace))
    from simulations.profiles import rate_series

    spec = scenario.workload_spec()
    edges = np.append(np.arange(0.0, spec.duration_seconds, 60.0), spec.duration_seconds)
    return float((rate_series((edges[:-1] + edges[1:]) / 2, spec, policy) * np.diff(edges)).sum())


def expected_objects_per_tier(source: Any, expected: float) -> np.ndarray:
    """Distinct objects per market tier code in the *full* stream: counted in a trace, or, for
    the workload, ``sum(1 - exp(-expected * p))`` over each tier's catalogue (independent draws)."""
    from simulations.sources import TraceSource

    if isinstance(source, TraceSource):
        seen = np.unique(source.trace.ids)
        return np.bincount(source.tier_codes[seen], minlength=len(MARKET_TIERS)).astype(float)
    p = source.workload.catalogue.probabilities
    return np.bincount(source.tier_codes, weights=-np.expm1(-expected * p), minlength=len(MARKET_TIERS))


def object_rate(objects: Any, min_objects: int = MIN_SAMPLED_OBJECTS) -> float:
    """The rate that keeps ``min_objects`` sampled objects in the smallest non-empty tier (<= 1)."""
    counts = np.asarray(objects if objects is not None else [], np.float64)
    counts = counts[counts > 0]
    return 0.0 if not counts.size else min(1.0, min_objects / float(counts.min()))


def auto_rate(expected: float, objects: Any = None) -> float:
    """``auto``'s SHARDS rate: the larger of ``EXACT_LIMIT / expected`` (enough requests) and
    :func:`object_rate` (enough objects per tier), at least ``MIN_AUTO_RATE``, and at most the
    rate that samples ``MAX_SAMPLED_REQUESTS``; 1 means exact."""
    expected = max(expected, 1.0)
    rate = max(MIN_AUTO_RATE, EXACT_LIMIT / expected, object_rate(objects))
    return float(min(1.0, rate, max(MAX_SAMPLED_REQUESTS / expected, MIN_AUTO_RATE)))


def choose_method(method: str, sample_rate: float | None, expected: float,
                  objects: Any = None) -> tuple[str, float]:
    """``(exact | shards, rate)`` for ``--method`` and ``--sample-rate``; ``objects``: the
    expected distinct objects per market tier (:func:`expected_objects_per_tier`), for ``auto``.

    :raises InvalidInput: naming the option."""
    if method not in METHODS:
        raise InvalidInput("--method", f"must be one of {', '.join(METHODS)}, not {method!r}")
    if sample_rate is not None and not 0 < sample_rate <= 1:
        raise InvalidInput("--sample-rate", f"must be in (0, 1], not {sample_rate:g}")
    if method == "exact":
        if sample_rate is not None and sample_rate != 1:
            raise InvalidInput("--sample-rate", "applies to --method shards or auto, not exact")
        return "exact", 1.0
    if method == "auto" and sample_rate is None and expected <= EXACT_LIMIT:
        return "exact", 1.0
    rate = sample_rate if sample_rate is not None else auto_rate(expected, objects)
    return ("exact", 1.0) if rate >= 1 else ("shards", float(rate))


# --- requests and sizes ----------------------------------------------------------------------

def collect(batches: Iterable[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Every requested object id of a source, in time order."""
    parts = [np.asarray(ids, np.int64) for _, ids in batches]
    return np.concatenate(parts) if parts else np.empty(0, np.int64)


class _Only:
    """A source seen through only some of its objects (what the engine prepares)."""

    def __init__(self, source: Any, ids: np.ndarray):
        self.source, self.ids, self.n_objects = source, ids, source.n_objects

    def object_ids(self) -> np.ndarray:
        return self.ids

    def describe(self, object_id: int) -> Any:
        return self.source.describe(object_id)


def measured_sizes(scenario: Any, policy: Policy, source: Any, ids: np.ndarray) -> dict[int, int]:
    """``CacheEntry.size`` of the entry the simulation builds for each of ``ids``."""
    from simulations.engine import Engine
    from simulations.model import build_system

    system = build_system(scenario, policy)
    try:
        engine = Engine(system, _Only(source, ids))
        engine.prepare()
        return {int(i): engine.templates[i].size for i in ids.tolist()}
    finally:
        system.close()


def object_sizes(scenario: Any, policy: Policy, source: Any, objects: np.ndarray,
                 max_measured: int = MAX_MEASURED) -> np.ndarray:
    """Entry bytes per object id (array over ``source.n_objects``; 0 where not requested)."""
    from simulations.sampling import sample_keys

    chosen = objects
    if objects.size > max_measured:
        chosen = objects[sample_keys(objects, max_measured / objects.size, salt=0x51CE)]
    measured = measured_sizes(scenario, policy, source, chosen)
    sizes = np.zeros(source.n_objects, np.float64)
    sizes[chosen] = [measured[i] for i in chosen.tolist()]
    rest = np.setdiff1d(objects, chosen, assume_unique=True)
    if rest.size:
        sizes[rest] = _group_means(source, chosen, sizes[chosen], rest)
    return sizes


def _group_means(source: Any, chosen: np.ndarray, values: np.ndarray, rest: np.ndarray) -> np.ndarray:
    """For each of ``rest``, the mean size of the measured objects of its (tier, vendor) group."""
    group = source.tier_codes.astype(np.int64) * 64 + source.vendor_codes
    sums = np.bincount(group[chosen], weights=values, minlength=4 * 64)
    counts = np.bincount(group[chosen], minlength=4 * 64)
    means = np.where(counts > 0, sums / np.maximum(counts, 1), values.mean())
    return means[group[rest]]


# --- the sizing ------------------------------------------------------------------------------

def full_requests_per_tier(source: Any, expected: float) -> np.ndarray:
    """Requests per market tier code in the *full* stream: counted in a trace, or, for the
    workload, ``expected`` times each tier's share of the catalogue's popularity."""
    from simulations.sources import TraceSource

    if isinstance(source, TraceSource):
        return np.bincount(source.tier_codes[source.trace.ids], minlength=len(MARKET_TIERS)).astype(float)
    mass = np.bincount(source.tier_codes, weights=source.workload.catalogue.probabilities,
                       minlength=len(MARKET_TIERS))
    return expected * mass


def tier_curve(ids: np.ndarray, sizes: np.ndarray, rate: float, full_requests: float) -> MissRatioCurve:
    """The byte-weighted LRU curve of one partition's requests; under SHARDS (``rate`` < 1)
    adjusted to ``rate * full_requests`` requests (SHARDS-adj)."""
    expected = rate * full_requests if rate < 1 else None
    return MissRatioCurve.from_distances(stack_distances(ids, sizes[ids]), rate, expected)


def default_scenario() -> Any:
    """The scenario a bare ``--trace`` runs under: the shipped policy, one day from 2026-01-01."""
    from simulations.scenario import scenario_from_dict

    return scenario_from_dict({"run": {"start_date": "2026-01-01", "days": 1}}, name="trace")


def size_market_tiers(scenario: Any = None, trace: str | Path | None = None, *, method: str = "auto",
                      sample_rate: float | None = None, max_measured: int = MAX_MEASURED) -> Sizing:
    """The miss-ratio curve of every market tier and the memory it needs (see the module docstring).

    :param scenario: a :class:`~simulations.scenario.Scenario` (``None``: :func:`default_scenario`,
        with ``trace`` required).
    :param max_measured: objects whose entry is built and measured (the rest: group means).
    :raises InvalidInput: for a bad ``method`` or ``sample_rate`` (naming the option)."""
    from simulations.run import build_source
    from simulations.trace import load_trace

    if scenario is None and trace is None:
        raise InvalidInput("SCENARIO", "give a scenario file or --trace FILE")
    scenario = scenario if scenario is not None else default_scenario()
    policy = scenario.policy()
    loaded = load_trace(trace) if trace is not None else None
    expected = expected_requests(scenario, policy, loaded)
    objects = None
    if method == "auto" and sample_rate is None and expected > EXACT_LIMIT:
        whole = build_source(scenario.with_overrides(sample_rate=1.0), policy,
                             Path(trace) if trace is not None else None)
        objects = expected_objects_per_tier(whole, expected)
    chosen, rate = choose_method(method, sample_rate, expected, objects)
    run = scenario.with_overrides(sample_rate=rate)
    source = build_source(run, policy, Path(trace) if trace is not None else None)
    ids = collect(source.batches())
    sizes = object_sizes(run, policy, source, np.unique(ids), max_measured)
    result = Sizing(scenario.name, str(trace) if trace is not None else None, chosen, rate, expected)
    partitioner, tiers = LocationBasedCachePartitioner(policy), source.tier_codes[ids]
    full = full_requests_per_tier(source, expected)
    for code, name in enumerate(MARKET_TIERS):
        mine = ids[tiers == code]
        curve = tier_curve(mine, sizes, rate, full[code])
        result.tiers[name] = TierSizing(name, curve, policy.sla.market_tier[name].hitRate,
                                        partitioner.cache_size_bytes(name), int(np.unique(mine).size),
                                        float(sizes[mine].mean()) if mine.size else 0.0)
    return result


# --- writing ---------------------------------------------------------------------------------

def _table(result: Sizing) -> tuple[list[str], list[list]]:
    columns = ["market tier", "target", "needed", "seed size", "hit rate at seed", "max (unbounded)",
               "requests", "objects", "mean entry"]
    rows = [[name, f"{t.target:.2f}", fmt_bytes(t.required_bytes), fmt_bytes(t.seed_bytes),
             fmt_percent(t.hit_rate_at_seed), fmt_percent(t.curve.max_hit_rate), t.curve.requests,
             t.objects, f"{t.mean_entry_bytes:,.0f} B"] for name, t in result.tiers.items()]
    return columns, rows


def _figure(result: Sizing) -> Any:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(result.tiers), figsize=(5 * len(result.tiers), 3.8), sharey=True)
    for ax, (name, t) in zip(np.atleast_1d(axes), result.tiers.items()):
        points = np.asarray(t.to_dict()["curve"]).reshape(-1, 2)
        ax.plot(points[:, 0] / 1e6, points[:, 1], color="#1565c0", label="LRU hit rate")
        ax.axhline(t.target, color="#c62828", ls="--", lw=1, label=f"target {t.target:.2f}")
        ax.axvline(t.seed_bytes / 1e6, color="#555", ls=":", lw=1, label=f"seed {fmt_bytes(t.seed_bytes)}")
        if t.required_bytes is not None:
            ax.plot([t.required_bytes / 1e6], [t.target], "o", color="#c62828")
        ax.set(xscale="log", title=name, xlabel="memory (MB)")
        ax.legend(fontsize=8, loc="lower right")
    np.atleast_1d(axes)[0].set_ylabel("hit rate")
    fig.tight_layout()
    return fig


def build_report(result: Sizing) -> Report:
    """The sizing report: conclusions first, then the table, the curves and the method."""
    where = f"trace {result.trace}" if result.trace else f"scenario {result.scenario}"
    method = "exact stack distances" if result.method == "exact" else f"SHARDS at rate {result.sample_rate:.4g}"
    report = Report("Memory sizing per market tier", f"{where}: {method}, {fmt_number(result.requests)} requests")
    report.bullets([f"**{line}**" for line in result.conclusions()])
    thin = [name for name, t in result.tiers.items() if result.under_sampled(t)]
    if thin:
        report.paragraph(f"Caution: {', '.join(thin)} kept fewer than {MIN_SAMPLED_OBJECTS:,} sampled objects, so "
                         "its curve may be more than 1 point off the exact one; raise --sample-rate or use "
                         "--method exact on a shorter run.")
    report.table(*_table(result), caption="Bytes each market tier needs for its SLA hit rate (LRU, its own partition)")
    report.figure("mrc", _figure(result), "Hit rate against memory per market tier (log scale)")
    report.heading("Method")
    report.paragraph(
        "Each market tier is its own partition of the memory tier (LocationBasedCachePartitioner gives it its "
        "own cacheSize) and runs LRU over its own requests, so each gets its own miss-ratio curve: byte-weighted "
        "LRU stack distances (Mattson) over the requests, weighted by each entry's encoded size as the memory "
        "tier budgets it. SHARDS keeps a key iff its hash falls under the rate and scales distances by 1/rate.")
    report.paragraph(
        "Left out: expiry (an entry past its TTL misses at any size), the memory_entries cap and W-TinyLFU "
        "admission. The simulation of the same scenario therefore reads lower; the curve bounds what memory "
        "alone can buy.")
    return report


def write_sizing(result: Sizing, out: str | Path) -> dict[str, Path]:
    """``sizing.json``, ``report.html``, ``report.md`` and ``mrc.png`` into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "sizing.json"
    write_json(path, result.to_dict())
    return {"sizing": path, **build_report(result).write(out)}
