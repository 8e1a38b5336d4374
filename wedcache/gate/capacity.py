"""``wedcache gate capacity``: the highest request rate at which every check still passes.

One served, warmed service (:func:`~wedcache.gate.run.gate_session`) is loaded in steps of
rising constant throughput (``rates``: ``start``, ``start + step``, …), each step a headless
Locust run of ``step_s`` seconds measured like a gate run (:meth:`Session.measure`, with the
``throughput`` check: a step counts only if the users reached 95 % of its rate). Stepping
stops at the first step that fails a check; the capacity is the rate of the last step that
passed (``None`` when the first one failed), and the failing step's checks say what limited
it. Steps share the cache, so later steps run warmer: like a ramp in production.

Files: ``capacity.json`` (``capacity_rps``, ``limited_by``, ``steps`` with each step's rate,
achieved requests/s, latency, hit rate and checks) and a report with a plot of p95 and
achieved throughput against the requested rate.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import matplotlib.pyplot as plt

from ..reporting import Report, fmt_ms, fmt_percent, write_json
from .errors import GateInputError
from .run import SERVE_ARGV, GateResult, Profile, gate_session


def step_rates(start: float, step: float, steps: int) -> list[float]:
    """``start, start + step, …`` (``steps`` rates); :class:`GateInputError` naming a bad option."""
    if start <= 0:
        raise GateInputError(f"--start must be above 0, got {start:g}")
    if step <= 0:
        raise GateInputError(f"--step must be above 0, got {step:g}")
    if steps < 1:
        raise GateInputError(f"--steps must be at least 1, got {steps}")
    return [start + i * step for i in range(steps)]


@dataclass
class CapacityResult:
    profile: Profile
    steps: list[GateResult]

    @property
    def passed_steps(self) -> list[GateResult]:
        return [s for s in self.steps if s.passed]

    @property
    def capacity_rps(self) -> float | None:
        return self.passed_steps[-1].profile.rate if self.passed_steps else None

    @property
    def limited_by(self) -> list[str]:
        """The checks the first failing step failed (empty when every step passed)."""
        failing = next((s for s in self.steps if not s.passed), None)
        return [c.name for c in failing.failed()] if failing else []

    def as_json(self) -> dict[str, Any]:
        p = self.profile
        return {"capacity_rps": self.capacity_rps, "limited_by": self.limited_by, "profile": p.name,
                "users": p.users, "workers": p.workers, "step_s": p.duration_s,
                "steps": [{"rate": s.profile.rate, "rps": s.stats.rps, "passed": s.passed,
                           "requests": s.stats.requests, "hit_rate": s.stats.hit_rate,
                           "latency_ms": s.stats.latency_ms, "checks": [c.as_dict() for c in s.checks]}
                          for s in self.steps]}


def run_capacity(redis_url: str, database_url: str, profile: Profile, thresholds: dict[str, float],
                 rates: list[float], serve_argv: tuple[str, ...] = SERVE_ARGV,
                 progress: Callable[[GateResult], None] | None = None) -> CapacityResult:
    """Step through ``rates`` (``profile.duration_s`` each) until a step fails; raises :class:`GateError`."""
    steps: list[GateResult] = []
    with gate_session(redis_url, database_url, profile, serve_argv) as session:
        for rate in rates:
            steps.append(session.measure(replace(profile, rate=rate), thresholds))
            if progress is not None:
                progress(steps[-1])
            if not steps[-1].passed:
                break
    return CapacityResult(profile, steps)


def write_capacity(result: CapacityResult, out: Path) -> dict[str, Path]:
    """``capacity.json``, ``report.html``, ``report.md`` and the PNG into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "capacity.json", result.as_json())
    return {"json": out / "capacity.json", **capacity_report(result).write(out)}


def describe(result: CapacityResult) -> str:
    if result.capacity_rps is None:
        return f"no step passed (the first failed {', '.join(result.limited_by)})"
    limit = f"; the next step failed {', '.join(result.limited_by)}" if result.limited_by else \
        "; every step passed (raise --steps to find the limit)"
    return f"capacity {result.capacity_rps:g} requests/s{limit}"


def capacity_report(result: CapacityResult) -> Report:
    p = result.profile
    report = Report("wedcache capacity", f"profile {p.name}: {p.workers} workers, {p.users} users, "
                                         f"{p.duration_s} s per step")
    report.verdict(result.capacity_rps is not None, describe(result))
    report.table(["requested/s", "achieved/s", "hit rate", "p50", "p95", "p99", "passed", "failed checks"],
                 [[s.profile.rate, s.stats.rps, fmt_percent(s.stats.hit_rate),
                   *(fmt_ms(s.stats.latency_ms[k]) for k in ("p50", "p95", "p99")), s.passed,
                   ", ".join(c.name for c in s.failed())] for s in result.steps], caption="Steps")
    report.paragraph("Each step is a constant-throughput Locust run against the same served, warmed service, "
                     "checked like a gate run; a step passes only if its users reached 95 % of the requested "
                     "rate (the throughput check). Stepping stops at the first failing step.")
    report.figure("capacity", capacity_figure(result), "End-to-end p95 and achieved throughput per step")
    return report


def capacity_figure(result: CapacityResult) -> plt.Figure:
    rates = [s.profile.rate for s in result.steps]
    fig, left = plt.subplots(figsize=(8, 3.5))
    left.plot(rates, [s.stats.latency_ms["p95"] for s in result.steps], marker="o", color="#4c72b0", label="p95")
    left.set_xlabel("requested requests/s")
    left.set_ylabel("end-to-end p95 (ms)")
    right = left.twinx()
    right.plot(rates, [s.stats.rps for s in result.steps], marker="s", color="#55a868", label="achieved/s")
    right.plot(rates, rates, linestyle=":", color="#999999", label="requested/s")
    right.set_ylabel("requests/s")
    fig.legend(loc="lower center", ncol=3, frameon=False)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    return fig
