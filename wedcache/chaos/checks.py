"""The drill's targets (issue: fault drills) as checks: :func:`drill_checks`.

- ``errors_5xx == 0``: the origin stays up throughout, so some tier or the origin can always
  answer, and no request may get a 5xx;
- ``recovery_seconds_redis`` / ``recovery_seconds_postgres <= 10``: back to the prior hit rate,
  with the tier in use again, within 10 s of the restart;
- ``rows_lost == 0``: every entry PostgreSQL held before the outages is still there;
- ``stampede_origin_calls == 1``: one origin call for a stampede across both replicas.
"""
from __future__ import annotations

from typing import Any, Mapping

from ..gate.checks import Check

RECOVERY_LIMIT_SECONDS = 10.0


def drill_checks(figures: Mapping[str, Any]) -> list[Check]:
    """The checks of a drill's figures (the ``chaos.json`` fields plus ``rows_lost``)."""
    return [Check("errors_5xx", "==", 0, figures["errors_5xx"]),
            Check("recovery_seconds_redis", "<=", RECOVERY_LIMIT_SECONDS, figures["recovery_seconds_redis"]),
            Check("recovery_seconds_postgres", "<=", RECOVERY_LIMIT_SECONDS,
                       figures["recovery_seconds_postgres"]),
            Check("rows_lost", "==", 0, figures["rows_lost"]),
            Check("stampede_origin_calls", "==", 1, figures["stampede_origin_calls"])]
