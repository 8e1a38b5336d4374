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
count) and ``MIN_AUTO_RATE``. peak-saturday and off-season keep >= 20,000 objects per tier
within ``MAX_SAMPLED_REQUESTS`` sampled requests.

**Post-stratified by popularity.** For the workload every object's popularity is known (the
catalogue's Zipf probabilities), so the sample's requests are reweighted bin by bin
(:func:`popularity_weights`, bins of :data:`STRATUM_OBJECTS` sampled objects) to each bin's
known share of the traffic, instead of SHARDS-adj's single correction at distance 0 (kept for
the hottest bin and for traces). On the shortened shipped scenarios this takes the largest
error over the resolved sizes from 2.6 points to under 1 (mean 0.28-0.40).

**A stationary window for long runs.** The full year at that rate would be ~90 M sampled
requests (~1,350 per object). But the workload draws every request's object independently
from a fixed popularity (:meth:`simulations.workload.Catalogue.sample`; only the arrival
*times* follow the seasons), and an LRU curve depends on the order of objects only, not on
time. So the stream of objects is stationary, and when the sample would exceed
``MAX_SAMPLED_REQUESTS`` only its first ``MAX_SAMPLED_REQUESTS`` requests are generated
(:class:`Window`): their distances are exactly the run's (the window *is* the run's start,
cold misses included); the first :data:`WINDOW_HEAD` of them count once, and the rest, past
the warm-up, stand for every later request of the run (weight = expected full requests from
the cut to the run's end / from the cut to the window's end). Traces are not assumed
stationary: they are sampled whole (``auto`` caps their rate at the request budget and flags
tiers under :data:`MIN_SAMPLED_OBJECTS` as ``under_sampled``).

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
"""Sampled requests per run at most (~20 s of stack distances): a workload stops at this many
(:class:`Window`); for a trace ``auto`` lowers its rate to fit and the report says when a tier
is then under-sampled."""
STRATUM_OBJECTS = 8
"""Sampled objects per popularity bin of :func:`popularity_weights`."""
WINDOW_HEAD = 0.5
"""Share of a window's sampled requests that count once (the run's start, warm-up of the LRU
stacks); the rest stand for the remainder of the run."""
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
    window: Window | None = None
    """Set when only the run's start was sampled (a stationary workload, :class:`Window`)."""

    @property
    def requests(self) -> int:
        return sum(t.curve.requests for t in self.tiers.values())

    def conclusions(self) -> list[str]:
        return [conclusion(t) for t in self.tiers.values()]

    def to_dict(self) -> dict[str, Any]:
        return {"scenario": self.scenario, "trace": self.trace, "method": self.method,
                "sample_rate": self.sample_rate, "requests": self.requests,
                "expected_requests": self.expected_requests, "conclusions": self.conclusions(),
                "window": self.window.to_dict() if self.window else None,
                "tiers": {name: {"method": self.method, "sample_rate": self.sample_rate,
                                 "under_sampled": self.under_sampled(t), **t.to_dict()}
                          for name, t in self.tiers.items()}}

    def under_sampled(self, tier: "TierSizing") -> bool:
        """A sampled tier with fewer than 90 % of :data:`MIN_SAMPLED_OBJECTS` objects (the rule
        aims at the expected count, so a sample a little under it is the rule met): its curve may
        be outside the 1-point accuracy the object rule buys (a trace's rate capped by
        :data:`MAX_SAMPLED_REQUESTS`, or a ``--sample-rate`` set too low)."""
        return self.method != "exact" and 0 < tier.objects < 0.9 * MIN_SAMPLED_OBJECTS


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
    spec = scenario.workload_spec()
    return expected_between(spec, policy, 0.0, spec.duration_seconds)


def expected_between(spec: Any, policy: Policy, start: float, end: float) -> float:
    """Full-workload requests expected in ``[start, end)`` seconds (the rate integrated per minute)."""
    from simulations.profiles import rate_series

    if end <= start:
        return 0.0
    edges = np.append(np.arange(start, end, 60.0), end)
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


def auto_rate(expected: float, objects: Any = None, capped: bool = True) -> float:
    """``auto``'s SHARDS rate: the larger of ``EXACT_LIMIT / expected`` (enough requests) and
    :func:`object_rate` (enough objects per tier), at least ``MIN_AUTO_RATE``; with ``capped``
    (a trace, which is sampled whole) at most the rate that samples ``MAX_SAMPLED_REQUESTS``.
    1 means exact."""
    expected = max(expected, 1.0)
    rate = max(MIN_AUTO_RATE, EXACT_LIMIT / expected, object_rate(objects))
    cap = max(MAX_SAMPLED_REQUESTS / expected, MIN_AUTO_RATE) if capped else 1.0
    return float(min(1.0, rate, cap))


def choose_method(method: str, sample_rate: float | None, expected: float,
                  objects: Any = None, capped: bool = True) -> tuple[str, float]:
    """``(exact | shards, rate)`` for ``--method`` and ``--sample-rate``; ``objects``: the
    expected distinct objects per market tier (:func:`expected_objects_per_tier`), for ``auto``;
    ``capped``: see :func:`auto_rate` (``False`` for a stationary workload, read in a window).

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
    rate = sample_rate if sample_rate is not None else auto_rate(expected, objects, capped)
    return ("exact", 1.0) if rate >= 1 else ("shards", float(rate))


# --- requests and sizes ----------------------------------------------------------------------

def collect(batches: Iterable[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Every requested object id of a source, in time order."""
    parts = [np.asarray(ids, np.int64) for _, ids in batches]
    return np.concatenate(parts) if parts else np.empty(0, np.int64)


def stationary(source: Any) -> bool:
    """Whether the source's sequence of objects is stationary (independent draws from a fixed
    popularity: the workload model), so a window of it stands for the whole run."""
    from simulations.sources import WorkloadSource

    return isinstance(source, WorkloadSource)


@dataclass(frozen=True)
class Window:
    """The first ``requests`` sampled requests of a run, standing for all of it (module docstring).

    Requests before ``cut_seconds`` weigh 1; later ones weigh ``weight``."""

    end_seconds: float
    cut_seconds: float
    weight: float
    requests: int
    run_seconds: float

    def weights(self, times: np.ndarray) -> np.ndarray:
        return np.where(np.asarray(times) < self.cut_seconds, 1.0, self.weight)

    def to_dict(self) -> dict[str, Any]:
        return {"requests": self.requests, "days": self.end_seconds / 86400,
                "head_days": self.cut_seconds / 86400, "run_days": self.run_seconds / 86400,
                "weight": self.weight}


def take(batches: Iterable[tuple[np.ndarray, np.ndarray]], limit: int) -> tuple[np.ndarray, np.ndarray]:
    """``(times, ids)`` of the first ``limit`` requests of ``batches`` (stops generating there)."""
    times, ids, count = [], [], 0
    for t, i in batches:
        times.append(np.asarray(t, np.float64))
        ids.append(np.asarray(i, np.int64))
        count += len(i)
        if count >= limit:
            break
    if not ids:
        return np.empty(0), np.empty(0, np.int64)
    return np.concatenate(times)[:limit], np.concatenate(ids)[:limit]


def window_of(times: np.ndarray, spec: Any, policy: Policy, head: float = WINDOW_HEAD) -> Window:
    """The :class:`Window` of a run's first sampled requests ``times``: the cut after the share
    ``head`` of them, and the weight of the requests past it."""
    end = float(times[-1]) if times.size else 0.0
    cut = float(times[min(times.size - 1, int(head * times.size))]) if times.size else 0.0
    covered = expected_between(spec, policy, cut, end)
    rest = expected_between(spec, policy, cut, spec.duration_seconds)
    return Window(end, cut, rest / covered if covered > 0 else 1.0, int(times.size), spec.duration_seconds)


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


def tier_curve(ids: np.ndarray, sizes: np.ndarray, rate: float, full_requests: float,
               weights: np.ndarray | None = None) -> MissRatioCurve:
    """The byte-weighted LRU curve of one partition's requests; under SHARDS (``rate`` < 1)
    adjusted to ``rate * full_requests`` requests (SHARDS-adj); ``weights``: the requests each
    one stands for (a :class:`Window`)."""
    expected = rate * full_requests if rate < 1 or weights is not None else None
    return MissRatioCurve.from_distances(stack_distances(ids, sizes[ids]), rate, expected, weights)


def popularity_weights(ids: np.ndarray, p: np.ndarray, tier_p: np.ndarray, expected: float,
                       weights: np.ndarray | None = None, per_bin: int = STRATUM_OBJECTS) -> np.ndarray:
    """Post-stratified SHARDS weights of one tier's sampled requests, when every object's
    popularity ``p`` is known (the workload's catalogue).

    SHARDS-adj puts the sample's shortfall (or excess) of requests at distance 0, as if it were
    all very hot keys. Knowing ``p``, the sampled objects are cut into popularity bins of
    ``per_bin`` sampled objects each; a bin's requests are reweighted so that they add up to
    ``expected`` x the share of the tier's popularity (``tier_p``: every object of the tier)
    that falls in the bin's range, so each bin's excess or lack is corrected at the distances
    of its own popularity. The hottest bin (every object hotter than its coldest sampled one)
    keeps its weights: what it lacks are mostly keys hotter than any kept, and stays with
    SHARDS-adj at distance 0 (the caller's ``expected``)."""
    weights = np.ones(ids.size) if weights is None else np.asarray(weights, np.float64)
    kept = np.unique(ids)
    if not kept.size:
        return weights
    ranked = np.sort(p[kept])[::-1]
    edges = ranked[per_bin::per_bin]  # lower p bound of each bin but the last
    full = np.sort(tier_p)[::-1]
    cuts = np.searchsorted(-full, -edges, side="left")  # objects strictly hotter than each bound
    mass = np.diff(np.concatenate(([0.0], np.cumsum(full)[np.maximum(cuts, 1) - 1] * (cuts > 0), [full.sum()])))
    bins = np.searchsorted(-edges, -p[ids], side="right")  # an edge object opens its bin
    held = np.bincount(bins, weights=weights, minlength=edges.size + 1)
    target = expected * mass / full.sum()
    scale = np.divide(target, held, out=np.ones_like(target), where=held > 0)
    scale[0] = 1.0  # the hottest bin: its shortfall stays SHARDS-adj's, hits at distance 0
    return weights * scale[bins]


def default_scenario() -> Any:
    """The scenario a bare ``--trace`` runs under: the shipped policy, one day from 2026-01-01."""
    from simulations.scenario import scenario_from_dict

    return scenario_from_dict({"run": {"start_date": "2026-01-01", "days": 1}}, name="trace")


def size_market_tiers(scenario: Any = None, trace: str | Path | None = None, *, method: str = "auto",
                      sample_rate: float | None = None, max_measured: int = MAX_MEASURED,
                      max_requests: int = MAX_SAMPLED_REQUESTS) -> Sizing:
    """The miss-ratio curve of every market tier and the memory it needs (see the module docstring).

    :param scenario: a :class:`~simulations.scenario.Scenario` (``None``: :func:`default_scenario`,
        with ``trace`` required).
    :param max_measured: objects whose entry is built and measured (the rest: group means).
    :param max_requests: sampled requests at most; a longer workload is read in a :class:`Window`.
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
    # a trace is sampled whole (capped rate); the workload is stationary and read in a window
    chosen, rate = choose_method(method, sample_rate, expected, objects, capped=trace is not None)
    run = scenario.with_overrides(sample_rate=rate)
    source = build_source(run, policy, Path(trace) if trace is not None else None)
    window = None
    if chosen == "shards" and stationary(source) and rate * expected > max_requests:
        times, ids = take(source.batches(), max_requests)
        window = window_of(times, run.workload_spec(), policy)
        weights = window.weights(times)
    else:
        ids, weights = collect(source.batches()), None
    sizes = object_sizes(run, policy, source, np.unique(ids), max_measured)
    result = Sizing(scenario.name, str(trace) if trace is not None else None, chosen, rate, expected, window=window)
    partitioner, tiers = LocationBasedCachePartitioner(policy), source.tier_codes[ids]
    full = full_requests_per_tier(source, expected)
    for code, name in enumerate(MARKET_TIERS):
        mask = tiers == code
        mine = ids[mask]
        mine_weights = None if weights is None else weights[mask]
        if rate < 1 and stationary(source):
            p = source.workload.catalogue.probabilities
            mine_weights = popularity_weights(mine, p, p[source.tier_codes == code], rate * full[code], mine_weights)
        curve = tier_curve(mine, sizes, rate, full[code], mine_weights)
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
    if result.window is not None:
        w = result.window
        report.paragraph(
            f"Stationary window: the run's first {w.end_seconds / 86400:.1f} of {w.run_seconds / 86400:.0f} days were "
            f"sampled ({w.requests:,} requests); the first {w.cut_seconds / 86400:.1f} days count once, the rest stand "
            f"for the remainder of the run (weight {w.weight:.1f}). The workload draws each request's object "
            "independently of time, so the LRU curve of any stretch past the warm-up is the run's.")
    report.table(*_table(result), caption="Bytes each market tier needs for its SLA hit rate (LRU, its own partition)")
    report.figure("mrc", _figure(result), "Hit rate against memory per market tier (log scale)")
    report.heading("Method")
    report.paragraph(
        "Each market tier is its own partition of the memory tier (LocationBasedCachePartitioner gives it its "
        "own cacheSize) and runs LRU over its own requests, so each gets its own miss-ratio curve: byte-weighted "
        "LRU stack distances (Mattson) over the requests, weighted by each entry's encoded size as the memory "
        "tier budgets it. SHARDS keeps a key iff its hash falls under the rate and scales distances by 1/rate; "
        "the sample's requests are reweighted per popularity bin of 8 sampled objects to the bin's known share of "
        "the traffic (the hottest bin's shortfall counted as hits at distance 0, SHARDS-adj).")
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
