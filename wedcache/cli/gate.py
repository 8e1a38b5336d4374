"""``wedcache gate run | compare``: the CI performance gate (:mod:`wedcache.gate`).

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


@gate_app.command("run")
def run(profile: Annotated[str, typer.Option(help="ci (<= 60 s, loose targets) or full (the SLA).")] = "ci",
        users: Annotated[Optional[int], typer.Option(min=1, help="Locust users (default: the profile's).")] = None,
        rate: Annotated[Optional[float], typer.Option(min=0.1, help="Target QPS (recorded; the locustfile "
                                                      "has no constant-throughput wait).")] = None,
        duration: Annotated[Optional[int], typer.Option(min=1, help="Seconds of load.")] = None,
        workers: Annotated[Optional[int], typer.Option(min=1, max=16, help="uvicorn workers.")] = None,
        thresholds: Annotated[Optional[Path], typer.Option(help="TOML file: check name = target.")] = None,
        check: Annotated[Optional[list[str]], typer.Option(help="NAME=TARGET override (repeatable).")] = None,
        out: Annotated[Optional[Path], typer.Option(help="Output folder (default reports/perf-gate/<UTC>/).")] = None,
        ) -> None:
    """Serve the real service, warm it, load it with headless Locust, check the thresholds."""
    from ..gate import GateError
    from ..gate.checks import parse_assignment, read_thresholds
    from ..gate.report import write_outputs
    from ..gate.run import resolve_profile, run_gate
    from ..migrations import apply_migrations
    from ..services import ensure_services

    try:
        chosen = resolve_profile(profile, users=users, duration_s=duration, workers=workers, rate=rate)
        limits = {**chosen.thresholds, **(read_thresholds(thresholds) if thresholds else {})}
        for assignment in check or []:
            limits.update(parse_assignment(assignment))
        found = ensure_services(progress=lambda message: typer.echo(message, err=True))
        apply_migrations(found.database_url)
        result = run_gate(found.redis_url, found.database_url, chosen, limits)
    except GateError as error:
        _fail(str(error))
    folder = out or Path("reports/perf-gate") / datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    write_outputs(result, folder)
    s = result.stats
    typer.echo(f"{s.requests} requests, {s.rps:.1f}/s, hit rate {s.hit_rate:.1%}, p95 {s.latency_ms['p95']:g} ms; "
               f"written to {folder}")
    for failed in result.failed():
        typer.echo(f"FAILED {failed.describe()}")
    if not result.passed:
        raise typer.Exit(1)
    typer.echo(f"passed: {len(result.checks)} checks")


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

