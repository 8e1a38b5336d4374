"""``wedcache calibrate``: tier latencies measured on real servers (:mod:`simulations.calibrate`)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from . import app


@app.command()
def calibrate(out: Annotated[Path, typer.Option(help="Where the calibration JSON goes.")]
              = Path("simulations/calibration.json"),
              samples: Annotated[int, typer.Option(min=10, help="Timed calls per tier and operation.")] = 2000,
              entries: Annotated[int, typer.Option(min=1, help="Distinct entries stored per tier.")] = 300) -> None:
    """Measure each tier's get and set latency on real servers; write the simulation's latency models."""
    from simulations.calibrate import run_calibration

    from ..services import ensure_services

    found = ensure_services(progress=lambda message: typer.echo(message, err=True))
    calibration = run_calibration(found.redis_url, found.database_url, samples=samples, entries=entries)
    calibration.save(out)
    _print(calibration)
    typer.echo(f"{calibration.notes}\nwritten to {out}")


def _print(calibration) -> None:
    table = Table(title=f"wedcache calibrate ({calibration.measured_at}): latency, milliseconds")
    for column in ("tier", "op", "p50", "p95", "p99", "mean"):
        table.add_column(column, justify="left" if column in ("tier", "op") else "right")
    for tier, ops in calibration.models.items():
        for op, model in ops.items():
            figures = [model.quantile(p) for p in (0.5, 0.95, 0.99)] + [model.mean_ms]
            table.add_row(tier, op, *(f"{v:.4f}" for v in figures))
    Console().print(table)
