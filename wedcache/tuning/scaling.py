"""Seasonal scaling policies compared over a simulated year: ``wedcache tune scaling``.

**Policies.** Each simulated hour a policy picks a *scale* ``m`` in ``[1, max_scale]`` (the
memory tier's budget is the scenario's budget x ``m``; ``max_scale`` defaults to the policy's
largest ``cache_size_multiplier``, 3.0 = "scale cache memory by 300 %"):

* ``seasonal`` - today's :class:`~wedcache.scaling.SeasonalScalingAutomator` plan: the season's
  ``cache_size_multiplier`` (spring 2.5, summer 3.0, fall 2.2, winter 1.0);
* ``scheduled`` - the source document's calendar: ``max_scale`` from March 1st (peak-season
  checklist), back to 1 from November 1st (off-season);
* ``reactive`` - ``AI_CACHE_AUTO_SCALE_THRESHOLD`` / ``SCALE_UP_FACTOR`` / ``SCALE_DOWN_FACTOR``
  (0.8 / 2.0 / 0.5): utilisation is the last hour's load over the load the current memory is
  sized for (``m x traffic.base_qps``: memory scales one to one with traffic, as the policy's
  season table has it). Above the threshold ``m`` is multiplied by the up factor; below
  ``threshold x down factor`` (where the scaled-down memory would still be under the
  threshold) by the down factor;
* ``predictive`` - a Holt-Winters forecast (statsmodels ``ExponentialSmoothing``, additive
  damped trend, multiplicative weekly or daily season) of the hourly load from the observed
  history, refitted daily; ``m`` covers the highest forecast of the next ``lead_hours`` at the
  threshold's utilisation, in steps of 0.5.

**TTLs.** A policy also sets the TTLs (:data:`TTL_MODES`): by default the season's
``ttl_adjustment_factor`` (the seed's plan, as :class:`~wedcache.scaling.SeasonalScalingAutomator`
applies it); ``NAME@none`` leaves the vendor TTLs unadjusted. Each run counts stale hits, so the
report weighs the adjustment's freshness against its hit rate and cost (:func:`ttl_effect`).

**Running.** Each policy runs the real simulation (:func:`simulations.model.build_system`, the
:class:`~simulations.engine.Engine`) with :class:`PolicyAutomator` in place of the seasonal
automator: the engine's hourly tick calls :meth:`PolicyAutomator.tick`, which reads the hour's
requests from the cache's memory-tier counters, asks the policy and resizes the memory tier.
Every policy sees the same requests (same seed: a paired comparison).

**Judging.** Per hour: the hit rate against the season's ``sla.seasonal.<season>.hitRate``, the
mean response time against its ``responseTime`` (read as the mean, as the simulation's SLA
checks read it) and the replicas' CPU (:mod:`wedcache.tuning.replicas`: the HPA, 2-20 replicas
at 70 %; saturated hours breach). Cost: :mod:`wedcache.tuning.costs` over the hours, with the
resources scaled from ``resources.production`` by ``m`` (memory 8 GB, Redis 16 GB, PostgreSQL
100 connections at ``m = 1``; 24 GB / 48 GB / 300 at 3 = ``resources.peak_season``), the HPA's
replicas and the origin calls (misses, scaled to the full workload).

**Recommending.** The cheapest policy among those within one breach-hour per thousand of the
fewest; written with its settings to ``recommended.toml``.
"""
from __future__ import annotations

import json
import math
import tomllib
import warnings
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import tomli_w

from ..config import Settings
from ..policy import Policy
from ..reporting import Report, fmt_percent, fmt_usd, write_json
from ..scaling import ScalingEvent
from .costs import CostBreakdown, ZERO, breakdown, gb
from .replicas import DEFAULT_CALIBRATION, HpaLag, ReplicaPlan, ServiceCalibration, plan_replicas

HOUR = 3600.0
_SETTINGS = Settings.model_fields
THRESHOLD = _SETTINGS["auto_scale_threshold"].default
SCALE_UP = _SETTINGS["scale_up_factor"].default
SCALE_DOWN = _SETTINGS["scale_down_factor"].default
POLICY_NAMES = ("seasonal", "scheduled", "reactive", "predictive", "predictive@none")
TTL_MODES = ("season", "none")
"""How a policy sets TTLs: ``season`` - the season's ``ttl_adjustment_factor`` (the seed's plan:
summer 0.8, spring and fall 0.9, winter 1.0: fresher answers in peak season); ``none`` - the
vendor TTLs unadjusted all year. Written ``NAME@MODE`` in ``--policies`` (``season`` by default)."""


# --- policies ----------------------------------------------------------------------------------

@dataclass
class Observed:
    """What a policy may read at an hour's tick: the time, the hourly loads so far (requests/s,
    full workload, oldest first) and the scale in force."""

    now: datetime
    loads: Sequence[float]
    scale: float


class ScalingPolicy:
    """Decides the scale each hour; subclasses implement :meth:`decide`."""

    name = "base"

    def __init__(self, policy: Policy, base_qps: float, max_scale: float | None = None, ttl: str = "season"):
        if ttl not in TTL_MODES:
            raise ValueError(f"--policies: unknown TTL mode {ttl!r}; choose from {', '.join(TTL_MODES)}")
        self.policy, self.base_qps, self.ttl = policy, base_qps, ttl
        self.max_scale = max_scale or max(s.cache_size_multiplier for s in policy.seasons.values())

    @property
    def label(self) -> str:
        """The name in reports: ``predictive``, or ``predictive@none`` for another TTL mode."""
        return self.name if self.ttl == "season" else f"{self.name}@{self.ttl}"

    def clamp(self, scale: float) -> float:
        return min(self.max_scale, max(1.0, scale))

    def decide(self, seen: Observed) -> float:
        raise NotImplementedError

    def settings(self) -> dict[str, Any]:
        """The parameters, for the report and ``recommended.toml``."""
        return {"max_scale": self.max_scale, "ttl_adjustment": self.ttl}


class SeasonalPolicy(ScalingPolicy):
    """The season's ``cache_size_multiplier`` (what the service does today)."""

    name = "seasonal"

    def decide(self, seen: Observed) -> float:
        return self.clamp(self.policy.seasons[self.policy.season_of(seen.now.date())].cache_size_multiplier)


class ScheduledPolicy(ScalingPolicy):
    """``max_scale`` from ``up`` (month, day) until ``down`` (month, day), 1 otherwise."""

    name = "scheduled"

    def __init__(self, policy: Policy, base_qps: float, max_scale: float | None = None, ttl: str = "season",
                 up: tuple[int, int] = (3, 1), down: tuple[int, int] = (11, 1)):
        super().__init__(policy, base_qps, max_scale, ttl)
        self.up, self.down = up, down

    def in_peak(self, day: date) -> bool:
        return self.up <= (day.month, day.day) < self.down

    def decide(self, seen: Observed) -> float:
        return self.max_scale if self.in_peak(seen.now.date()) else 1.0

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "scale_up_on": f"{self.up[0]:02d}-{self.up[1]:02d}",
                "scale_down_on": f"{self.down[0]:02d}-{self.down[1]:02d}"}


class ReactivePolicy(ScalingPolicy):
    """Threshold scaling on utilisation = last hour's load / (scale x ``base_qps``)."""

    name = "reactive"

    def __init__(self, policy: Policy, base_qps: float, max_scale: float | None = None, ttl: str = "season",
                 threshold: float = THRESHOLD, up_factor: float = SCALE_UP, down_factor: float = SCALE_DOWN):
        super().__init__(policy, base_qps, max_scale, ttl)
        self.threshold, self.up_factor, self.down_factor = threshold, up_factor, down_factor

    def utilization(self, load: float, scale: float) -> float:
        return load / (scale * self.base_qps)

    def decide(self, seen: Observed) -> float:
        if not seen.loads:
            return self.clamp(seen.scale)
        u = self.utilization(seen.loads[-1], seen.scale)
        if u > self.threshold:
            return self.clamp(seen.scale * self.up_factor)
        if u < self.threshold * self.down_factor:
            return self.clamp(seen.scale * self.down_factor)
        return seen.scale

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "AI_CACHE_AUTO_SCALE_THRESHOLD": self.threshold,
                "AI_CACHE_SCALE_UP_FACTOR": self.up_factor, "AI_CACHE_SCALE_DOWN_FACTOR": self.down_factor}


def holt_winters_forecast(history: Sequence[float], horizon: int, period: int) -> np.ndarray:
    """``horizon`` hourly loads after ``history`` from statsmodels' Holt-Winters
    (``ExponentialSmoothing``: additive damped trend, multiplicative season of ``period``)."""
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    values = np.maximum(np.asarray(history, float), 1e-6)
    model = ExponentialSmoothing(values, trend="add", damped_trend=True, seasonal="mul",
                                 seasonal_periods=period, initialization_method="heuristic")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence chatter on short histories
        fit = model.fit(optimized=True)
    return np.maximum(np.asarray(fit.forecast(horizon), float), 0.0)


class PredictivePolicy(ScalingPolicy):
    """Scale for the forecast peak of the next ``lead_hours`` (statsmodels Holt-Winters).

    The model is fitted on the last ``history_days`` of observed hourly loads once a day
    (``refit_hours``) with a weekly season once two weeks are seen, a daily one after two
    days; before that the policy acts like :class:`ReactivePolicy`."""

    name = "predictive"

    def __init__(self, policy: Policy, base_qps: float, max_scale: float | None = None, ttl: str = "season",
                 threshold: float = THRESHOLD, lead_hours: int = 6, history_days: int = 28,
                 refit_hours: int = 24, step: float = 0.5,
                 forecast: Callable[[Sequence[float], int, int], np.ndarray] = holt_winters_forecast):
        super().__init__(policy, base_qps, max_scale, ttl)
        self.threshold, self.lead_hours, self.history_days = threshold, lead_hours, history_days
        self.refit_hours, self.step, self.forecast = refit_hours, step, forecast
        self.fallback = ReactivePolicy(policy, base_qps, max_scale, ttl, threshold)
        self._forecast: np.ndarray | None = None
        self._made_at = 0
        self.fits = 0

    def period(self, hours_seen: int) -> int | None:
        """The season length the history supports: a week, a day, or none yet."""
        return next((p for p in (168, 24) if hours_seen >= 2 * p), None)

    def predicted(self, loads: Sequence[float]) -> np.ndarray | None:
        """The forecast of the next ``lead_hours`` (refitted when due), or ``None`` without one."""
        n = len(loads)
        period = self.period(n)
        if period is None:
            return None
        if self._forecast is None or n - self._made_at >= self.refit_hours:
            history = list(loads)[-self.history_days * 24:]
            self._forecast = self.forecast(history, self.refit_hours + self.lead_hours, period)
            self._made_at, self.fits = n, self.fits + 1
        offset = n - self._made_at
        return self._forecast[offset: offset + self.lead_hours]

    def decide(self, seen: Observed) -> float:
        ahead = self.predicted(seen.loads)
        if ahead is None or not len(ahead):
            return self.fallback.decide(seen)
        need = float(np.max(ahead)) / (self.threshold * self.base_qps)
        return self.clamp(math.ceil(need / self.step - 1e-9) * self.step)

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "threshold": self.threshold, "lead_hours": self.lead_hours,
                "history_days": self.history_days, "refit_hours": self.refit_hours, "step": self.step,
                "model": "statsmodels ExponentialSmoothing(trend=add, damped, seasonal=mul, 168 h or 24 h)"}


POLICIES: dict[str, type[ScalingPolicy]] = {cls.name: cls for cls in
                                            (SeasonalPolicy, ScheduledPolicy, ReactivePolicy, PredictivePolicy)}


def make_policies(names: Sequence[str], policy: Policy, base_qps: float,
                  max_scale: float | None = None) -> list[ScalingPolicy]:
    """The named policies (``NAME`` or ``NAME@TTL_MODE``) with their default (the seed's) settings."""
    if not names:
        raise ValueError("--policies: name at least one policy")
    made = []
    for item in names:
        name, _, ttl = item.partition("@")
        if name not in POLICIES:
            raise ValueError(f"--policies: unknown policy {name!r}; choose from {', '.join(POLICIES)}")
        made.append(POLICIES[name](policy, base_qps, max_scale, ttl or "season"))
    return made


def without_ttl_adjustment(policy: Policy) -> Policy:
    """``policy`` with every season's ``ttl_adjustment_factor`` at 1 (TTL mode ``none``)."""
    seasons = {k: v.model_copy(update={"ttl_adjustment_factor": 1.0}) for k, v in policy.seasons.items()}
    return policy.model_copy(update={"seasons": seasons})


# --- the automator the engine ticks ----------------------------------------------------------------

class PolicyAutomator:
    """Same interface as :class:`~wedcache.scaling.SeasonalScalingAutomator` (``tick()``, ``events``):
    each tick reads the hour's requests from the cache's memory-tier counters, appends the
    hour's load (scaled to the full workload) and resizes the memory tier to the policy's scale."""

    def __init__(self, scaling: ScalingPolicy, system: Any, scale: float):
        self.scaling, self.system, self.request_scale = scaling, system, scale
        stats = system.memory.stats()
        self.base_bytes, self.base_entries = stats["max_bytes"], stats["max_entries"]
        self.counters = system.cache.counters["memory"]
        self.loads: list[float] = []
        self.scales: list[float] = []
        """The scale in force during each hour (the decision at its start)."""
        self.events: list[ScalingEvent] = []
        self.scale = 1.0
        self._seen, self._ticks = 0, 0
        if scaling.ttl == "none":  # the cache's TTL strategy reads the seasons' factors from its policy
            system.cache.ttl.policy = without_ttl_adjustment(system.cache.ttl.policy)

    def _observe(self) -> None:
        lookups = self.counters.lookups
        if self._ticks:
            self.loads.append((lookups - self._seen) * self.request_scale / HOUR)
        self._seen, self._ticks = lookups, self._ticks + 1

    def tick(self) -> ScalingEvent | None:
        self._observe()
        clock = self.system.clock
        now = datetime.fromtimestamp(clock.now(), timezone.utc)
        scale = self.scaling.decide(Observed(now, self.loads, self.scale))
        self.scales.append(scale)
        if scale == self.scale and self.events:
            return None
        return self._apply(scale, now)

    def _apply(self, scale: float, now: datetime) -> ScalingEvent:
        max_bytes, max_entries = max(1, int(self.base_bytes * scale)), max(1, int(self.base_entries * scale))
        evicted = self.system.memory.resize(max_bytes, max_entries)
        self.scale = scale
        season = self.scaling.policy.season_of(now.date())
        factor = 1.0 if self.scaling.ttl == "none" else self.scaling.policy.seasons[season].ttl_adjustment_factor
        event = ScalingEvent(self.system.clock.now(), season, scale, factor, max_bytes, max_entries, evicted)
        self.events.append(event)
        return event


# --- one run ---------------------------------------------------------------------------------------

@dataclass
class PolicyRun:
    """One policy's simulated hours: the per-hour frame and its automator."""

    name: str
    hours: pd.DataFrame
    automator: PolicyAutomator
    summary: dict[str, Any] = field(default_factory=dict)


def hourly_frame(rec: Any, start: datetime, scale: float) -> pd.DataFrame:
    """Per simulated hour: ``requests``, ``hits``, ``misses`` and ``stale_hits`` (scaled), ``hit_rate``,
    ``mean_ms``, ``p95_ms``."""
    hour = (rec.t // HOUR).astype(np.int64)
    n = int(hour.max()) + 1 if hour.size else 0
    count = np.bincount(hour, minlength=n).astype(float)
    hits = np.bincount(hour, weights=(rec.code <= 2).astype(float), minlength=n)
    stale = np.bincount(hour, weights=rec.stale.astype(float), minlength=n) if rec.stale is not None else hits * np.nan
    latency = np.bincount(hour, weights=rec.latency_ms, minlength=n)
    p95 = pd.Series(rec.latency_ms).groupby(hour).quantile(0.95).reindex(range(n)).to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        return pd.DataFrame({"hour": pd.Timestamp(start) + pd.to_timedelta(np.arange(n), unit="h"),
                             "requests": count * scale, "misses": (count - hits) * scale,
                             "stale_hits": stale * scale, "hits": hits * scale,
                             "hit_rate": hits / count, "mean_ms": latency / count, "p95_ms": p95})


def simulate_policy(scenario: Any, scaling: ScalingPolicy) -> PolicyRun:
    """Run ``scenario`` once with ``scaling`` deciding the memory budget every hour."""
    from simulations.engine import Engine
    from simulations.model import build_system, start_of
    from simulations.run import build_source, mark_stale

    policy = scenario.policy()
    system = build_system(scenario, policy)
    try:
        source = build_source(scenario, policy, None)
        system.automator = PolicyAutomator(scaling, system, source.scale)
        rec = Engine(system, source).run()
        rec.stale = mark_stale(rec, source)
        frame = hourly_frame(rec, start_of(scenario), source.scale)
    finally:
        system.close()
    automator = system.automator
    frame["scale"] = _per_hour(automator.scales, len(frame), 1.0)
    frame["memory_bytes"] = [s[1] / scenario.run.sample_rate for s in rec.memory_samples[:len(frame)]] + \
        [np.nan] * max(0, len(frame) - len(rec.memory_samples))
    return PolicyRun(scaling.label, frame, automator)


def _per_hour(values: Sequence[float], n: int, default: float) -> np.ndarray:
    out = np.full(n, default, float)
    out[:min(n, len(values))] = list(values)[:n]
    return out


# --- judging ---------------------------------------------------------------------------------------

def hour_targets(hours: pd.Series, policy: Policy) -> pd.DataFrame:
    """The season's hit-rate and response-time (mean) target of each hour."""
    seasons = [policy.season_of(ts.date()) for ts in hours]
    return pd.DataFrame({"season": seasons,
                         "hit_rate_target": [policy.sla.seasonal[s].hitRate for s in seasons],
                         "response_ms_target": [policy.sla.seasonal[s].responseTime for s in seasons]})


def judge(run: PolicyRun, policy: Policy, cal: ServiceCalibration = DEFAULT_CALIBRATION,
          lag: HpaLag = HpaLag()) -> dict[str, Any]:
    """Breaches, replicas, peak memory and cost of one run (adds the columns to ``run.hours``)."""
    frame = run.hours
    frame[["season", "hit_rate_target", "response_ms_target"]] = hour_targets(frame["hour"], policy)
    load = frame["requests"].to_numpy() / HOUR
    plan = plan_replicas(load, frame["hit_rate"].to_numpy(), policy.replicas, cal, lag)
    frame["replicas"], frame["cpu_utilization"], frame["saturated"] = plan.replicas, plan.cpu_utilization, plan.saturated
    served = frame["requests"] > 0
    frame["hit_ok"] = ~served | (frame["hit_rate"] >= frame["hit_rate_target"])
    frame["response_ok"] = ~served | (frame["mean_ms"] <= frame["response_ms_target"])
    frame["in_sla"] = frame["hit_ok"] & frame["response_ok"] & ~frame["saturated"]
    cost = hourly_costs(frame, policy)
    run.summary = _summary(run, frame, plan, cost)
    return run.summary


def resources_at(scale: float, policy: Policy) -> tuple[float, float, float]:
    """(app memory GB, Redis GB, PostgreSQL connections) at ``scale`` x ``resources.production``."""
    prod = policy.resources["production"]
    return (gb(prod.bytes_of("memory")) * scale, gb(prod.bytes_of("redis_memory")) * scale,
            prod.postgres_connections * scale)


def hourly_costs(frame: pd.DataFrame, policy: Policy) -> CostBreakdown:
    """The run's cost: each hour's resources, replicas and origin calls, summed."""
    total = ZERO
    for scale, replicas, misses in zip(frame["scale"], frame["replicas"], frame["misses"]):
        memory, redis, pg = resources_at(float(scale), policy)
        total = total + breakdown(memory, redis, pg, float(replicas), float(misses), policy.costs)
    return total


def _summary(run: PolicyRun, frame: pd.DataFrame, plan: ReplicaPlan, cost: CostBreakdown) -> dict[str, Any]:
    n = len(frame)
    by_season = {s: {"hours": int(g.shape[0]), "in_sla": int(g["in_sla"].sum()),
                     "hit_rate": _weighted(g["hit_rate"], g["requests"])}
                 for s, g in frame.groupby("season", sort=False)}
    return {
        "policy": run.name, "settings": run.automator.scaling.settings(), "hours": n,
        "in_sla_hours": int(frame["in_sla"].sum()), "breach_hours": int(n - frame["in_sla"].sum()),
        "breaches": {"hit_rate": int((~frame["hit_ok"]).sum()), "response_time": int((~frame["response_ok"]).sum()),
                     "cpu_saturated": int(frame["saturated"].sum())},
        "hit_rate": _weighted(frame["hit_rate"], frame["requests"]),
        "stale_hit_fraction": float(frame["stale_hits"].sum() / frame["hits"].sum()) if frame["hits"].sum() else 0.0,
        "mean_ms": _weighted(frame["mean_ms"], frame["requests"]),
        "peak_scale": float(frame["scale"].max()), "mean_scale": float(frame["scale"].mean()),
        "peak_memory_gb": resources_at(float(frame["scale"].max()), run.automator.scaling.policy)[0],
        "peak_simulated_memory_gb": gb(float(np.nanmax(frame["memory_bytes"]))) if n else 0.0,
        "memory_gb_hours": float(frame["scale"].sum()) * resources_at(1.0, run.automator.scaling.policy)[0],
        "replica_hours": plan.replica_hours, "peak_replicas": plan.peak,
        "origin_calls": float(frame["misses"].sum()), "scaling_events": len(run.automator.events),
        "cost_usd": cost.as_dict(), "by_season": by_season,
    }


def _weighted(values: pd.Series, weights: pd.Series) -> float | None:
    mask = values.notna() & (weights > 0)
    return float(np.average(values[mask], weights=weights[mask])) if mask.any() else None


# --- comparing -------------------------------------------------------------------------------------

def recommend(summaries: list[dict[str, Any]]) -> dict[str, Any]:
    """The cheapest policy among those within 0.1 % of the hours of the fewest breaches."""
    fewest = min(s["breach_hours"] for s in summaries)
    allowance = max(1, math.ceil(0.001 * summaries[0]["hours"]))
    eligible = [s for s in summaries if s["breach_hours"] <= fewest + allowance]
    best = min(eligible, key=lambda s: s["cost_usd"]["total"])
    return {"policy": best["policy"], "settings": best["settings"],
            "why": f"fewest breach hours ({fewest}, allowance {allowance}) at the lowest cost among "
                   f"{', '.join(s['policy'] for s in eligible)}"}


def ttl_effect(summaries: list[dict[str, Any]]) -> str | None:
    """What the seasonal TTL adjustment does, from a policy run with both TTL modes (``x`` and ``x@none``)."""
    by_name = {s["policy"]: s for s in summaries}
    pair = next(((by_name[n], by_name[f"{n}@none"]) for n in by_name if f"{n}@none" in by_name), None)
    if pair is None:
        return None
    on, off = pair
    return (f"Seasonal TTL adjustment ({on['policy']} against {off['policy']}, the same memory plan): hit rate "
            f"{on['hit_rate']:.1%} against {off['hit_rate']:.1%}, stale hits {on['stale_hit_fraction']:.1%} against "
            f"{off['stale_hit_fraction']:.1%}, {on['in_sla_hours']:,} against {off['in_sla_hours']:,} hours in SLA, "
            f"{on['replica_hours']:,.0f} against {off['replica_hours']:,.0f} replica-hours, "
            f"${on['cost_usd']['total']:,.0f} against ${off['cost_usd']['total']:,.0f}.")


def conclusion(summaries: list[dict[str, Any]], chosen: dict[str, Any]) -> str:
    """One sentence per policy, the recommended one first."""
    order = sorted(summaries, key=lambda s: s["policy"] != chosen["policy"])
    parts = [f"{s['policy']} meets the SLA in {s['in_sla_hours']:,} of {s['hours']:,} hours at "
             f"${s['cost_usd']['total']:,.0f} (hit rate {s['hit_rate']:.1%}, {s['stale_hit_fraction']:.1%} of hits stale, "
             f"peak {s['peak_memory_gb']:.0f} GB, {s['peak_replicas']} replicas, {s['replica_hours']:,.0f} replica-hours)"
             for s in order]
    return f"Recommended: **{chosen['policy']}**. " + "; ".join(parts) + "."


@dataclass
class Comparison:
    """What :func:`compare_policies` returns and :func:`write_outputs` writes."""

    scenario: Any
    runs: list[PolicyRun]
    summaries: list[dict[str, Any]]
    recommended: dict[str, Any]
    calibration: ServiceCalibration
    lag: HpaLag

    def to_dict(self) -> dict[str, Any]:
        return {"scenario": self.scenario.name, "start_date": self.scenario.run.start_date.isoformat(),
                "days": self.scenario.days, "sample_rate": self.scenario.run.sample_rate,
                "seed": self.scenario.run.seed, "base_qps": self.scenario.traffic.base_qps,
                "conclusion": conclusion(self.summaries, self.recommended).replace("**", ""),
                "ttl_effect": ttl_effect(self.summaries),
                "recommended": self.recommended, "policies": self.summaries,
                "calibration": self.calibration.as_dict(),
                "hpa": {"lag_up_hours": self.lag.up_hours, "down_window_hours": self.lag.down_window_hours},
                "costs": self.runs[0].automator.scaling.policy.costs.model_dump()}


def compare_policies(scenario: Any, names: Sequence[str] = POLICY_NAMES, *, max_scale: float | None = None,
                     calibration: ServiceCalibration = DEFAULT_CALIBRATION, lag: HpaLag = HpaLag(),
                     progress: Callable[[str], None] | None = None) -> Comparison:
    """Simulate ``scenario`` once per policy and judge each run."""
    policy = scenario.policy()
    runs, summaries = [], []
    for scaling in make_policies(list(names), policy, scenario.traffic.base_qps, max_scale):
        if progress:
            progress(f"simulating {scenario.name} with the {scaling.label} policy")
        run = simulate_policy(scenario, scaling)
        summaries.append(judge(run, policy, calibration, lag))
        runs.append(run)
    return Comparison(scenario, runs, summaries, recommend(summaries), calibration, lag)


# --- writing ---------------------------------------------------------------------------------------

def recommended_toml(comparison: Comparison) -> dict[str, Any]:
    """``recommended.toml``: the chosen policy, its settings and the calibration used."""
    rec = comparison.recommended
    chosen = next(s for s in comparison.summaries if s["policy"] == rec["policy"])
    return {"scaling": {"policy": rec["policy"], "why": rec["why"], **_toml_safe(rec["settings"])},
            "expected": {"in_sla_hours": chosen["in_sla_hours"], "hours": chosen["hours"],
                         "cost_usd": chosen["cost_usd"]["total"], "peak_memory_gb": chosen["peak_memory_gb"],
                         "peak_replicas": chosen["peak_replicas"]},
            "calibration": _toml_safe(comparison.calibration.as_dict())}


def _toml_safe(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def write_outputs(comparison: Comparison, out: Path) -> dict[str, Path]:
    """``scaling.json``, ``recommended.toml``, ``hours.csv`` and the report (HTML, Markdown, PNGs)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "scaling.json", "recommended": out / "recommended.toml", "hours": out / "hours.csv"}
    write_json(paths["json"], comparison.to_dict())
    paths["recommended"].write_text(tomli_w.dumps(recommended_toml(comparison)))
    hours = pd.concat([r.hours.assign(policy=r.name) for r in comparison.runs], ignore_index=True)
    hours.to_csv(paths["hours"], index=False, float_format="%.6g")
    report = build_report(comparison, conclusion(comparison.summaries, comparison.recommended))
    return {**paths, **report.write(out)}


def load_calibration_file(path: Path) -> ServiceCalibration:
    """A load test's ``gate.json`` (:meth:`ServiceCalibration.from_gate`), or a TOML file with a
    ``[calibration]`` table (or top-level keys) of :class:`ServiceCalibration`."""
    try:
        text = Path(path).read_text()
        if Path(path).suffix == ".json":
            return ServiceCalibration.from_gate(json.loads(text))
        data = tomllib.loads(text)
    except (OSError, ValueError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"--calibration: cannot use {path}: {exc}") from None
    return DEFAULT_CALIBRATION.with_overrides(**data.get("calibration", data))


# --- the report ------------------------------------------------------------------------------------

def build_report(comparison: Comparison, text: str) -> Report:
    """The comparison as a :class:`~wedcache.reporting.Report`: conclusion, table, figures."""
    sc = comparison.scenario
    report = Report("Seasonal scaling policies",
                    f"{sc.name}: {sc.run.start_date} + {sc.days:g} days, base {sc.traffic.base_qps:g} requests/s, "
                    f"{sc.run.sample_rate:g} of keys simulated, seed {sc.run.seed}")
    report.paragraph(text)
    report.paragraph(f"Why: {comparison.recommended['why']}.")
    effect = ttl_effect(comparison.summaries)
    if effect:
        report.paragraph(effect)
    report.table(["policy", "in SLA h", "hit-rate breaches", "response breaches", "CPU saturated", "hit rate",
                  "stale hits", "peak memory GB", "replica-hours", "peak replicas", "cost"],
                 [[s["policy"], s["in_sla_hours"], s["breaches"]["hit_rate"], s["breaches"]["response_time"],
                   s["breaches"]["cpu_saturated"], fmt_percent(s["hit_rate"]), fmt_percent(s["stale_hit_fraction"]),
                   s["peak_memory_gb"],
                   s["replica_hours"], s["peak_replicas"], fmt_usd(s["cost_usd"]["total"])]
                  for s in comparison.summaries], caption="Hours in target and what they cost")
    items = ("memory", "redis", "postgres", "replicas", "origin")
    report.table(["policy", *items, "total"],
                 [[s["policy"], *(fmt_usd(s["cost_usd"][k]) for k in items), fmt_usd(s["cost_usd"]["total"])]
                  for s in comparison.summaries], caption="Cost by item (USD, from the policy's [costs])")
    _figures(report, comparison)
    report.heading("Method")
    report.bullets(_method(comparison))
    return report


def _method(comparison: Comparison) -> list[str]:
    cal = comparison.calibration
    return [
        "Each policy runs the real cache in the simulation (same seed: the same requests); every "
        "simulated hour it sets the memory budget to scale x the scenario's.",
        "An hour is in SLA when its hit rate meets sla.seasonal.<season>.hitRate, its mean response "
        "time meets sla.seasonal.<season>.responseTime and the replicas' CPU is not saturated.",
        f"Replicas: HPA {comparison.runs[0].automator.scaling.policy.replicas.min_replicas}-"
        f"{comparison.runs[0].automator.scaling.policy.replicas.max_replicas} at "
        f"{comparison.runs[0].automator.scaling.policy.replicas.target_cpu_utilization:.0%} CPU, "
        f"{cal.hit_cpu_ms:g} ms CPU per hit, {cal.miss_cpu_ms:g} ms per miss, {cal.cores_per_replica:g} "
        f"cores per replica; source: {cal.source}",
        "TTLs: a policy NAME follows the seed's seasonal plan (each season's ttl_adjustment_factor: "
        "summer 0.8, spring and fall 0.9, winter 1.0); NAME@none keeps the vendor TTLs unadjusted. "
        "Stale hits are hits whose vendor data changed after the entry was stored.",
        "Resources scale with the plan from resources.production (x3 = resources.peak_season); "
        "origin calls are the misses scaled to the full workload.",
    ]


def _figures(report: Report, comparison: Comparison) -> None:
    import matplotlib.pyplot as plt

    fig, (top, mid, low) = plt.subplots(3, 1, figsize=(10, 8), sharex=True)
    first = comparison.runs[0].hours
    top.plot(first["hour"], first["requests"] / HOUR, color="#999", lw=0.5)
    top.set_ylabel("load, requests/s")
    for run in comparison.runs:
        mid.step(run.hours["hour"], run.hours["scale"], where="post", label=run.name, lw=1)
        low.step(run.hours["hour"], run.hours["replicas"], where="post", label=run.name, lw=0.8)
    mid.set_ylabel("memory scale")
    low.set_ylabel("replicas")
    mid.legend(loc="upper right", fontsize=8)
    report.figure("scaling", fig, "Load, each policy's memory scale and the HPA's replicas per hour")
    fig, ax = plt.subplots(figsize=(10, 3.5))
    for run in comparison.runs:
        daily = run.hours.set_index("hour")["in_sla"].resample("D").mean()
        ax.plot(daily.index, daily.to_numpy(), label=run.name, lw=1)
    ax.set_ylabel("share of hours in SLA (daily)")
    ax.legend(fontsize=8)
    report.figure("sla", fig, "Share of each day's hours in SLA, per policy")
