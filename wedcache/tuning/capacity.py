"""Capacity projection: the seed's 12-month growth turned into resources and cost, season by season.

:func:`project_capacity` simulates the baseline scenario and the grown one (users x
``growth.users`` -> organizations and distinct queries; queries x ``growth.queries`` ->
``traffic.base_qps``), both SHARDS-sampled (the grown run at ``sample_rate / growth.queries``
so it costs about what the baseline costs), and derives per season from each run:

* **peak QPS** - from the scenario's load profile (:func:`simulations.profiles.rate_series`, the
  rate the arrivals are drawn from, per minute): the 99th percentile of the Poisson count of
  arrivals in one second at the season's busiest minute (``peak_qps``); next to it that
  minute's rate (``peak_minute_qps``) and the busiest simulated hour's mean
  (``peak_hour_qps``, counts scaled back by sampling);
* **memory** - per replica, then x replicas. The balancer spreads requests at random, so every
  replica's memory tier sees the whole key space but only ``1 / n`` of the requests: each
  request of the run is given a random replica of the season's peak ``n`` and the LRU stack
  distances (:mod:`wedcache.tuning.mrc`, SHARDS-scaled) are counted on each replica's own
  stream. A request that missed in the run (cold, expired: the TTLs' misses) misses at every
  size, and so does one whose replica last saw the object before the entry it would serve was
  written (that replica holds an older, expired copy; Redis, shared, serves it). The memory
  tier per replica that reaches the season's hit-rate target (``sla.seasonal.<season>.hitRate``)
  x the mean entry size the real memory tier measured is ``memory_per_replica_bytes``;
  ``memory_bytes`` = that x ``n``. When the TTLs (or the split) cap the hit rate below the
  target, the memory for 99 % of the capped rate is given and ``target_reachable`` is false;
* **Redis memory** - Redis keeps every answer written through until ``expires_at`` + the
  stale-while-revalidate grace (``PX``), or until the next fill of the same object replaces
  it: the peak number of such live entries (each fill is an interval; occupancy is counted at
  every simulated hour) x the mean entry size;
* **PostgreSQL connections** - Little's law: offered load ``a = peak QPS x (share of requests
  that reach PostgreSQL x get time + share that write through x set time)`` in Erlangs, with
  the calibrated PostgreSQL times (``simulations/calibration.json``, or ``pg_query_ms``); each
  replica has its own pool, so per replica the smallest pool whose Erlang-C waiting
  probability is at most :data:`PG_WAIT_PROBABILITY`, times the replicas;
* **replicas** - the HPA model of :mod:`wedcache.tuning.replicas` (per-request CPU from the
  service calibration, 2-20 replicas at 70 % CPU) over the season's hours, each hour's load
  taken at its busiest minute (the hour's requests x the profile's peak-minute / mean rate:
  the HPA reacts within minutes); its peak, and CPU cores = peak replicas x cores per replica;
* **monthly cost** - :func:`wedcache.tuning.costs.monthly_cost` of the peak-sized memory and
  Redis, the connections, the season's mean replicas and its origin calls per month.

:func:`compare_allocation` sets each season's needs against the seed's resource allocation
table (``policy.resources``: ``production`` for seasons at the base traffic multiplier,
``peak_season`` for the others) and names each resource ``short`` (need above allocation),
``generous`` (need below :data:`GENEROUS_SHARE` of it) or ``fits``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import poisson

from ..policy import Policy
from ..reporting import Report, fmt_bytes, write_json
from .costs import GB, HOURS_PER_MONTH, breakdown
from .mrc import MissRatioCurve, previous_and_next, stack_distances
from .replicas import DEFAULT_CALIBRATION, ServiceCalibration, plan_replicas

PEAK_SECOND_QUANTILE = 0.99
"""Peak QPS is this quantile of one second's Poisson arrivals at the busiest minute's rate."""
PG_WAIT_PROBABILITY = 0.01
"""Largest Erlang-C probability that a PostgreSQL query waits for a pooled connection."""
GENEROUS_SHARE = 0.5
"""A resource is ``generous`` when the need is below this share of the allocation."""
CAPPED_SHARE = 0.99
"""When the TTLs cap the hit rate below the target, memory is sized for this share of the cap."""
HIT_CODES, FILL_CODES = (0, 1, 2), (4, 5, 6)
"""Record codes (:mod:`simulations.engine`): hits per tier; misses that call the origin."""
SEASON_ORDER = ("winter", "spring", "summer", "fall")
RESOURCES = (("memory_bytes", "memory"), ("redis_bytes", "redis_memory"),
             ("postgres_connections", "postgres_connections"), ("cpu_cores", "cpu_cores"))
"""(need field, allocation field) pairs compared with the seed's table."""


class CapacityInputError(ValueError):
    """A bad option; the message names it (``--growth-users``)."""


@dataclass(frozen=True)
class Growth:
    """The 12-month growth: users (organizations and their distinct queries) and query volume."""

    users: float = 3.0
    queries: float = 5.0

    def __post_init__(self) -> None:
        for option, value in (("--growth-users", self.users), ("--growth-queries", self.queries)):
            if not (math.isfinite(value) and value > 0):
                raise CapacityInputError(f"{option}: must be a growth factor > 0, got {value}")


# --- the workloads ---------------------------------------------------------------------------

def grown_scenario(scenario: Any, growth: Growth, sample_rate: float) -> Any:
    """``scenario`` grown: organizations and distinct queries x users, ``base_qps`` x queries."""
    from simulations.scenario import scenario_from_dict

    data = scenario.to_dict()
    queries, traffic = data["queries"], data["traffic"]
    queries["organizations"] = max(1, round(queries["organizations"] * growth.users))
    queries["distinct"] = max(1, round(queries["distinct"] * growth.users))
    traffic["base_qps"] = traffic["base_qps"] * growth.queries
    data["run"]["sample_rate"] = sample_rate
    return scenario_from_dict(data, f"{scenario.name}-grown", scenario.source)


def check_sample_rate(sample_rate: float | None) -> None:
    if sample_rate is not None and not (math.isfinite(sample_rate) and 0 < sample_rate <= 1):
        raise CapacityInputError(f"--sample-rate: must be in (0, 1], got {sample_rate}")


def run_workloads(scenario: Any, growth: Growth, sample_rate: float | None) -> dict[str, Any]:
    """Simulate the baseline (at ``sample_rate``, default the scenario's) and the grown workload
    (at ``sample_rate / growth.queries``); ``{"baseline": (scenario, result), "grown": (scenario, result)}``."""
    from simulations.run import simulate

    check_sample_rate(sample_rate)
    rate = sample_rate or scenario.run.sample_rate
    baseline = scenario.with_overrides(sample_rate=rate)
    grown = grown_scenario(scenario, growth, rate / growth.queries)
    return {"baseline": (baseline, simulate(baseline)), "grown": (grown, simulate(grown))}


# --- per-season figures from one run ---------------------------------------------------------

def season_of_times(t: np.ndarray, scenario: Any, policy: Policy) -> np.ndarray:
    """The season name of each simulated time (seconds from the scenario's start)."""
    from simulations.model import start_of
    from simulations.results import SEASONS, season_codes

    return np.asarray(SEASONS)[season_codes(np.asarray(t, float), start_of(scenario), policy)]


def occupancy_peak(starts: np.ndarray, ends: np.ndarray, at: np.ndarray) -> float:
    """Most intervals ``[start, end)`` covering any time of ``at`` (intervals of one object never overlap)."""
    if not starts.size or not at.size:
        return 0.0
    began = np.searchsorted(np.sort(starts), at, side="right")
    ended = np.searchsorted(np.sort(ends), at, side="right")
    return float((began - ended).max())


def entry_bytes(series: pd.DataFrame) -> float:
    """Mean entry size the real memory tier measured (bytes / entries, over the run)."""
    entries = series["memory_entries"].sum()
    return float(series["memory_bytes"].sum() / entries) if entries else 0.0


def lifetimes(rec: Any, source_ttl: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Redis lifetime of every fill: from the fill until the next fill of the object or
    ``ttl + grace`` (``source_ttl`` per request), whichever is first; ``(fill times, ends)``."""
    fills = np.isin(rec.code, FILL_CODES) | rec.grace
    ids, t = rec.object_id[fills], rec.t[fills]
    _, nxt = previous_and_next(ids)
    following = np.append(t, np.inf)[nxt]
    return t, np.minimum(following, t + source_ttl[fills])


def memory_curve(rec: Any, mask: np.ndarray, distances: np.ndarray, rate: float) -> MissRatioCurve:
    """The memory tier's curve over the requests in ``mask``: a request that missed in the run
    (cold, expired: the TTLs' misses) misses at every size."""
    d = np.where(np.isin(rec.code[mask], HIT_CODES), distances[mask], np.inf)
    return MissRatioCurve.from_distances(d, rate)


def replica_distances(rec: Any, replicas: int, seed: int = 0) -> np.ndarray:
    """Stack distances (entries) of every request on the replica a random balancer sends it to.

    Each replica's memory tier sees only its own requests, so a request's distance counts the
    objects its replica saw since that replica's previous request for the object; ``inf`` when
    the replica has not seen it, or last saw it before the entry the run served was written
    (its copy is an older one, expired: Redis serves the request)."""
    n = rec.object_id.size
    owner = np.random.default_rng(seed).integers(max(1, replicas), size=n)
    out = np.full(n, np.inf)
    for k in range(max(1, replicas)):
        mine = np.flatnonzero(owner == k)
        if not mine.size:
            continue
        ids = rec.object_id[mine]
        d = stack_distances(ids)
        prev, _ = previous_and_next(ids)
        last_seen = np.where(prev >= 0, rec.t[mine][np.maximum(prev, 0)], -np.inf)
        current = np.nan_to_num(rec.created[mine], nan=np.inf) <= last_seen
        out[mine] = np.where(current, d, np.inf)
    return out


def minute_rates(scenario: Any, policy: Policy) -> np.ndarray:
    """The full workload's arrival rate (requests/s) at the middle of every minute of the run:
    the profile the simulation draws its Poisson arrivals from."""
    from simulations.profiles import rate_series

    spec = scenario.workload_spec()
    return rate_series(np.arange(0.0, spec.duration_seconds, 60.0) + 30.0, spec, policy)


def peak_figures(rates: np.ndarray, hours_from_start: np.ndarray) -> dict[str, Any]:
    """Peak QPS of the hours ``hours_from_start`` from the per-minute ``rates``: the busiest
    minute's rate and the 99th percentile of the Poisson arrivals in one second at that rate;
    ``burst`` per hour, its peak-minute rate over its mean rate."""
    minutes = np.asarray(hours_from_start, np.int64)[:, None] * 60 + np.arange(60)
    by_hour = rates[np.minimum(minutes, rates.size - 1)]
    top = float(by_hour.max()) if by_hour.size else 0.0
    mean = by_hour.mean(axis=1)
    burst = np.divide(by_hour.max(axis=1), mean, out=np.ones_like(mean), where=mean > 0)
    return {"peak_minute_qps": top, "peak_qps": float(poisson.ppf(PEAK_SECOND_QUANTILE, top)) if top > 0 else 0.0,
            "burst": burst}


def memory_need(curve: MissRatioCurve, target: float, size: float) -> dict[str, Any]:
    """Memory for ``target`` (or for :data:`CAPPED_SHARE` of the TTL-capped hit rate)."""
    reachable = curve.max_hit_rate >= target
    goal = target if reachable else CAPPED_SHARE * curve.max_hit_rate
    entries = curve.size_for(goal) or 0.0
    return {"memory_bytes": entries * size, "memory_entries": entries, "memory_hit_rate": goal,
            "hit_rate_target": target, "target_reachable": bool(reachable),
            "max_hit_rate": curve.max_hit_rate}


def ttl_per_request(scenario: Any, policy: Policy, source: Any, rec: Any, seasons: np.ndarray) -> np.ndarray:
    """TTL + grace of each request's entry, from the policy through the real
    :class:`~wedcache.ttl.VendorCacheOptimizer` (per vendor type, market tier and season)."""
    from wedcache.context import parse_context
    from wedcache.policy import MARKET_TIERS, VENDOR_TYPES
    from wedcache.ttl import VendorCacheOptimizer

    ttl = VendorCacheOptimizer(policy, fixed_ttl=scenario.cache.ttl_seconds,
                               grace_seconds=scenario.cache.stale_while_revalidate_seconds)
    vendors, tiers = source.vendor_codes[rec.object_id], source.tier_codes[rec.object_id]
    out = np.zeros(rec.t.size)
    for s in np.unique(seasons):
        day = date(2026, policy.seasons[s].months[0], 1)
        for v, m in {(int(a), int(b)) for a, b in zip(vendors[seasons == s], tiers[seasons == s])}:
            ctx = parse_context({"vendorTypes": [VENDOR_TYPES[v]],
                                 "location": policy.market_tiers[MARKET_TIERS[m]].markets[0]})
            life = ttl.ttl_seconds(ctx, day) * (1 - policy.jitter / 2) + ttl.grace_seconds(ctx.vendor_types)
            out[(seasons == s) & (vendors == v) & (tiers == m)] = life
    return out


def postgres_connections(peak_qps: float, reach: float, writes: float, replicas: int,
                         get_ms: float, set_ms: float) -> dict[str, Any]:
    """Little's law for the offered load (Erlangs), then per replica the smallest pool with an
    Erlang-C waiting probability <= :data:`PG_WAIT_PROBABILITY`, times ``replicas``."""
    load = peak_qps * (reach * get_ms + writes * set_ms) / 1000.0
    per_replica = load / max(replicas, 1)
    pool = max(1, math.ceil(per_replica))
    while erlang_c(pool, per_replica) > PG_WAIT_PROBABILITY:
        pool += 1
    return {"postgres_load_erlangs": load, "postgres_pool_per_replica": pool,
            "postgres_connections": pool * max(replicas, 1)}


def erlang_c(servers: int, load: float) -> float:
    """Probability that a request waits in an M/M/c queue (Erlang C, via Erlang B from the Poisson law)."""
    if load <= 0:
        return 0.0
    if load >= servers:
        return 1.0
    blocking = poisson.pmf(servers, load) / poisson.cdf(servers, load)
    return float(blocking / (1 - load / servers * (1 - blocking)))


# --- one run, season by season ---------------------------------------------------------------

@dataclass
class RunView:
    """What the per-season figures read from one simulation."""

    scenario: Any
    policy: Policy
    records: Any
    series: pd.DataFrame
    source: Any
    pg_ms: tuple[float, float]
    """PostgreSQL get and set time (ms)."""


def run_view(scenario: Any, result: Any, pg_query_ms: float | None = None) -> RunView:
    """The run's records plus its (rebuilt, same seed) request source and PostgreSQL times."""
    from simulations.latency import load_calibration
    from simulations.run import build_source

    policy = scenario.policy()
    cal = load_calibration(scenario.calibration_path)
    pg = (pg_query_ms, pg_query_ms) if pg_query_ms else tuple(cal.model("postgres", op).mean_ms for op in ("get", "set"))
    return RunView(scenario, policy, result.records, result.timeseries, build_source(scenario, policy, None), pg)


def season_figures(view: RunView, calibration: ServiceCalibration = DEFAULT_CALIBRATION) -> dict[str, dict[str, Any]]:
    """Peak QPS, memory, Redis, PostgreSQL connections, replicas and monthly cost per season."""
    rec, policy, rate = view.records, view.policy, view.scenario.run.sample_rate
    seasons = season_of_times(rec.t, view.scenario, policy)
    size = entry_bytes(view.series)
    rates = minute_rates(view.scenario, policy)
    fills, ends = lifetimes(rec, ttl_per_request(view.scenario, policy, view.source, rec, seasons))
    hours = view.series.assign(season=season_of_times(
        (view.series["hour"] - view.series["hour"].iloc[0]).dt.total_seconds().to_numpy(), view.scenario, policy))
    out = {}
    for name in [s for s in SEASON_ORDER if (seasons == s).any()]:
        mask, rows = seasons == name, hours[hours["season"] == name]
        at = (rows["hour"] - hours["hour"].iloc[0]).dt.total_seconds().to_numpy()
        peaks = peak_figures(rates, at // 3600)
        row = {"season": name, **load_figures(rec, mask, rows)}
        row.update({k: v for k, v in peaks.items() if k != "burst"})
        row.update(replica_figures(rows, policy, calibration, peaks["burst"]))
        per_replica = memory_need(memory_curve(rec, mask, replica_distances(rec, row["replicas"], view.scenario.run.seed),
                                               rate), policy.sla.seasonal[name].hitRate, size)
        row.update(per_replica, memory_per_replica_bytes=per_replica["memory_bytes"],
                   memory_bytes=per_replica["memory_bytes"] * row["replicas"])
        row["redis_entries"] = occupancy_peak(fills, ends, at) / rate
        row["redis_bytes"] = row["redis_entries"] * size
        row.update(postgres_connections(row["peak_qps"], row["postgres_reach"], row["write_share"],
                                        row["replicas"], *view.pg_ms))
        row["monthly_cost"] = season_cost(row, policy)
        row["entry_bytes"] = size
        out[name] = row
    return out


def load_figures(rec: Any, mask: np.ndarray, rows: pd.DataFrame) -> dict[str, Any]:
    """The busiest hour's and the mean QPS, hit rates, the shares reaching PostgreSQL and writing through."""
    code = rec.code[mask]
    hit = float(np.isin(code, HIT_CODES).mean())
    top = (code == 0).mean() + (code == 1).mean()
    return {"peak_hour_qps": float(rows["requests"].max() / 3600), "mean_qps": float(rows["requests"].mean() / 3600),
            "requests": float(rows["requests"].sum()), "hit_rate": hit,
            "postgres_reach": float(1 - top), "write_share": float(np.isin(code, FILL_CODES).mean()),
            "origin_calls_per_month": float(rows["misses"].sum() * HOURS_PER_MONTH / max(len(rows), 1))}


def replica_figures(rows: pd.DataFrame, policy: Policy, calibration: ServiceCalibration,
                    burst: np.ndarray | None = None) -> dict[str, Any]:
    """The HPA over the season's hours (:func:`~wedcache.tuning.replicas.plan_replicas`), each
    hour's load x ``burst`` (its peak-minute over mean rate; default 1)."""
    hits = rows[["hits_memory", "hits_redis", "hits_postgres"]].sum(axis=1) / rows["requests"].where(rows["requests"] > 0)
    load = rows["requests"].to_numpy() / 3600 * (1.0 if burst is None else burst)
    plan = plan_replicas(load, hits.to_numpy(), policy.replicas, calibration)
    return {"replicas": plan.peak, "mean_replicas": float(plan.replicas.mean()) if plan.replicas.size else 0.0,
            "cpu_cores": plan.peak * calibration.cores_per_replica,
            "saturated_hours": int(plan.saturated.sum()),
            "at_max_replicas": bool(plan.peak >= policy.replicas.max_replicas)}


def season_cost(row: dict[str, Any], policy: Policy) -> dict[str, float]:
    """A month of the season: peak-sized memory and Redis, connections, mean replicas, origin calls
    (:func:`~wedcache.tuning.costs.breakdown` over :data:`~wedcache.tuning.costs.HOURS_PER_MONTH`)."""
    return breakdown(row["memory_bytes"] / GB, row["redis_bytes"] / GB, row["postgres_connections"],
                     row["mean_replicas"], row["origin_calls_per_month"], policy.costs,
                     hours=HOURS_PER_MONTH).as_dict()


# --- against the seed's table ----------------------------------------------------------------

def allocation_row(season: str, policy: Policy) -> str:
    """``production`` for a season at the base traffic multiplier, ``peak_season`` otherwise."""
    base = min(s.traffic_multiplier for s in policy.seasons.values())
    return "production" if policy.seasons[season].traffic_multiplier <= base else "peak_season"


def allocated(policy: Policy, row: str, field: str) -> float:
    res = policy.resources[row]
    return float(res.bytes_of(field) if field in ("memory", "redis_memory") else getattr(res, field))


def compare_allocation(figures: dict[str, dict[str, Any]], policy: Policy) -> list[dict[str, Any]]:
    """One row per season and resource: need, the seed's allocation, ratio and verdict."""
    rows = []
    for season, fig in figures.items():
        table = allocation_row(season, policy)
        for need_field, field in RESOURCES:
            have, need = allocated(policy, table, field), float(fig[need_field])
            verdict = "short" if need > have else "generous" if need < GENEROUS_SHARE * have else "fits"
            rows.append({"season": season, "resource": field, "allocation": table, "need": need,
                         "allocated": have, "ratio": need / have, "verdict": verdict})
    return rows


# --- the projection and its report -----------------------------------------------------------

def project_capacity(scenario: Any, growth: Growth = Growth(), sample_rate: float | None = None,
                     pg_query_ms: float | None = None,
                     calibration: ServiceCalibration = DEFAULT_CALIBRATION) -> dict[str, Any]:
    """Simulate baseline and grown workloads; per season their needs, the comparison with the
    seed's table (for both) and a conclusion. The mapping is ``capacity.json``."""
    if pg_query_ms is not None and not (math.isfinite(pg_query_ms) and pg_query_ms > 0):
        raise CapacityInputError(f"--pg-query-ms: must be > 0, got {pg_query_ms}")
    runs = run_workloads(scenario, growth, sample_rate)
    plan: dict[str, Any] = {"scenario": scenario.name, "growth": {"users": growth.users, "queries": growth.queries}}
    for name, (sc, result) in runs.items():
        figures = season_figures(run_view(sc, result, pg_query_ms), calibration)
        plan[name] = {"sample_rate": sc.run.sample_rate, "base_qps": sc.traffic.base_qps,
                      "distinct": sc.queries.distinct, "organizations": sc.queries.organizations,
                      "hit_rate": result.summary["hit_rate"], "seasons": figures,
                      "comparison": compare_allocation(figures, sc.policy())}
    policy = scenario.policy()
    plan["seed_allocation"] = {k: v.model_dump() for k, v in policy.resources.items()}
    plan["method"] = {"pg_wait_probability": PG_WAIT_PROBABILITY, "generous_share": GENEROUS_SHARE,
                      "service_calibration": calibration.as_dict(), "replicas": policy.replicas.model_dump()}
    plan["seed_allocation_cost"] = seed_costs(policy, calibration)
    plan["conclusion"] = conclusion(plan)
    return plan


def seed_costs(policy: Policy, calibration: ServiceCalibration = DEFAULT_CALIBRATION) -> dict[str, dict[str, float]]:
    """A month of each row of the seed's table held all month (no origin calls); CPU cores as
    replicas of ``calibration.cores_per_replica`` cores."""
    return {name: breakdown(res.bytes_of("memory") / GB, res.bytes_of("redis_memory") / GB, res.postgres_connections,
                            res.cpu_cores / calibration.cores_per_replica, 0.0, policy.costs,
                            hours=HOURS_PER_MONTH).as_dict()
            for name, res in policy.resources.items()}


def _need_text(field: str, value: float) -> str:
    return fmt_bytes(value) if field in ("memory", "redis_memory") else f"{value:,.0f}"


def busiest(seasons: dict[str, dict[str, Any]]) -> str:
    return max(seasons, key=lambda s: seasons[s]["peak_qps"])


def conclusion(plan: dict[str, Any]) -> list[str]:
    """A few sentences: the grown busiest season's needs and where the seed's table is short or generous."""
    grown = plan["grown"]
    name = busiest(grown["seasons"])
    fig = grown["seasons"][name]
    row = allocation_row(name, plan_policy(plan))
    first = (f"After growth (users x{plan['growth']['users']:g}, queries x{plan['growth']['queries']:g}) "
             f"{name} peaks at {fig['peak_qps']:,.0f} requests/s (99th percentile of a second at its busiest minute; "
             f"busiest hour {fig['peak_hour_qps']:,.0f}/s) and needs {fmt_bytes(fig['memory_bytes'])} of cache "
             f"memory ({fig['replicas']} replicas x {fmt_bytes(fig['memory_per_replica_bytes'])}: a random balancer "
             f"gives each replica's memory tier the whole key space), {fmt_bytes(fig['redis_bytes'])} of Redis, {fig['postgres_connections']:,} PostgreSQL connections "
             f"and {fig['replicas']} replicas ({fig['cpu_cores']:g} cores), about "
             f"${fig['monthly_cost']['total']:,.0f} a month, "
             f"${fig['monthly_cost']['origin']:,.0f} of it origin calls.")
    verdicts = [c for c in grown["comparison"] if c["season"] == name]
    parts = [f"{c['resource']} {c['verdict']} ({_need_text(c['resource'], c['need'])} needed of "
             f"{_need_text(c['resource'], c['allocated'])})" for c in verdicts]
    second = f"Against the seed's {row} row: " + "; ".join(parts) + "."
    short = sorted({f"{c['resource']} in {c['season']}" for c in grown["comparison"] if c["verdict"] == "short"})
    third = ("Short after growth: " + ", ".join(short) + ".") if short else "Nothing in the seed's table is short after growth."
    infra = fig["monthly_cost"]["total"] - fig["monthly_cost"]["origin"]
    seed = plan["seed_allocation_cost"][row]["total"]
    third += f" Infrastructure for {name}: ${infra:,.0f} a month needed, ${seed:,.0f} for the seed's {row} row."
    lines = [first, second, third]
    if not fig["target_reachable"]:
        lines.append(f"The TTLs and the {fig['replicas']}-way split cap {name}'s memory-tier hit rate at "
                     f"{fig['max_hit_rate']:.1%} per replica ({fig['hit_rate']:.1%} with Redis and PostgreSQL, shared, "
                     f"serving the rest), below its {fig['hit_rate_target']:.0%} target: memory is sized for "
                     f"{fig['memory_hit_rate']:.1%}; more memory cannot reach the target.")
    return lines


def plan_policy(plan: dict[str, Any]) -> Policy:
    """The policy with the plan's seed allocation (the shipped one, or the scenario's overrides)."""
    from ..policy import load_policy

    return load_policy(overrides={"resources": plan["seed_allocation"]})


def season_table(seasons: dict[str, dict[str, Any]]) -> list[list[Any]]:
    return [[name, f"{f['peak_qps']:,.0f}", f"{f['peak_hour_qps']:,.0f}", f"{f['hit_rate']:.1%}",
             fmt_bytes(f["memory_per_replica_bytes"]), fmt_bytes(f["memory_bytes"]), fmt_bytes(f["redis_bytes"]),
             f["postgres_connections"], f["replicas"], f["cpu_cores"], f"${f['monthly_cost']['total']:,.0f}"]
            for name, f in seasons.items()]


SEASON_COLUMNS = ["season", "peak QPS (p99 second)", "busiest hour QPS", "hit rate", "memory per replica",
                  "memory (all replicas)", "Redis", "PG connections", "replicas", "CPU cores", "monthly cost"]


def capacity_report(plan: dict[str, Any]) -> Any:
    """The :class:`~wedcache.reporting.Report`: conclusion, per-season tables, comparison, figures."""
    g = plan["growth"]
    report = Report("wedcache capacity plan",
                    f"scenario {plan['scenario']}: users x{g['users']:g}, queries x{g['queries']:g} over 12 months")
    for line in plan["conclusion"]:
        report.paragraph(line)
    for name in ("baseline", "grown"):
        run = plan[name]
        report.heading(f"{name.capitalize()}: {run['base_qps']:g} base QPS, {run['distinct']:,} distinct queries, "
                       f"{run['organizations']:,} organizations")
        report.table(SEASON_COLUMNS, season_table(run["seasons"]),
                     caption=f"Needs per season ({run['sample_rate']:g} of keys simulated)")
    report.heading("Against the seed's resource allocation (grown workload)")
    report.table(["season", "resource", "seed row", "need", "allocated", "need / allocated", "verdict"],
                 [[c["season"], c["resource"], c["allocation"], _need_text(c["resource"], c["need"]),
                   _need_text(c["resource"], c["allocated"]), f"{c['ratio']:.2f}", c["verdict"]]
                  for c in plan["grown"]["comparison"]])
    report.paragraph(METHOD)
    report.figure("resources", resources_figure(plan), "Needs per season, baseline and grown, against the seed's table")
    report.figure("cost", cost_figure(plan), "Monthly cost per season by item (grown workload)")
    return report


METHOD = ("Method: both workloads are simulated with the real cache (SHARDS-sampled). Peak QPS is the 99th "
          "percentile of one second's Poisson arrivals at the season's busiest minute of the load profile. Memory is "
          "per replica x replicas: a random balancer sends each request to one of the season's peak replicas, and "
          "each replica's LRU stack distances over its own requests give the size that reaches the season's hit-rate "
          "target (TTL misses, and requests whose replica holds only an older copy, miss at every size); Redis "
          "is the peak of live entries (written through, kept until expiry plus grace or the next fill) x the "
          "measured entry size; PostgreSQL connections are Little's law with Erlang-C pools per replica (wait "
          "probability <= 1 %) at the peak QPS; replicas are the HPA model (2-20 at 70 % CPU) over each hour's "
          "busiest-minute load; cost is the "
          "policy's [costs] per month. Seasons at the base traffic multiplier are compared with the production "
          "row, the others with peak_season; generous means under half the allocation.")


def resources_figure(plan: dict[str, Any]) -> Any:
    import matplotlib.pyplot as plt

    fields = [("memory_bytes", "memory", "cache memory (GB)", GB), ("redis_bytes", "redis_memory", "Redis (GB)", GB),
              ("postgres_connections", "postgres_connections", "PostgreSQL connections", 1),
              ("cpu_cores", "cpu_cores", "CPU cores", 1)]
    policy = plan_policy(plan)
    fig, axes = plt.subplots(1, 4, figsize=(14, 3.6))
    for ax, (need, field, label, unit) in zip(axes, fields):
        seasons = list(plan["grown"]["seasons"])
        x = np.arange(len(seasons))
        for offset, name in ((-0.2, "baseline"), (0.2, "grown")):
            values = [plan[name]["seasons"].get(s, {}).get(need, 0) / unit for s in seasons]
            ax.bar(x + offset, values, width=0.4, label=name)
        seed = [allocated(policy, allocation_row(s, policy), field) / unit for s in seasons]
        ax.scatter(x, seed, marker="_", s=500, color="#c62828", label="seed allocation", zorder=3)
        ax.set_xticks(x, seasons)
        ax.set_title(label)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def cost_figure(plan: dict[str, Any]) -> Any:
    import matplotlib.pyplot as plt

    seasons = plan["grown"]["seasons"]
    items = ("memory", "redis", "postgres", "replicas", "origin")
    fig, ax = plt.subplots(figsize=(7, 3.6))
    bottom = np.zeros(len(seasons))
    for item in items:
        values = np.array([f["monthly_cost"][item] for f in seasons.values()])
        ax.bar(list(seasons), values, bottom=bottom, label=item)
        bottom += values
    ax.set_ylabel("USD per month")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def write_capacity(plan: dict[str, Any], out: Path) -> dict[str, Path]:
    """``capacity.json``, ``report.html``, ``report.md`` and the PNGs into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "capacity.json", plan)
    return {"json": out / "capacity.json", **capacity_report(plan).write(out)}


