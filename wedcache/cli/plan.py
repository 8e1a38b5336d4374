"""``wedcache plan capacity``: project the seed's 12-month growth to resources and cost (:mod:`wedcache.tuning.capacity`).

Exit codes: 0 the plan was written; 2 a bad option or scenario (the message names it).
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .tune import plan_app

DEFAULT_SAMPLE_RATE = 0.0005
"""Keys simulated in the baseline when ``--sample-rate`` is not given (at most the scenario's own)."""


@plan_app.command("capacity")
def capacity(
    scenario: Annotated[str, typer.Argument(help="The baseline scenario file or shipped name.")] = "year",
    growth_users: Annotated[float, typer.Option("--growth-users", help="User growth factor (organizations and "
                                                "distinct queries).")] = 3.0,
    growth_queries: Annotated[float, typer.Option("--growth-queries", help="Query volume growth factor "
                                                  "(base QPS).")] = 5.0,
    out: Annotated[Optional[Path], typer.Option(help="Output folder (default reports/plan-capacity).")] = None,
    sample_rate: Annotated[Optional[float], typer.Option(
        "--sample-rate", help=f"Share of keys simulated in the baseline (default: the scenario's, at most "
                              f"{DEFAULT_SAMPLE_RATE:g}); the grown run uses it / --growth-queries.")] = None,
    pg_query_ms: Annotated[Optional[float], typer.Option(
        "--pg-query-ms", help="PostgreSQL time per query in ms (default: the calibration's means).")] = None,
) -> None:
    """Simulate the baseline and the grown workload; per season: peak QPS, memory, Redis, PostgreSQL
    connections, replicas and monthly cost, against the seed's resource allocation table."""
    from simulations.scenario import load_scenario

    from ..errors import WedcacheError
    from ..tuning.capacity import Growth, project_capacity, write_capacity

    try:
        growth = Growth(growth_users, growth_queries)
        chosen = load_scenario(scenario)
        rate = sample_rate if sample_rate is not None else min(chosen.run.sample_rate, DEFAULT_SAMPLE_RATE)
        plan = project_capacity(chosen, growth, rate, pg_query_ms)
    except (WedcacheError, ValueError) as exc:
        typer.echo(f"wedcache plan capacity: {exc}", err=True)
        raise typer.Exit(2) from None
    folder = out or Path("reports") / "plan-capacity"
    files = write_capacity(plan, folder)
    for line in plan["conclusion"]:
        typer.echo(line)
    typer.echo(f"report: {files['html']}  plan: {files['json']}")
