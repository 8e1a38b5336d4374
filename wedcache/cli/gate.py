"""``wedcache gate run | capacity | compare``: the CI performance gate (:mod:`wedcache.gate`).

Exit codes: 0 every check passed; 1 a check failed (the last line names it, its target and
actual; for ``compare``, each regression); 2 the run could not be done or the input is bad.
"""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Optional

import typer

from . import app

gate_app = typer.Typer(help="The CI performance gate: a bounded Locust run checked against the SLA.",
                       no_args_is_help=True)
app.add_typer(gate_app, name="gate")


def _fail(message: str) -> None:
    typer.echo(f"gate: {message}", err=True)
    raise typer.Exit(2)


ProfileName = Annotated[str, typer.Option("--profile", help="ci (<= 60 s, loose targets) or full (the SLA).")]
Users = Annotated[Optional[int], typer.Option("--users", min=1, help="Locust users (default: the profile's).")]
Workers = Annotated[Optional[int], typer.Option("--workers", min=1, max=16, help="uvicorn workers.")]
OriginMs = Annotated[Optional[tuple[float, float]], typer.Option(
    "--origin-ms", help="The simulated origin's median and p95 latency in ms (default: the profile's).")]
Warm = Annotated[Optional[int], typer.Option("--warm", min=0, help="Queries that warm the cache before the load.")]
Thresholds = Annotated[Optional[Path], typer.Option("--thresholds", help="TOML file: check name = target.")]
CheckOption = Annotated[Optional[list[str]], typer.Option("--check", help="NAME=TARGET override (repeatable).")]
Distributed = Annotated[Optional[int], typer.Option(
    "--distributed", min=1, max=16, help="Locust master + N worker processes, against --replicas replicas.")]
Replicas = Annotated[Optional[int], typer.Option(
    "--replicas", min=1, max=8, help="Service replicas behind a loopback balancer (default 2 with --distributed, "
                                     "else 1).")]
Out = Annotated[Optional[Path], typer.Option("--out", help="Output folder (default reports/perf-gate/<UTC>/).")]


def _prepare(profile: str, thresholds: Optional[Path], check: Optional[list[str]], **overrides):
    """The chosen profile, its thresholds with the file's and the flags' overrides, and servers
    (found or started, migrated); raises :class:`GateError`."""
    from ..gate.checks import parse_assignment, read_thresholds
    from ..gate.run import resolve_profile
    from ..migrations import apply_migrations
    from ..services import ensure_services

    chosen = resolve_profile(profile, **overrides)
    limits = {**chosen.thresholds, **(read_thresholds(thresholds) if thresholds else {})}
    for assignment in check or []:
        limits.update(parse_assignment(assignment))
    found = ensure_services(progress=lambda message: typer.echo(message, err=True))
    apply_migrations(found.database_url)
    return chosen, limits, found


def _folder(out: Optional[Path], prefix: str = "") -> Path:
    return out or Path("reports/perf-gate") / (prefix + datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ"))


@gate_app.command("run")
def run(profile: ProfileName = "ci", users: Users = None,
        rate: Annotated[Optional[float], typer.Option(min=0.1, help="Constant throughput in requests/s for the "
                                                      "whole run (adds a throughput check).")] = None,
        duration: Annotated[Optional[int], typer.Option(min=1, help="Seconds of load.")] = None,
        workers: Workers = None, origin_ms: OriginMs = None, warm: Warm = None,
        thresholds: Thresholds = None, check: CheckOption = None, out: Out = None,
        distributed: Distributed = None, replicas: Replicas = None) -> None:
    """Serve the real service, warm it, load it with headless Locust, check the thresholds.

    With --distributed N: a Locust master and N workers against --replicas replicas (default 2)
    behind a loopback balancer; histograms and CPU are summed over the replicas."""
    from ..gate import GateError
    from ..gate.report import write_outputs
    from ..gate.run import run_gate

    try:
        chosen, limits, found = _prepare(profile, thresholds, check, users=users, duration_s=duration,
                                         workers=workers, rate=rate, origin_ms=origin_ms, warm_queries=warm,
                                         locust_workers=distributed, replicas=replicas or (2 if distributed else None))
        result = run_gate(found.redis_url, found.database_url, chosen, limits)
    except GateError as error:
        _fail(str(error))
    folder = _folder(out)
    write_outputs(result, folder)
    s = result.stats
    typer.echo(f"{s.requests} requests, {s.rps:.1f}/s, hit rate {s.hit_rate:.1%}, p95 {s.latency_ms['p95']:g} ms; "
               f"written to {folder}")
    if len(result.replica_queries) > 1 or s.worker_requests:
        typer.echo(f"queries per replica {result.replica_queries}, entries per Locust worker {s.worker_requests}")
    for failed in result.failed():
        typer.echo(f"FAILED {failed.describe()}")
    if not result.passed:
        raise typer.Exit(1)
    typer.echo(f"passed: {len(result.checks)} checks")


@gate_app.command("capacity")
def capacity(profile: ProfileName = "ci", users: Users = None, workers: Workers = None,
             start: Annotated[float, typer.Option(help="Requests/s of the first step.")] = 25.0,
             step: Annotated[float, typer.Option(help="Requests/s added per step.")] = 25.0,
             steps: Annotated[int, typer.Option(help="Most steps to run.")] = 8,
             step_duration: Annotated[int, typer.Option(min=1, help="Seconds per step.")] = 8,
             origin_ms: OriginMs = None, warm: Warm = None, thresholds: Thresholds = None,
             check: CheckOption = None, out: Out = None) -> None:
    """Stepped constant-throughput runs on one server: the highest rate at which every check passes.

    Exit 0 when a capacity was found, 1 when even the first step failed, 2 when it could not run."""
    from ..gate import GateError
    from ..gate.capacity import describe, run_capacity, step_rates, write_capacity

    def show(result) -> None:
        failed = ", ".join(c.describe() for c in result.failed())
        typer.echo(f"{result.profile.rate:g}/s requested: {result.stats.rps:.1f}/s achieved, "
                   f"p95 {result.stats.latency_ms['p95']:g} ms, " + (f"FAILED {failed}" if failed else "passed"))

    try:
        rates = step_rates(start, step, steps)
        chosen, limits, found = _prepare(profile, thresholds, check, users=users, duration_s=step_duration,
                                         workers=workers, origin_ms=origin_ms, warm_queries=warm)
        result = run_capacity(found.redis_url, found.database_url, chosen, limits, rates, progress=show)
    except GateError as error:
        _fail(str(error))
    folder = _folder(out, "capacity-")
    write_capacity(result, folder)
    typer.echo(f"{describe(result)}; written to {folder}")
    if result.capacity_rps is None:
        raise typer.Exit(1)


@gate_app.command("compare")
def compare(base: Annotated[Path, typer.Argument(help="The baseline gate.json.")],
            new: Annotated[Path, typer.Argument(help="The new gate.json.")],
            max_regression: Annotated[str, typer.Option(help="Allowed relative worsening, e.g. 10%.")] = "10%",
            ) -> None:
    """Compare rps, hit rate and latency p50/p95/p99 of two gate runs; exit 1 on a regression."""
    from ..gate import GateError
    from ..gate.compare import compare as compare_runs, parse_percentage

    try:
        changes, regressions = compare_runs(base, new, parse_percentage(max_regression))
    except GateError as error:
        _fail(str(error))
    for change in changes:
        typer.echo(change.describe())
    for regression in regressions:
        typer.echo(f"REGRESSION {regression.describe()} beyond {max_regression}")
    if regressions:
        raise typer.Exit(1)

