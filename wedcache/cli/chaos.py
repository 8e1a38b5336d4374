"""``wedcache chaos run``: the fault drill (:mod:`wedcache.chaos`) against a two-replica fleet.

Exit codes, as the gate's: 0 every check passed; 1 a check failed (a ``FAILED name: …`` line
each); 2 the drill could not be done.
"""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Optional

import typer

from . import app

chaos_app = typer.Typer(help="Fault drills: Redis, PostgreSQL and a replica fail under steady load.",
                        no_args_is_help=True)
app.add_typer(chaos_app, name="chaos")


@chaos_app.command("run")
def run(out: Annotated[Optional[Path], typer.Option("--out", help="Output folder (default reports/chaos/<UTC>/).")] = None,
        duration: Annotated[Optional[float], typer.Option(
            "--duration", min=0.5, help="Seconds each outage (Redis, PostgreSQL) lasts (default 10; --short 2).")] = None,
        short: Annotated[bool, typer.Option("--short", help="Outages of ~2 s, lighter load, a stampede of 100 "
                                            "(under a minute).")] = False,
        stampede: Annotated[Optional[int], typer.Option(
            "--stampede", min=1, help="Concurrent requests of the stampede (default 1000; --short 100).")] = None,
        rate: Annotated[Optional[float], typer.Option("--rate", min=1.0, help="Requests/s of the steady load.")] = None,
        ) -> None:
    """Start private Redis/PostgreSQL and two replicas, break them under load, check the targets."""
    from ..chaos.drill import DrillError, resolve_plan, run_drill
    from ..chaos.report import write_outputs

    try:
        plan = resolve_plan("short" if short else "full", outage_s=duration, stampede=stampede, rate=rate)
        result = run_drill(plan, progress=lambda message: typer.echo(message, err=True))
    except DrillError as error:
        typer.echo(f"chaos: {error}", err=True)
        raise typer.Exit(2)
    folder = out or Path("reports/chaos") / datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    write_outputs(result, folder)
    f = result.figures()
    typer.echo(f"{f['requests']} requests, {f['errors_5xx']} 5xx, {f['errors_other']} other errors, "
               f"stampede {f['stampede_origin_calls']} origin call(s); written to {folder}")
    for failed in result.failed():
        typer.echo(f"FAILED {failed.describe()}")
    if not result.passed:
        raise typer.Exit(1)
    typer.echo(f"passed: {len(result.checks)} checks")
