"""What the operations share: reading rows, the time window, the organization filter, rounding.

:func:`rows` runs one parameterised statement on a pooled connection. :func:`metric_window`
is the ``WHERE`` condition of per-request metric rows (``metric_type`` ``'hit'``/``'miss'``)
recorded in ``(now - time range, now]``, optionally of one organization: the same selection
``GET /api/ai-cache/statistics`` makes (:mod:`wedcache.statistics`). :data:`GROUPS` names the
columns a report may group metric rows by, with the label of a row whose column is NULL.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg_pool
from psycopg import sql

from ..clock import iso_utc
from ..errors import InvalidInput
from ..keys import organization_uuid
from ..metrics import NO_VENDOR, ORIGIN
from ..statistics import TIME_RANGES, ratio

__all__ = ["GROUPS", "TIME_RANGES", "Window", "rows", "metric_window", "org_clause", "group_column", "iso",
           "ratio", "rounded", "check_choice", "check_limit"]


@dataclass(frozen=True)
class Group:
    column: str
    """The ``ai_cache_performance_metrics`` column."""
    null_label: str
    """What a row whose column is NULL is reported as."""


GROUPS = {"marketTier": Group("market_tier", "unknown"), "vendorType": Group("vendor_type", NO_VENDOR),
          "season": Group("season", "unknown"), "tier": Group("tier", ORIGIN)}
"""``--group-by`` values: market tier, primary vendor type (``none`` when a request named none),
season, and the tier that answered (``origin`` for a miss)."""


@dataclass(frozen=True)
class Window:
    """A selection of metric rows: ``where`` with its ``params``, and what it covers."""

    where: sql.Composable
    params: list
    start: float
    end: float
    organization_id: str | None

    def describe(self, time_range: str) -> dict[str, Any]:
        return {"timeRange": time_range, "organizationId": self.organization_id, "from": iso(self.start),
                "to": iso(self.end)}


def rows(pool: psycopg_pool.ConnectionPool, query: sql.Composable | str, params: Any = ()) -> list[tuple]:
    """Every row of ``query`` run with ``params``."""
    with pool.connection() as conn:
        return conn.execute(query, params).fetchall()


def check_choice(option: str, value: str, allowed) -> str:
    """``value`` when it is one of ``allowed``; else :class:`InvalidInput` naming ``option``."""
    if value not in allowed:
        raise InvalidInput(option, f"must be one of {', '.join(allowed)} (got {value!r})")
    return value


def check_limit(limit: int, option: str = "--limit") -> int:
    if not 1 <= limit <= 10_000:
        raise InvalidInput(option, f"must be between 1 and 10000 (got {limit})")
    return limit


def org_clause(organization: str | None, column: str = "organization_id",
               option: str = "--organization") -> tuple[sql.Composable, list]:
    """``column = %s`` for ``organization`` (a UUID or a name), or ``TRUE`` without one."""
    if organization is None:
        return sql.SQL("TRUE"), []
    return sql.SQL("{} = %s").format(sql.Identifier(*column.split("."))), [organization_uuid(organization, option)]


def metric_window(now: float, time_range: str, organization: str | None, table: str = "ai_cache_performance_metrics",
                  option: str = "--time-range") -> Window:
    """Request rows (hits and misses) recorded in ``(now - time_range, now]``, of ``organization`` if given."""
    start = now - TIME_RANGES[check_choice(option, time_range, TIME_RANGES)]
    org, org_params = org_clause(organization, f"{table}.organization_id")
    where = sql.SQL("{t}.metric_type IN ('hit', 'miss') AND {t}.recorded_at > to_timestamp(%s) "
                    "AND {t}.recorded_at <= to_timestamp(%s) AND {org}").format(t=sql.Identifier(table), org=org)
    return Window(where, [start, now, *org_params], start, now, org_params[0] if org_params else None)


def group_column(group_by: str, table: str = "ai_cache_performance_metrics",
                 option: str = "--group-by") -> tuple[sql.Composable, Group]:
    """``coalesce(<column>::text, '<null label>')`` for a ``--group-by`` value, and its :class:`Group`."""
    group = GROUPS[check_choice(option, group_by, GROUPS)]
    label = sql.SQL("coalesce({}::text, {})").format(sql.Identifier(table, group.column), sql.Literal(group.null_label))
    return label, group


def iso(epoch: float | None) -> str | None:
    """Epoch seconds as ISO 8601 UTC (``2026-06-06T12:00:00Z``), to the second."""
    return iso_utc(float(epoch), "seconds") if epoch is not None else None


def rounded(value: float | None, digits: int = 3) -> float | None:
    return round(float(value), digits) if value is not None else None
