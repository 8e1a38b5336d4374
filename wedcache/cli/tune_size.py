"""``wedcache tune size``: the memory each market tier needs for its hit-rate target (miss-ratio curves)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import InvalidInput, WedcacheError
from .tune import tune_app



@tune_app.command("size")
def tune_size(
    scenario: Annotated[Optional[str], typer.Argument(help="A scenario file or shipped name (peak-saturday …).")] = None,
    trace: Annotated[Optional[Path], typer.Option(help="A CSV trace (timestamp,key[,size_bytes,…]) instead of the workload.")] = None,
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("reports/tune-size"),
    method: Annotated[str, typer.Option(help="auto (exact when small), exact (stack distances) or shards.")] = "auto",
    sample_rate: Annotated[Optional[float], typer.Option(help="SHARDS rate R in (0, 1] (default: auto).")] = None,
    days: Annotated[Optional[float], typer.Option(help="Override the scenario's length in days.")] = None,
) -> None:
    """Miss-ratio curve per market tier: the memory each needs to reach its SLA hit rate."""
    from simulations.scenario import load_scenario
    from wedcache.tuning.size import size_market_tiers, write_sizing

    try:
        chosen = load_scenario(scenario).with_overrides(days=days) if scenario is not None else None
        if chosen is None and days is not None:
            raise InvalidInput("--days", "needs a SCENARIO (a trace sets its own length)")
        result = size_market_tiers(chosen, trace, method=method, sample_rate=sample_rate)
    except (WedcacheError, ValueError) as exc:
        typer.echo(f"wedcache tune size: {exc}", err=True)
        raise typer.Exit(2) from None
    files = write_sizing(result, out)
    for line in result.conclusions():
        typer.echo(line)
    typer.echo(f"method {result.method} (rate {result.sample_rate:g}), {result.requests:,} requests; "
               f"report: {files['html']}  sizing: {files['sizing']}")
