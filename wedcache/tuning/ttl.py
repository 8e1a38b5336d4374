"""TTL tuning per vendor type: :func:`tune_ttl` (in simulation) and what both sources share.

**The sweep.** A point of the sweep is a pair ``(factor, swr_fraction)``: every vendor type
gets ``baseTtl = factor × its seed baseTtl`` and ``stale_while_revalidate_seconds =
swr_fraction × that baseTtl``. One simulation (:func:`simulations.run.simulate`, the real
cache in simulated time) per point measures *every* vendor type at once, read from the
summary's ``by_vendor_type``: hit rate, stale-hit fraction, origin cost and p95. This is
sound because each request names one vendor type and an entry's TTL and grace depend only on
its own vendor's ``baseTtl`` and window (times the market tier's multiplier and the season's
adjustment, as in production); vendor types share only the memory budget and the origin
queue. The scenario should give the cache room enough that evictions do not couple them
(``simulations/scenarios/tune-ttl.toml`` does); the re-simulation below checks it. The seed
policy itself is simulated too (its windows are not on the grid): it is the "before" and a
candidate.

**Data changes stay put.** The simulation draws each vendor's data changes at
``volatilityFactor / baseTtl`` per second. A vendor's data does not change faster because we
cache it longer, so every swept (and the tuned) policy rescales ``volatilityFactor`` by
``new baseTtl / seed baseTtl``: the change rate per hour is the seed's, and
``volatilityFactor`` keeps its meaning (changes per ``baseTtl``).

**The choice.** Per vendor type, among the points whose stale-hit fraction is within the
bound (``max_stale``, or the vendor's own bound), the one with the highest hit rate (ties:
the less stale). When none is within the bound, the least stale point, flagged
``meets_bound: false``.

**The check.** The tuned policy is simulated once more: per vendor type and overall, its hit
rate and stale fraction must reproduce the predicted ones within one point
(``verification`` in ``tuning.json``).

**Outputs** (:func:`write_outputs`, shared with :mod:`wedcache.tuning.ttl_metrics`):
``tuned-policy.toml`` (:func:`wedcache.policy.dump_policy`; ``AI_CACHE_POLICY_FILE``
loads it), ``tuning.json`` and the report (``report.html``, ``report.md``, ``pareto.png``,
``before-after.png``) built with :class:`wedcache.reporting.Report`.
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Callable

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from ..errors import InvalidInput
from ..policy import VENDOR_TYPES, Policy, dump_policy, load_policy, policy_from_dict, policy_to_dict
from ..reporting import Report, fmt_percent, fmt_usd, write_json

DEFAULT_TTL_FACTORS = tuple(2 ** (k / 2) for k in range(-10, 3))
"""Multiples of the seed's ``baseTtl`` swept by default: 1/32 to 2 in steps of √2."""
DEFAULT_SWR_FRACTIONS = (0.0, 0.1, 0.25)
"""Stale-while-revalidate windows swept by default, as fractions of the point's ``baseTtl``."""
DEFAULT_MAX_STALE = 0.05
TOLERANCE_POINTS = 1.0
"""How far (percentage points) the re-simulation may be from the prediction."""
METRICS = ("hit_rate", "stale_hit_fraction", "origin_cost_usd", "p95_ms", "requests")

Progress = Callable[[str], None]


# --- the grid and the policies ---------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Grid:
    """What is swept: TTL factors (of the seed's ``baseTtl``) and SWR fractions (of the TTL)."""

    ttl_factors: tuple[float, ...] = DEFAULT_TTL_FACTORS
    swr_fractions: tuple[float, ...] = DEFAULT_SWR_FRACTIONS

    def __post_init__(self) -> None:
        _check(bool(self.ttl_factors) and all(f > 0 and math.isfinite(f) for f in self.ttl_factors),
               "--ttl-factors", "give one or more numbers > 0")
        _check(bool(self.swr_fractions) and all(0 <= f <= 10 for f in self.swr_fractions),
               "--swr-fractions", "give one or more numbers between 0 and 10")

    def points(self) -> list[tuple[float, float]]:
        return [(f, s) for f in self.ttl_factors for s in self.swr_fractions]


def _check(ok: bool, field: str, message: str) -> None:
    if not ok:
        raise InvalidInput(field, message)


def vendor_setting(seed: Policy, vendor: str, ttl_seconds: int, swr_seconds: float) -> dict[str, Any]:
    """The ``vendors.<vendor>`` table for a TTL and window, with the seed's change rate kept."""
    old = seed.vendors[vendor]
    return {"baseTtl": int(ttl_seconds), "stale_while_revalidate_seconds": float(swr_seconds),
            "volatilityFactor": old.volatilityFactor * ttl_seconds / old.baseTtl}


def with_vendors(seed: Policy, settings: dict[str, tuple[int, float]]) -> Policy:
    """``seed`` with ``{vendor: (baseTtl, stale_while_revalidate_seconds)}`` applied."""
    data = policy_to_dict(seed)
    for vendor, (ttl, swr) in settings.items():
        data["vendors"][vendor].update(vendor_setting(seed, vendor, ttl, swr))
    return policy_from_dict(data)


def point_settings(seed: Policy, factor: float, swr_fraction: float) -> dict[str, tuple[int, float]]:
    """Every vendor's ``(baseTtl, window)`` at one grid point (TTLs are whole seconds, >= 1)."""
    out = {}
    for vendor, v in seed.vendors.items():
        ttl = max(1, round(v.baseTtl * factor))
        out[vendor] = (ttl, float(round(ttl * swr_fraction)))
    return out


def seed_settings(seed: Policy) -> dict[str, tuple[int, float]]:
    return {vendor: (v.baseTtl, v.stale_while_revalidate_seconds) for vendor, v in seed.vendors.items()}


# --- bounds and the choice ---------------------------------------------------------------------

def staleness_bounds(max_stale: float, per_vendor: dict[str, float] | None = None) -> dict[str, float]:
    """The bound of each vendor type: ``per_vendor``'s, else ``max_stale``.

    :raises InvalidInput: naming ``--max-stale`` or ``--max-stale-vendor``."""
    _check(0 <= max_stale <= 1, "--max-stale", f"must be between 0 and 1 (got {max_stale:g})")
    per_vendor = per_vendor or {}
    for vendor, bound in per_vendor.items():
        _check(vendor in VENDOR_TYPES, "--max-stale-vendor",
               f"unknown vendor type {vendor!r} (expected one of {', '.join(VENDOR_TYPES)})")
        _check(0 <= bound <= 1, "--max-stale-vendor", f"{vendor}: must be between 0 and 1 (got {bound:g})")
    return {vendor: per_vendor.get(vendor, max_stale) for vendor in VENDOR_TYPES}


def parse_vendor_bounds(items: list[str]) -> dict[str, float]:
    """``["venue=0.02", ...]`` as ``{"venue": 0.02}``; :class:`InvalidInput` naming the option."""
    out = {}
    for item in items:
        vendor, sep, value = item.partition("=")
        try:
            out[vendor.strip()] = float(value) if sep else float("nan")
        except ValueError:
            out[vendor.strip()] = float("nan")
        _check(not math.isnan(out[vendor.strip()]), "--max-stale-vendor",
               f"expected VENDOR=FRACTION, e.g. venue=0.02 (got {item!r})")
    return out


def choose(points: list[dict[str, Any]], bound: float) -> tuple[dict[str, Any], bool]:
    """The best point within ``bound`` (highest hit rate, then least stale), and whether one was."""
    usable = [p for p in points if p["hit_rate"] is not None]
    feasible = [p for p in usable if p["stale_hit_fraction"] <= bound]
    if feasible:
        return max(feasible, key=lambda p: (p["hit_rate"], -p["stale_hit_fraction"], -p["ttl_seconds"])), True
    return min(usable, key=lambda p: (p["stale_hit_fraction"], -p["hit_rate"])), False


def decide(seed: dict[str, dict], sweeps: dict[str, list[dict]], bounds: dict[str, float]) -> dict[str, Any]:
    """Per vendor type: the seed point, the chosen point, its bound and the sweep."""
    vendors = {}
    for vendor, points in sweeps.items():
        chosen, met = choose(points, bounds[vendor])
        vendors[vendor] = {"seed": seed[vendor], "chosen": chosen, "max_stale": bounds[vendor],
                           "meets_bound": met, "points": points}
    return vendors


def tuned_policy(seed: Policy, vendors: dict[str, Any]) -> Policy:
    """``seed`` with each vendor's chosen TTL and window (vendors without data keep theirs)."""
    return with_vendors(seed, {v: (d["chosen"]["ttl_seconds"], d["chosen"]["swr_seconds"])
                               for v, d in vendors.items()})


def weighted(vendors: dict[str, Any], which: str) -> dict[str, float]:
    """Request-weighted hit rate and stale fraction over vendor types of their ``which`` point."""
    total = sum(d[which]["requests"] for d in vendors.values()) or 1
    hits = sum(d[which]["requests"] * d[which]["hit_rate"] for d in vendors.values())
    stale = sum(d[which]["requests"] * d[which]["hit_rate"] * d[which]["stale_hit_fraction"]
                for d in vendors.values())
    return {"hit_rate": hits / total, "stale_hit_fraction": stale / hits if hits else 0.0}


# --- in simulation ------------------------------------------------------------------------------

def check_scenario(scenario: Any) -> None:
    """A scenario that fixes TTLs or windows for every vendor cannot tune them per vendor."""
    for key in ("ttl_seconds", "stale_while_revalidate_seconds"):
        _check(getattr(scenario.cache, key) is None, f"scenario {scenario.label}: cache.{key}",
               "set; TTL tuning needs the policy's per-vendor values (remove it)")


def simulate_policy(scenario: Any, policy: Policy) -> dict[str, Any]:
    """The ``summary.json`` of ``scenario`` run with ``policy``."""
    from simulations.run import simulate

    return simulate(scenario, policy=policy).summary


def vendor_points(summary: dict[str, Any], settings: dict[str, tuple[int, float]],
                  label: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per vendor type, one sweep point from a run's ``by_vendor_type``."""
    out = {}
    for vendor, stats in summary["by_vendor_type"].items():
        ttl, swr = settings[vendor]
        out[vendor] = {**label, "ttl_seconds": ttl, "swr_seconds": swr, **{k: stats[k] for k in METRICS}}
    return out


def sweep(scenario: Any, seed: Policy, grid: Grid, progress: Progress | None = None
          ) -> tuple[dict[str, dict], dict[str, list[dict]]]:
    """The seed's point and every grid point, per vendor type (one simulation per point)."""
    say = progress or (lambda message: None)
    say(f"seed policy: {scenario.name}")
    seed_points = vendor_points(simulate_policy(scenario, seed), seed_settings(seed),
                                {"factor": 1.0, "swr_fraction": None, "is_seed": True})
    sweeps = {vendor: [point] for vendor, point in seed_points.items()}
    for index, (factor, fraction) in enumerate(grid.points(), 1):
        say(f"point {index}/{len(grid.points())}: TTL × {factor:g}, SWR {fraction:g} × TTL")
        settings = point_settings(seed, factor, fraction)
        run = simulate_policy(scenario, with_vendors(seed, settings))
        for vendor, point in vendor_points(run, settings, {"factor": factor, "swr_fraction": fraction,
                                                           "is_seed": False}).items():
            sweeps[vendor].append(point)
    return seed_points, sweeps


def verify(scenario: Any, policy: Policy, vendors: dict[str, Any]) -> dict[str, Any]:
    """Re-simulate with the tuned ``policy``: per vendor and overall, predicted against measured."""
    summary = simulate_policy(scenario, policy)
    rows, worst = {}, 0.0
    for vendor, data in vendors.items():
        measured = summary["by_vendor_type"][vendor]
        rows[vendor] = {k: {"predicted": data["chosen"][k], "resimulated": measured[k]}
                        for k in ("hit_rate", "stale_hit_fraction")}
        worst = max([worst] + [abs(r["predicted"] - r["resimulated"]) * 100 for r in rows[vendor].values()])
    predicted = weighted(vendors, "chosen")
    overall = {k: {"predicted": predicted[k], "resimulated": summary[k]} for k in ("hit_rate", "stale_hit_fraction")}
    worst = max([worst] + [abs(r["predicted"] - r["resimulated"]) * 100 for r in overall.values()])
    return {"passed": worst <= TOLERANCE_POINTS, "worst_points": worst, "tolerance_points": TOLERANCE_POINTS,
            "overall": overall, "by_vendor_type": rows}


def tune_ttl(scenario: Any, out: Path | None = None, *, max_stale: float = DEFAULT_MAX_STALE,
             max_stale_vendor: dict[str, float] | None = None, grid: Grid = Grid(),
             policy: Policy | None = None, progress: Progress | None = None) -> dict[str, Any]:
    """Sweep, choose, re-simulate and (when ``out`` is given) write the files; returns ``tuning.json``.

    :param scenario: a :class:`simulations.scenario.Scenario`.
    :param policy: the seed policy (default: the shipped one).
    :raises InvalidInput: naming the bad option or scenario key."""
    bounds = staleness_bounds(max_stale, max_stale_vendor)
    check_scenario(scenario)
    seed = policy or load_policy()
    seed_points, sweeps = sweep(scenario, seed, grid, progress)
    vendors = decide(seed_points, sweeps, bounds)
    tuned = tuned_policy(seed, vendors)
    (progress or (lambda m: None))("re-simulating the tuned policy")
    result = {"source": "simulation", "scenario": scenario.name, "seed": scenario.run.seed,
              "sample_rate": scenario.run.sample_rate, "days": scenario.days,
              "max_stale": max_stale, "max_stale_vendor": dict(max_stale_vendor or {}),
              "grid": dataclasses.asdict(grid), "method": METHOD_SIMULATION,
              "overall": {"seed": weighted(vendors, "seed"), "predicted": weighted(vendors, "chosen")},
              "verification": verify(scenario, tuned, vendors), "vendors": vendors}
    if out is not None:
        result["files"] = write_outputs(result, tuned, Path(out))
    return result


METHOD_SIMULATION = ("One simulation of the scenario per grid point (every vendor type's baseTtl × factor, "
                     "window = fraction × TTL), plus the seed policy; per vendor type the TTL with the highest "
                     "hit rate whose stale-hit fraction is within the bound; data-change rates held at the "
                     "seed's; the tuned policy re-simulated to check the prediction.")


# --- outputs ------------------------------------------------------------------------------------

def write_outputs(result: dict[str, Any], tuned: Policy, out: Path) -> dict[str, str]:
    """``tuned-policy.toml``, ``tuning.json`` and the report in ``out``; returns the file names."""
    out.mkdir(parents=True, exist_ok=True)
    dump_policy(tuned, out / "tuned-policy.toml")
    files = {"policy": "tuned-policy.toml", "tuning": "tuning.json"}
    files.update({name: path.name for name, path in build_report(result).write(out).items()})
    write_json(out / "tuning.json", {**result, "files": files})
    return files


def fmt_duration(seconds: float | None) -> str:
    """``90 s``, ``25 min``, ``6 h``, ``1.5 h``, ``2 d``."""
    if seconds is None:
        return "—"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172_800:
        hours = seconds / 3600
        return f"{hours:.0f} h" if abs(hours - round(hours)) < 0.05 else f"{hours:.1f} h"
    return f"{seconds / 86400:.1f} d"


def conclusion(vendor: str, data: dict[str, Any]) -> str:
    """``venue: 24 h → 3 h (SWR 2 h → 18 min) moves the hit rate from 0.95 to 0.86 at 4.1 % stale (was 15 %)``."""
    seed, chosen = data["seed"], data["chosen"]
    text = (f"**{vendor}**: {fmt_duration(seed['ttl_seconds'])} → {fmt_duration(chosen['ttl_seconds'])} "
            f"(SWR {fmt_duration(seed['swr_seconds'])} → {fmt_duration(chosen['swr_seconds'])}) moves the hit rate "
            f"from {seed['hit_rate']:.2f} to {chosen['hit_rate']:.2f} at {fmt_percent(chosen['stale_hit_fraction'])} "
            f"stale (was {fmt_percent(seed['stale_hit_fraction'])})")
    if not data["meets_bound"]:
        text += f"; no point reaches the {fmt_percent(data['max_stale'])} bound, the least stale is chosen"
    return text


def build_report(result: dict[str, Any]) -> Report:
    """The report: conclusions, the check, the before/after table and the figures."""
    vendors = result["vendors"]
    where = (f"scenario {result['scenario']}, seed {result['seed']}" if result["source"] == "simulation"
             else f"metrics of the last {result['time_range']}")
    report = Report("TTL tuning per vendor type", f"{where}; stale-hit bound {fmt_percent(result['max_stale'])}"
                    + (f" ({', '.join(f'{v} {fmt_percent(b)}' for v, b in result['max_stale_vendor'].items())})"
                       if result["max_stale_vendor"] else ""))
    report.heading("Conclusion")
    overall = result["overall"]
    report.paragraph(f"Overall the tuned TTLs move the hit rate from {overall['seed']['hit_rate']:.2f} to "
                     f"{overall['predicted']['hit_rate']:.2f} and the stale hits from "
                     f"{fmt_percent(overall['seed']['stale_hit_fraction'])} to "
                     f"{fmt_percent(overall['predicted']['stale_hit_fraction'])}.")
    report.bullets([conclusion(v, d) for v, d in vendors.items()])
    _check_block(report, result)
    report.heading("Before and after")
    report.table(*before_after_table(vendors), caption="Seed policy against the tuned one, per vendor type")
    report.figure("pareto", pareto_grid(vendors), "Hit rate against stale-hit fraction per vendor type: every "
                  "sweep point, the Pareto frontier, the bound (dashed), the seed (star) and the choice (ring)")
    report.figure("before-after", before_after_figure(vendors), "Hit rate and stale-hit fraction, seed and tuned")
    report.heading("Method")
    report.paragraph(result["method"])
    return report


def _check_block(report: Report, result: dict[str, Any]) -> None:
    check = result.get("verification")
    if check is None:
        return
    overall = check["overall"]
    report.verdict(check["passed"], (
        f"re-simulated with the tuned policy: hit rate {overall['hit_rate']['resimulated']:.3f} "
        f"(predicted {overall['hit_rate']['predicted']:.3f}), stale {fmt_percent(overall['stale_hit_fraction']['resimulated'])} "
        f"(predicted {fmt_percent(overall['stale_hit_fraction']['predicted'])}); worst vendor difference "
        f"{check['worst_points']:.2f} points (tolerance {check['tolerance_points']:g})"))


def before_after_table(vendors: dict[str, Any]) -> tuple[list[str], list[list]]:
    columns = ["vendor", "seed TTL", "tuned TTL", "seed SWR", "tuned SWR", "hit rate seed → tuned",
               "stale seed → tuned", "bound", "origin cost seed → tuned", "p95 ms seed → tuned"]
    rows = []
    for vendor, d in vendors.items():
        s, c = d["seed"], d["chosen"]
        rows.append([vendor, fmt_duration(s["ttl_seconds"]), fmt_duration(c["ttl_seconds"]),
                     fmt_duration(s["swr_seconds"]), fmt_duration(c["swr_seconds"]),
                     f"{s['hit_rate']:.3f} → {c['hit_rate']:.3f}",
                     f"{fmt_percent(s['stale_hit_fraction'])} → {fmt_percent(c['stale_hit_fraction'])}",
                     fmt_percent(d["max_stale"]) + ("" if d["meets_bound"] else " (not met)"),
                     f"{fmt_usd(s['origin_cost_usd'])} → {fmt_usd(c['origin_cost_usd'])}",
                     f"{_ms(s['p95_ms'])} → {_ms(c['p95_ms'])}"])
    return columns, rows


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}" if value >= 10 else f"{value:.2f}"


def pareto_frontier(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The points no other point beats on both hit rate (higher) and staleness (lower), by staleness."""
    ordered = sorted(points, key=lambda p: (p["stale_hit_fraction"], -p["hit_rate"]))
    frontier, best = [], -1.0
    for point in ordered:
        if point["hit_rate"] > best:
            frontier.append(point)
            best = point["hit_rate"]
    return frontier


def pareto_axes(ax: Any, vendor: str, data: dict[str, Any]) -> None:
    """One vendor's Pareto plot on ``ax``."""
    points = [p for p in data["points"] if p["hit_rate"] is not None]
    for index, fraction in enumerate(sorted({p["swr_fraction"] for p in points if not p["is_seed"]})):
        subset = [p for p in points if p["swr_fraction"] == fraction]
        ax.scatter([p["stale_hit_fraction"] for p in subset], [p["hit_rate"] for p in subset], s=18,
                   color=plt.get_cmap("tab10")(index % 10), label=f"SWR {fraction:g} × TTL")
    front = pareto_frontier(points)
    ax.plot([p["stale_hit_fraction"] for p in front], [p["hit_rate"] for p in front], color="0.4", lw=1)
    ax.axvline(data["max_stale"], color="tab:red", ls="--", lw=1)
    seed, chosen = data["seed"], data["chosen"]
    ax.scatter([seed["stale_hit_fraction"]], [seed["hit_rate"]], marker="*", s=110, color="tab:orange", zorder=3)
    ax.scatter([chosen["stale_hit_fraction"]], [chosen["hit_rate"]], s=120, facecolors="none",
               edgecolors="tab:red", lw=1.5, zorder=4)
    ax.set_title(f"{vendor}: {fmt_duration(seed['ttl_seconds'])} → {fmt_duration(chosen['ttl_seconds'])}", fontsize=9)
    ax.tick_params(labelsize=7)


def pareto_figure(vendor: str, data: dict[str, Any]) -> Figure:
    """One vendor's Pareto plot as its own figure (for notebooks)."""
    fig, ax = plt.subplots(figsize=(4.5, 3.4))
    pareto_axes(ax, vendor, data)
    ax.set_xlabel("stale-hit fraction")
    ax.set_ylabel("hit rate")
    ax.legend(fontsize=7)
    return fig


def pareto_grid(vendors: dict[str, Any]) -> Figure:
    """Every vendor's Pareto plot, one panel each."""
    cols = 4
    rows = max(1, math.ceil(len(vendors) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(13, 2.7 * rows), squeeze=False)
    for ax, (vendor, data) in zip(axes.flat, vendors.items()):
        pareto_axes(ax, vendor, data)
    for ax in list(axes.flat)[len(vendors):]:
        ax.set_visible(False)
    fig.supxlabel("stale-hit fraction")
    fig.supylabel("hit rate")
    axes.flat[0].legend(fontsize=6)
    fig.tight_layout()
    return fig


def before_after_figure(vendors: dict[str, Any]) -> Figure:
    names = list(vendors)
    x = range(len(names))
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 5), sharex=True)
    for ax, key, label in ((top, "hit_rate", "hit rate"), (bottom, "stale_hit_fraction", "stale-hit fraction")):
        ax.bar([i - 0.2 for i in x], [vendors[v]["seed"][key] for v in names], 0.4, label="seed")
        ax.bar([i + 0.2 for i in x], [vendors[v]["chosen"][key] for v in names], 0.4, label="tuned")
        ax.set_ylabel(label)
    bottom.scatter(list(x), [vendors[v]["max_stale"] for v in names], marker="_", s=200, color="tab:red",
                   label="bound", zorder=3)
    bottom.set_xticks(list(x), names, rotation=30, ha="right")
    top.legend(fontsize=8)
    bottom.legend(fontsize=8)
    fig.tight_layout()
    return fig
