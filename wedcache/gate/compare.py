"""``wedcache gate compare``: did a new ``gate.json`` regress against a base one?

Each compared figure has a direction: ``rps`` and ``hit_rate`` are worse when lower, the
latency percentiles ``latency_ms.p50/p95/p99`` when higher. A regression is a relative change
in the worse direction beyond the allowance (``--max-regression 10%``).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import GateInputError

HIGHER_IS_BETTER = {"rps": True, "hit_rate": True, "latency_ms.p50": False, "latency_ms.p95": False,
                    "latency_ms.p99": False}


@dataclass(frozen=True)
class Change:
    metric: str
    base: float
    new: float

    @property
    def worse_by(self) -> float:
        """The relative change in the worse direction (negative: an improvement)."""
        if self.base == 0:
            return 0.0 if self.new == self.base else math.inf
        change = (self.new - self.base) / abs(self.base)
        return -change if HIGHER_IS_BETTER[self.metric] else change

    def describe(self) -> str:
        return f"{self.metric}: {self.base:.4g} -> {self.new:.4g} ({self.worse_by:+.1%} worse)"


def parse_percentage(text: str) -> float:
    """``"10%"`` or ``"10"`` -> 0.10; :class:`GateInputError` naming ``--max-regression`` otherwise."""
    try:
        value = float(text.strip().removesuffix("%")) / 100
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise GateInputError(f"--max-regression {text!r}: expected a non-negative percentage such as 10%")
    return value


def read_figures(path: Path) -> dict[str, float]:
    """The compared figures of a ``gate.json``; :class:`GateInputError` naming the file and field."""
    try:
        data: Any = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise GateInputError(f"{path}: not a readable gate.json ({error})") from None
    figures = {}
    for metric in HIGHER_IS_BETTER:
        value = data
        for part in metric.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise GateInputError(f"{path}: field {metric} is missing or not a number")
        figures[metric] = float(value)
    return figures


def compare(base: Path, new: Path, max_regression: float) -> tuple[list[Change], list[Change]]:
    """``(every change, the regressions beyond max_regression)``."""
    old, fresh = read_figures(base), read_figures(new)
    changes = [Change(metric, old[metric], fresh[metric]) for metric in HIGHER_IS_BETTER]
    return changes, [c for c in changes if c.worse_by > max_regression]
