"""One simulation from scenario to files: :func:`simulate`.

Builds the request source (the workload model, or a trace), the system under test
(:mod:`simulations.model`) and the :class:`~simulations.engine.Engine`; runs it; and writes
``summary.json``, ``timeseries.csv`` and the report (``report.html``, ``report.md``, PNGs)
to the output folder. Same scenario and seed, same ``summary.json`` (apart from the
wall-time fields), because every random stream is seeded from the scenario's seed.

A scenario with ``[cache] semantic = true`` is run twice: first with exact keys only, then
with semantic matching, on the same requests (same seed); ``summary["semantic"]`` compares
them (:func:`~simulations.results.semantic_summary`). The counterfactual is a second run, not
the exact hits of the semantic run, because every semantic hit also saves a store the exact
cache would have hit later. Paraphrases without semantic matching get the block too (the
exact baseline's own figures).
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from wedcache.keys import organization_uuid
from wedcache.policy import VENDOR_TYPES, Policy
from wedcache.reporting import write_json

from .engine import Engine, Records
from .model import System, build_system, start_of
from .report import write_simulation_report
from .results import semantic_summary, summarize, timeseries
from .scenario import Scenario
from .sources import TraceSource, WorkloadSource
from .workload import Workload

WALL_FIELDS = ("wall_seconds", "setup_seconds", "sim_requests_per_second")
"""Fields of ``summary.json`` that measure the machine, not the model."""


@dataclass
class SimulationResult:
    summary: dict[str, Any]
    timeseries: pd.DataFrame
    files: dict[str, Path]
    records: Records


def build_source(scenario: Scenario, policy: Any, trace: Path | None, namespace: str = "") -> Any:
    """The requests of ``scenario`` (or of ``trace``), sampled at the scenario's rate."""
    rng = np.random.default_rng(scenario.run.seed)
    spec = scenario.workload_spec()
    if trace is not None:
        from .trace import load_trace
        return TraceSource(load_trace(trace), spec, policy, rng, scenario.run.sample_rate, namespace)
    return WorkloadSource(Workload(spec, policy, rng), scenario.run.sample_rate, namespace)


def mark_stale(rec: Records, source: Any) -> np.ndarray:
    """Hits whose vendor's data changed between the entry's creation and the request."""
    stale = np.zeros(rec.code.size, bool)
    hits = rec.code <= 2
    vendors = source.vendor_codes[rec.object_id]
    for code, name in enumerate(VENDOR_TYPES):
        mask = hits & (vendors == code)
        if mask.any():
            stale[mask] = source.changes.changed_between(name, rec.created[mask], rec.t[mask])
    return stale


def simulate(scenario: Scenario, out: Path | None = None, *, backends: str = "modeled",
             trace: Path | None = None, calibration: Path | None = None,
             progress: Callable[[float, float], None] | None = None, policy: Policy | None = None) -> SimulationResult:
    """Run ``scenario`` and, when ``out`` is given, write its results and report there.

    :param policy: the policy to start from (a tuner's candidate); default the one
        ``AI_CACHE_POLICY_FILE`` names, else the shipped one. The scenario's ``[sla]`` and
        ``cache.jitter`` overrides apply on top either way."""
    started = time.perf_counter()
    policy = scenario.policy(policy)
    exact = None
    if scenario.cache.semantic:
        exact_only = dataclasses.replace(scenario, cache=dataclasses.replace(scenario.cache, semantic=False))
        exact = _run(exact_only, policy, backends, trace, calibration, None)[0]
    summary, series, rec = _run(scenario, policy, backends, trace, calibration, progress, exact)
    summary["wall_seconds"] = time.perf_counter() - started
    files = write_results(summary, series, out) if out is not None else {}
    return SimulationResult(summary, series, files, rec)


def _run(scenario: Scenario, policy: Policy, backends: str, trace: Path | None, calibration: Path | None,
         progress: Callable[[float, float], None] | None,
         exact: dict[str, Any] | None = None) -> tuple[dict[str, Any], pd.DataFrame, Records]:
    """One run of ``scenario``: its summary (with the ``semantic`` block when the scenario has
    paraphrases or semantic matching; ``exact``: the exact-only run's summary), time series, records."""
    system = build_system(scenario, policy, backends=backends, calibration=calibration)
    source = None
    try:
        source = build_source(scenario, policy, trace, system.namespace)
        rec = Engine(system, source, progress).run()
        rec.stale = mark_stale(rec, source)
        start = start_of(scenario)
        summary = summarize(rec, scenario=scenario, policy=policy, start=start, source=source,
                            origin=system.origin, backends=backends, wall_seconds=0.0)
        summary["scaling_events"] = [event.to_dict() for event in system.automator.events]
        if scenario.cache.semantic or scenario.queries.paraphrase_variants or scenario.queries.near_miss_share:
            threshold = system.semantic.settings.threshold if system.semantic is not None else None
            summary["semantic"] = semantic_summary(rec, source, scenario=scenario, threshold=threshold, exact=exact)
        series = timeseries(rec, start, source.scale, system.origin.cost_per_call_usd)
    finally:
        _clean_up(system, source)
    return summary, series, rec


def write_results(summary: dict[str, Any], series: pd.DataFrame, out: Path) -> dict[str, Path]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "summary.json", summary)
    series.to_csv(out / "timeseries.csv", index=False)
    files = write_simulation_report(summary, series, out)
    return {"summary": out / "summary.json", "timeseries": out / "timeseries.csv", **files}


def _clean_up(system: System, source: Any) -> None:
    """A live run removes its entries (its organizations are namespaced), then closes."""
    try:
        if system.live and source is not None:
            for org in source.organizations():
                system.cache.invalidate(org_id=organization_uuid(org), scope="organization")
    finally:
        system.close()
