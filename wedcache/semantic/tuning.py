"""The threshold for a target precision: :func:`choose_threshold`, :func:`write_semantic_policy`.

The chosen threshold is the lowest (not below :data:`MIN_THRESHOLD`) at which the precision *and every higher threshold's*
precision reach the target, with the guard. Requiring it of every higher threshold keeps
one lucky gap in the similarities of a few hundred pairs from picking a threshold that
only just works; lower is better because it keeps more paraphrase hits.
"""
from __future__ import annotations

import tomllib
from dataclasses import replace
from pathlib import Path

import tomli_w

from ..errors import InvalidInput
from .pairs import Quality, ScoredPair, evaluate
from .settings import SemanticSettings

DEFAULT_PRECISION = 0.99
MIN_THRESHOLD = 0.7
"""The lowest threshold the tuner picks. The guard rejects disagreements in the entities it
knows; what it does not know (a question the pairs file has no near miss for) only the
similarity can tell apart, so a near match must still read much like the question."""


def choose_threshold(scored: list[ScoredPair], precision: float = DEFAULT_PRECISION, guard: bool = True,
                     min_threshold: float = MIN_THRESHOLD) -> Quality:
    """The lowest threshold ≥ ``min_threshold`` whose precision, and every higher one's, is ≥ ``precision``."""
    if not 0 < precision <= 1:
        raise InvalidInput("--precision", "must be in (0, 1]")
    if not 0 <= min_threshold <= 1:
        raise InvalidInput("--min-threshold", "must be in [0, 1]")
    if not any(s.pair.same for s in scored):
        raise InvalidInput("--pairs", "holds no pair labelled same")
    candidates = sorted({round(s.similarity, 4) for s in scored if s.similarity >= min_threshold}
                        | {1.0}, reverse=True)
    chosen = evaluate(scored, 1.0, guard)
    for threshold in candidates:
        quality = evaluate(scored, threshold, guard)
        if quality.precision < precision:
            break
        chosen = quality
    return chosen


def write_semantic_policy(path: str | Path, threshold: float, settings: SemanticSettings | None = None) -> Path:
    """Set ``[semantic]`` in the policy file ``path`` (created when missing; other tables kept)."""
    path = Path(path)
    data = {}
    if path.exists():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise InvalidInput(str(path), f"is not TOML ({exc})") from None
    current = SemanticSettings.from_table(data.get("semantic")) if settings is None else settings
    data["semantic"] = replace(current, enabled=True, threshold=round(float(threshold), 4)).to_table()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(tomli_w.dumps(data), encoding="utf-8")
    return path
