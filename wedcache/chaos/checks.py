"""The drill's targets (issue: fault drills) as checks: :func:`drill_checks`.

- ``errors_5xx == 0``: the origin stays up throughout, so some tier or the origin can always
  answer, and no request may get a 5xx;
- ``recovery_seconds_redis`` / ``recovery_seconds_postgres <= 10``: back to the prior hit rate,
  with the tier in use again, within 10 s of the restart;
- ``rows_lost == 0``: every entry PostgreSQL held before the outages is still there;
- ``stampede_origin_calls == 1``: one origin call for a stampede across both replicas.
"""
from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from typing import Any, Mapping

RECOVERY_LIMIT_SECONDS = 10.0
OPERATORS = {"==": operator.eq, "<=": operator.le}


@dataclass(frozen=True)
class DrillCheck:
    name: str
    op: str
    target: float
    actual: float | None
    """``None``: not measured (e.g. the tier never came back), which fails."""

    @property
    def passed(self) -> bool:
        return self.actual is not None and not math.isnan(self.actual) and OPERATORS[self.op](self.actual, self.target)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "target": f"{self.op} {self.target:g}", "actual": self.actual, "passed": self.passed}

    def describe(self) -> str:
        actual = "not measured" if self.actual is None else f"{self.actual:.4g}"
        return f"{self.name}: actual {actual}, target {self.op} {self.target:g}"


def drill_checks(figures: Mapping[str, Any]) -> list[DrillCheck]:
    """The checks of a drill's figures (the ``chaos.json`` fields plus ``rows_lost``)."""
    return [DrillCheck("errors_5xx", "==", 0, figures["errors_5xx"]),
            DrillCheck("recovery_seconds_redis", "<=", RECOVERY_LIMIT_SECONDS, figures["recovery_seconds_redis"]),
            DrillCheck("recovery_seconds_postgres", "<=", RECOVERY_LIMIT_SECONDS,
                       figures["recovery_seconds_postgres"]),
            DrillCheck("rows_lost", "==", 0, figures["rows_lost"]),
            DrillCheck("stampede_origin_calls", "==", 1, figures["stampede_origin_calls"])]
