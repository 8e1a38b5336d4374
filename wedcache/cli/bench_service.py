"""``wedcache bench-service``: the cached-query endpoint against a bare FastAPI endpoint
(:mod:`wedcache.service_bench`), printed as a table with the ratio and hit latencies."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from . import app


@app.command("bench-service")
def bench_service(workers: Annotated[int, typer.Option(min=1, max=16, help="uvicorn workers of each server.")] = 2,
                  users: Annotated[int, typer.Option(min=1, max=512, help="Locust users per round.")] = 32,
                  seconds: Annotated[int, typer.Option(min=2, max=300, help="Seconds per Locust round.")] = 10,
                  rounds: Annotated[int, typer.Option(min=1, max=15, help="Alternating rounds; medians.")] = 3,
                  latency_users: Annotated[int, typer.Option(min=1, max=64, help="Users of the light round that "
                                                             "measures hit latency.")] = 2,
                  out: Annotated[Path, typer.Option(help="Where service.json goes.")] = Path(
                      "reports/bench/service.json"),
                  check: Annotated[bool, typer.Option(help="Exit 1 when a target is missed.")] = False) -> None:
    """Serve the real service and a bare endpoint on loopback; load both with headless Locust."""
    from ..service_bench import TARGETS, run_service_bench
    from ..services import ensure_services

    found = ensure_services(progress=lambda message: typer.echo(message, err=True))
    result = run_service_bench(found.redis_url, found.database_url, workers=workers, users=users, seconds=seconds,
                               rounds=rounds, latency_users=latency_users, out=out)
    table = Table(title=f"wedcache bench-service: {workers} workers, medians of {rounds} rounds")
    for column in ("endpoint", f"requests/s ({users} users)", f"p95 ms ({users} users)",
                   f"hit p50 ms ({latency_users} users)", f"hit p95 ms ({latency_users} users)"):
        table.add_column(column)
    table.add_row("POST /api/ai-cache/query", f"{result['service_rps']:,.0f}", f"{result['hit_p95_ms_saturated']:.2f}",
                  f"{result['hit_p50_ms']:.2f}", f"{result['hit_p95_ms']:.2f}")
    table.add_row("bare FastAPI endpoint", f"{result['bare_rps']:,.0f}", f"{result['bare_p95_ms']:.2f}", "", "")
    Console().print(table)
    typer.echo(f"ratio {result['ratio']:.2f} (target >= {TARGETS['ratio']}); hit p95 {result['hit_p95_ms']:.2f} ms "
               f"(target < {TARGETS['hit_p95_ms']}); failures {result['failures']}"
               f"{'; Locust reported high CPU (figures are a lower bound)' if result['locust_cpu_warning'] else ''}"
               f"; written to {out}")
    if check and not result["passed"]:
        raise typer.Exit(1)
