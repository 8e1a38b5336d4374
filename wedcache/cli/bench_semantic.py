"""``wedcache bench-semantic``: precision/recall of semantic matching on the shipped pairs and
the cost of a semantic lookup next to an exact-key memory hit (:mod:`wedcache.semantic.bench`)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from . import app
from .tune_semantic import DEFAULT_PAIRS


@app.command("bench-semantic")
def bench_semantic(pairs: Annotated[Path, typer.Option(help="Labelled pairs CSV.")] = DEFAULT_PAIRS,
                   memory_entries: Annotated[int, typer.Option(min=1000, max=1_000_000,
                                                               help="Memory-index entries per organization.")] = 100_000,
                   pg_entries: Annotated[int, typer.Option(min=0, max=200_000, help="pgvector rows per organization "
                                                           "(0 skips PostgreSQL).")] = 20_000,
                   iterations: Annotated[int, typer.Option(min=10, max=100_000, help="Lookups per round.")] = 200,
                   repeats: Annotated[int, typer.Option(min=1, max=15, help="Rounds; medians.")] = 5,
                   out: Annotated[Path, typer.Option(help="Where semantic.json goes.")] = Path(
                       "reports/bench/semantic.json"),
                   check: Annotated[bool, typer.Option(help="Exit 1 when a target is missed.")] = False) -> None:
    """Precision and recall with and without the guard; lookup cost in memory and pgvector."""
    from ..semantic.bench import TARGETS, run_semantic_bench
    from ..services import ensure_services

    say = lambda message: typer.echo(message, err=True)  # noqa: E731
    database_url = ensure_services(progress=say).database_url if pg_entries else None
    result = run_semantic_bench(database_url, pairs_path=pairs, memory_entries=memory_entries, pg_entries=pg_entries,
                                iterations=iterations, repeats=repeats, out=out, progress=say)
    _print(result, TARGETS)
    if check and not result["passed"]:
        raise typer.Exit(1)


def _print(result: dict, targets: dict) -> None:
    quality, memory = result["quality"], result["memory"]
    table = Table(title=f"semantic matching on {quality['pairs']} pairs ({quality['paraphrases']} paraphrases), "
                        f"threshold {quality['threshold']:.4f}")
    for column in ("", "precision", "recall (paraphrases)", "false hits"):
        table.add_column(column)
    for name, label in (("guard", "with the guard"), ("no_guard", "without the guard")):
        q = quality[name]
        table.add_row(label, f"{q['precision']:.3f}", f"{q['recall']:.3f}", str(q["false_hits"]))
    Console().print(table)
    kinds = ", ".join(f"{k} {v['false_hits_guard']}/{v['false_hits_no_guard']}" for k, v in quality["by_kind"].items())
    typer.echo(f"false hits per near-miss kind (guard/no guard): {kinds}")
    costs = Table(title=f"lookup cost per query (medians of {result['repeats']} rounds)")
    for column in ("lookup", "µs", "× exact-key memory hit"):
        costs.add_column(column)
    costs.add_row("exact-key memory hit (baseline)", f"{memory['exact_hit_us']:.1f}", "1.00")
    costs.add_row(f"semantic, memory index ({memory['entries_per_org']:,}/org)", f"{memory['lookup_us']:.1f}",
                  f"{memory['lookup_ratio']:.1f}")
    costs.add_row("  embedding + entities of the question", f"{memory['prepare_us']:.1f}",
                  f"{memory['prepare_ratio']:.1f}")
    costs.add_row("  index alone (IVF)", f"{memory['index_ivf_us']:.1f}", f"{memory['index_ivf_ratio']:.1f}")
    costs.add_row("  index alone (exact scan)", f"{memory['index_exact_scan_us']:.1f}",
                  f"{memory['index_exact_scan_ratio']:.1f}")
    pg = result.get("pgvector")
    if pg and pg.get("available"):
        costs.add_row(f"semantic, pgvector ({pg['entries_per_org']:,}/org, HNSW {'yes' if pg['uses_hnsw'] else 'no'})",
                      f"{pg['lookup_us']:.1f}", f"{pg['lookup_ratio']:.1f}")
    Console().print(costs)
    typer.echo(f"semantic hits on {memory['lookups']} lookups: {memory['semantic_hits_ivf']} (IVF), "
               f"{memory['semantic_hits_exact']} (exact scan); same match as the exact scan on "
               f"{memory['ivf_same_match_as_exact']:.1%}")
    typer.echo(f"targets: precision >= {targets['precision']}, recall >= {targets['recall']}, memory index lookup <= "
               f"{targets['memory_lookup_ms']} ms at {memory['entries_per_org']:,}/org; "
               f"{'passed' if result['passed'] else 'MISSED'} (load average {result['load_average']:.1f} "
               f"on {result['cpus']} CPUs)")
