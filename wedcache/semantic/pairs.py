"""Labelled question pairs and what the matcher makes of them: :func:`load_pairs`, :func:`score_pairs`.

A pairs file is the CSV ``simulations/data/make_semantic_pairs.py`` writes (``kind``,
``label`` = ``same``/``different``, ``query_a``, ``context_a``, ``query_b``, ``context_b``).
:func:`score_pairs` embeds both sides once and records each pair's cosine similarity and
the guard's verdict, so any threshold can then be evaluated without the model
(:func:`evaluate`).
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..context import parse_context
from ..errors import InvalidInput
from ..policy import Policy
from .embedder import Embedder
from .entities import EntityExtractor
from .guard import disagreement

COLUMNS = ("kind", "label", "query_a", "context_a", "query_b", "context_b")
LABELS = ("same", "different")


@dataclass(frozen=True)
class Pair:
    kind: str
    same: bool
    query_a: str
    context_a: dict
    query_b: str
    context_b: dict


@dataclass(frozen=True)
class ScoredPair:
    pair: Pair
    similarity: float
    rejection: str | None
    """The guard's reason, or ``None`` when the entities agree."""


@dataclass(frozen=True)
class Quality:
    """Precision and recall of predicting "same" at one threshold."""

    threshold: float
    guard: bool
    precision: float
    recall: float
    true_hits: int
    false_hits: int
    false_hits_by_kind: dict[str, int]


def load_pairs(path: str | Path) -> list[Pair]:
    """The pairs in ``path``; a bad row raises :class:`InvalidInput` naming its line and column."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in COLUMNS if c not in (reader.fieldnames or ())]
            if missing:
                raise InvalidInput(str(path), f"missing column(s) {', '.join(missing)}")
            return [_pair(row, f"{path}:{line}") for line, row in enumerate(reader, start=2)]
    except OSError as exc:
        raise InvalidInput("--pairs", f"cannot read {path}: {exc.strerror}") from None


def _pair(row: dict, where: str) -> Pair:
    if row["label"] not in LABELS:
        raise InvalidInput(f"{where} label", f"must be same or different, not {row['label']!r}")
    contexts = []
    for column in ("context_a", "context_b"):
        try:
            contexts.append(json.loads(row[column] or "{}"))
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"{where} {column}", f"is not JSON ({exc.msg})") from None
    return Pair(row["kind"], row["label"] == "same", row["query_a"], contexts[0], row["query_b"], contexts[1])


def score_pairs(pairs: list[Pair], policy: Policy, embedder: Embedder) -> list[ScoredPair]:
    """Similarity and guard verdict of every pair (two embedding batches in all)."""
    extractor = EntityExtractor(policy)
    a = embedder.embed([p.query_a for p in pairs])
    b = embedder.embed([p.query_b for p in pairs])
    similarities = np.einsum("ij,ij->i", a, b)
    scored = []
    for pair, similarity in zip(pairs, similarities):
        ea = extractor.extract(pair.query_a, parse_context(pair.context_a))
        eb = extractor.extract(pair.query_b, parse_context(pair.context_b))
        scored.append(ScoredPair(pair, float(similarity), disagreement(ea, eb)))
    return scored


def evaluate(scored: list[ScoredPair], threshold: float, guard: bool = True) -> Quality:
    """Predict "same" when similarity ≥ ``threshold`` (and, with ``guard``, the entities agree)."""
    hits = [s for s in scored if s.similarity >= threshold and (not guard or s.rejection is None)]
    true = sum(1 for s in hits if s.pair.same)
    false_by_kind: dict[str, int] = {}
    for s in hits:
        if not s.pair.same:
            false_by_kind[s.pair.kind] = false_by_kind.get(s.pair.kind, 0) + 1
    positives = sum(1 for s in scored if s.pair.same)
    return Quality(threshold, guard, true / len(hits) if hits else 1.0, true / positives if positives else 0.0,
                   true, len(hits) - true, false_by_kind)
