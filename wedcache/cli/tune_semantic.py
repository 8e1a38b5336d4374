"""``wedcache tune semantic``: the similarity threshold for a target precision, from labelled pairs."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import WedcacheError
from .tune import tune_app

DEFAULT_PAIRS = Path("simulations/data/semantic_pairs.csv")


@tune_app.command("semantic")
def tune_semantic(
    pairs: Annotated[Path, typer.Option(help="Labelled pairs (CSV: kind,label,query_a,context_a,query_b,context_b).")]
    = DEFAULT_PAIRS,
    precision: Annotated[float, typer.Option(help="Target precision of semantic hits, with the guard.")] = 0.99,
    min_threshold: Annotated[float, typer.Option(help="Never pick a threshold below this.")] = 0.7,
    out: Annotated[Path, typer.Option(help="Policy file whose [semantic] table is set (created if missing).")]
    = Path("reports/tune-semantic/policy.toml"),
) -> None:
    """Pick the lowest threshold whose precision is >= the target on the pairs and write it to a policy file."""
    from ..policy import load_policy
    from ..semantic.embedder import Embedder
    from ..semantic.pairs import evaluate, load_pairs, score_pairs
    from ..semantic.tuning import choose_threshold, write_semantic_policy

    try:
        scored = score_pairs(load_pairs(pairs), load_policy(), Embedder())
        chosen = choose_threshold(scored, precision, min_threshold=min_threshold)
        written = write_semantic_policy(out, chosen.threshold)
    except (WedcacheError, ValueError) as exc:
        typer.echo(f"wedcache tune semantic: {exc}", err=True)
        raise typer.Exit(2) from None
    bare = evaluate(scored, chosen.threshold, guard=False)
    typer.echo(f"{len(scored)} pairs; threshold {chosen.threshold:.4f}: with the guard precision "
               f"{chosen.precision:.3f}, recall {chosen.recall:.3f}; without it precision {bare.precision:.3f}, "
               f"recall {bare.recall:.3f}")
    typer.echo(f"[semantic] written to {written}")
