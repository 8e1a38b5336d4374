"""``wedcache simulate`` (a scenario in simulated time, with its report) and ``wedcache bench-sim``."""
from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..errors import WedcacheError
from . import app


@app.command()
def simulate(
    scenario: Annotated[str, typer.Argument(help="A scenario file, or the name of a shipped one (year, smoke …).")],
    out: Annotated[Optional[Path], typer.Option(help="Output folder (default reports/<scenario>).")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Override [run] seed.")] = None,
    sample_rate: Annotated[Optional[float], typer.Option(help="Override [run] sample_rate (0 < R <= 1).")] = None,
    backends: Annotated[str, typer.Option(help="modeled (calibrated tier models) or live (real servers).")] = "modeled",
    trace: Annotated[Optional[Path], typer.Option(help="Replay a CSV trace (timestamp,key[,…]) instead.")] = None,
    start_date: Annotated[Optional[str], typer.Option(help="Override [run] start_date (YYYY-MM-DD).")] = None,
    days: Annotated[Optional[float], typer.Option(help="Override the run's length in days.")] = None,
    calibration: Annotated[Optional[Path], typer.Option(help="Latency calibration file (default: shipped).")] = None,
    fail_on_sla: Annotated[bool, typer.Option(help="Exit 1 when an SLA check fails.")] = False,
) -> None:
    """Run the real tiered cache under a scenario's traffic in simulated time; write the report."""
    from simulations.run import simulate as run_simulation
    from simulations.scenario import load_scenario

    try:
        chosen = load_scenario(scenario).with_overrides(
            seed=seed, sample_rate=sample_rate, days=days,
            start_date=date.fromisoformat(start_date) if start_date else None)
        folder = out or Path("reports") / chosen.name
        with _progress() as bar:
            task = bar.add_task(f"simulating {chosen.name}", total=1.0)
            update = lambda done, total: bar.update(task, completed=min(done / total, 1.0))  # noqa: E731
            result = run_simulation(chosen, folder, backends=backends, trace=trace, calibration=calibration,
                                    progress=update)
    except (WedcacheError, ValueError) as exc:
        typer.echo(f"wedcache simulate: {exc}", err=True)
        raise typer.Exit(2) from None
    _print_summary(result.summary)
    typer.echo(f"report: {result.files['html']}  summary: {result.files['summary']}")
    if fail_on_sla and not result.summary["sla"]["passed"]:
        raise typer.Exit(1)


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>5.1f} %"),
                    TimeElapsedColumn(), transient=False)


def _print_summary(summary: dict) -> None:
    table = Table(title=f"{summary['scenario']}: {summary['requests']:,} requests "
                        f"({summary['sampled_requests']:,} simulated) in {summary['wall_seconds']:.1f} s")
    table.add_column("figure")
    table.add_column("value", justify="right")
    latency = summary["latency_ms"]
    rows = [("hit rate", f"{summary['hit_rate']:.1%} ± {summary['sampling']['hit_rate_stderr']:.1%}"),
            ("memory / redis / postgres", " / ".join(f"{summary['tier_hit_rate'][t]:.1%}"
                                                      for t in ("memory", "redis", "postgres"))),
            ("stale hits", f"{summary['stale_hit_fraction']:.1%}"),
            ("latency p50 / p95 / p99 ms", f"{latency['p50']:.2f} / {latency['p95']:.0f} / {latency['p99']:.0f}"),
            ("origin cost / saved", f"${summary['origin_cost_usd']:,.2f} / ${summary['cost_saved_usd']:,.2f}")]
    semantic = summary.get("semantic") or {}
    if semantic.get("enabled"):
        rows.append(("hit rate exact / semantic / false hits",
                     f"{semantic['exact_hit_rate']:.1%} / {semantic['hit_rate']:.1%} / {semantic['false_hit_rate']:.2%}"))
    for name, value in rows:
        table.add_row(name, value)
    failed = [c for c in summary["sla"]["checks"] if not c["passed"]]
    table.add_row("SLA", "[green]all checks pass[/]" if not failed else f"[red]{len(failed)} checks fail[/]")
    Console().print(table)
    for check in failed:
        typer.echo(f"  FAIL {check['name']}: {check['why']}")


@app.command("bench-sim")
def bench_sim(
    requests: Annotated[int, typer.Option(min=10_000, help="Requests in the Zipf trace.")] = 2_000_000,
    objects: Annotated[int, typer.Option(min=100, help="Distinct objects.")] = 100_000,
    capacity: Annotated[int, typer.Option(min=10, help="Cache capacity in entries (both sides).")] = 10_000,
    repeats: Annotated[int, typer.Option(min=1, help="Alternating rounds; figures (and the ratio of each round) are medians.")] = 5,
    out: Annotated[Path, typer.Option(help="Where sim.json goes.")] = Path("reports/bench/sim.json"),
    check: Annotated[bool, typer.Option(help="Exit 1 when a target is missed.")] = False,
) -> None:
    """The simulation engine (memory tier, LRU) against libCacheSim's LRU on one Zipf trace."""
    from simulations.bench import run_sim_bench

    result = run_sim_bench(requests, objects, 1.0, capacity, repeats, out, progress=typer.echo)
    table = Table(title=f"bench-sim: {requests:,} requests, {objects:,} objects, Zipf 1.0, {capacity:,} entries")
    for column in ("", "requests/s", "miss ratio"):
        table.add_column(column)
    table.add_row("simulation (TieredCache)", f"{result['sim_rps']:,.0f}", f"{result['sim_miss_ratio']:.4f}")
    table.add_row("libCacheSim LRU", f"{result['libcachesim_rps']:,.0f}", f"{result['libcachesim_miss_ratio']:.4f}")
    Console().print(table)
    typer.echo(f"ratio {result['ratio']:.2f}, the median of the rounds' ratios (target >= {result['targets']['ratio']}); miss ratios differ by "
               f"{result['miss_ratio_points']:.2f} points (target <= {result['targets']['miss_ratio_points']}); "
               f"written to {out}")
    if check and not result["passed"]:
        raise typer.Exit(1)
