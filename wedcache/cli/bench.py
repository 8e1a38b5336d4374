"""``wedcache bench``: the core benchmark (:mod:`wedcache.bench`) with a table of ratios."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from . import app

ROWS = [("L1 memory hit", "l1_hit_us", "cachetools.TTLCache get", "cachetools_get_us", "l1_ratio"),
        ("L2 Redis hit", "l2_hit_us", "raw redis-py GET", "redis_get_us", "l2_ratio"),
        ("L3 PostgreSQL hit", "l3_hit_us", "raw psycopg SELECT", "pg_select_us", "l3_ratio")]


@app.command()
def bench(iterations: Annotated[int, typer.Option(min=100, help="Calls per round (L1 uses 10x).")] = 2000,
          repeats: Annotated[int, typer.Option(min=3, help="Rounds; figures are medians.")] = 7,
          out: Annotated[Path, typer.Option(help="Where bench.json goes.")] = Path("reports/bench/bench.json"),
          check: Annotated[bool, typer.Option(help="Exit 1 when a ratio misses its target.")] = False) -> None:
    """Each tier's hit path against its raw client, measured in the same run."""
    from ..bench import TARGETS, run_core_bench
    from ..services import ensure_services

    found = ensure_services(progress=lambda message: typer.echo(message, err=True))
    result = run_core_bench(found.redis_url, found.database_url, iterations=iterations, repeats=repeats, out=out)
    _print(result, TARGETS)
    typer.echo(f"payload {result['payload_bytes']} bytes; L1 with W-TinyLFU {result['l1_tinylfu_hit_us']:.2f} us "
               f"(ratio {result['l1_tinylfu_ratio']:.2f}); written to {out}")
    if check and not result["passed"]:
        raise typer.Exit(1)


def _print(result: dict, targets: dict) -> None:
    table = Table(title="wedcache bench: medians, microseconds per hit")
    for column in ("path", "us", "baseline", "us", "ratio", "target", ""):
        table.add_column(column)
    for name, ours, base_name, base, ratio in ROWS:
        ok = result[ratio] <= targets[ratio]
        table.add_row(name, f"{result[ours]:.2f}", base_name, f"{result[base]:.2f}", f"{result[ratio]:.2f}",
                      f"<= {targets[ratio]}", "[green]pass[/]" if ok else "[red]MISS[/]")
    Console().print(table)
