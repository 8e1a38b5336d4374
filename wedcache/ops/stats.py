"""Entries and bytes per tier, by organization and cache type: :func:`tier_stats`.

PostgreSQL is counted from ``ai_cache_entries`` (``live``: not yet expired at ``now``;
``valueBytes``: bytes of the stored values as text; ``bytes``: the table with its indexes
and TOAST, ``pg_total_relation_size``, reported only for all organizations). Redis is
counted from the index sets the Redis tier keeps per organization and cache type (SCARD: no
key is scanned; members whose entry Redis already collected are pruned lazily, so the
counts are upper bounds) and ``bytes`` is the server's ``used_memory``, also only for all
organizations. The memory tier lives inside each service process and is reported by the
service (``/api/ai-cache/statistics``, ``/api/metrics``). JSON shape::

    {"at", "organizationId", "organizations",      # organizations holding entries in either tier
     "tiers": {"postgres": {"entries", "live", "expired", "valueBytes", "bytes"},
               "redis":    {"entries", "bytes"}},
     "byOrganization": [{"organizationId", "postgresEntries", "postgresLive", "postgresValueBytes", "redisEntries"}],
                                                   # the largest ``limit``, most PostgreSQL entries first
     "byCacheType":    [{"cacheType", "postgresEntries", "postgresLive", "postgresValueBytes", "redisEntries"}]}
"""
from __future__ import annotations

from typing import Any

import psycopg_pool
from psycopg import sql

from ..entry import Selector
from ..keys import CACHE_TYPES
from ..tiers.redis import ORGS_SET, RedisTier, selector_sets
from .db import check_limit, iso, org_clause, rows

_COUNTS = """SELECT {column}, count(*), count(*) FILTER (WHERE e.expires_at > to_timestamp(%s)),
  coalesce(sum(octet_length(e.cache_value::text)), 0)
FROM ai_cache_entries e WHERE {org} GROUP BY 1 ORDER BY 2 DESC, 1"""


def tier_stats(pool: psycopg_pool.ConnectionPool, redis: RedisTier, *, now: float,
               organization: str | None = None, limit: int = 20) -> dict[str, Any]:
    """Counts and sizes of the PostgreSQL and Redis tiers (see the module docstring).

    ``byOrganization`` lists the ``limit`` largest organizations (PostgreSQL entries, then Redis)."""
    org, org_params = org_clause(organization, "e.organization_id")
    org_id = org_params[0] if org_params else None
    pg_orgs = _postgres(pool, "e.organization_id::text", org, org_params, now)
    pg_types = _postgres(pool, "e.cache_type::text", org, org_params, now)
    orgs = [org_id] if org_id else sorted({*pg_orgs, *_redis_orgs(redis)})
    redis_counts = _redis_counts(redis, orgs)
    redis_orgs = {o: sum(by_type.values()) for o, by_type in redis_counts.items()}
    redis_types = {t: sum(by_type.get(t, 0) for by_type in redis_counts.values()) for t in CACHE_TYPES}
    entries, live, value_bytes = (sum(v[i] for v in pg_orgs.values()) for i in range(3))
    return {"at": iso(now), "organizationId": org_id, "organizations": len({*pg_orgs, *(o for o, n in redis_orgs.items() if n)}),
            "tiers": {"postgres": {"entries": entries, "live": live, "expired": entries - live,
                                   "valueBytes": value_bytes, "bytes": None if org_id else _relation_bytes(pool)},
                      "redis": {"entries": sum(redis_orgs.values()),
                                "bytes": None if org_id else redis.stats()["bytes"]}},
            "byOrganization": _rows("organizationId", pg_orgs, redis_orgs)[:check_limit(limit)],
            "byCacheType": _rows("cacheType", pg_types, redis_types)}


def _postgres(pool: psycopg_pool.ConnectionPool, column: str, org: sql.Composable, params: list,
              now: float) -> dict[str, tuple[int, int, int]]:
    """``{value: (entries, live, value bytes)}`` grouped by ``column``."""
    found = rows(pool, sql.SQL(_COUNTS).format(column=sql.SQL(column), org=org), [now, *params])
    return {value: (n, live, size) for value, n, live, size in found}


def _relation_bytes(pool: psycopg_pool.ConnectionPool) -> int:
    return rows(pool, "SELECT pg_total_relation_size('ai_cache_entries')")[0][0]


def _redis_orgs(redis: RedisTier) -> list[str]:
    return [member.decode() for member in redis.client.smembers(ORGS_SET)]


def _redis_counts(redis: RedisTier, orgs: list[str]) -> dict[str, dict[str, int]]:
    """``{organization: {cache type: index members}}``, in one pipeline."""
    pipe = redis.client.pipeline(transaction=False)
    for org in orgs:
        for cache_type in CACHE_TYPES:  # the tier's own index naming: the set of one cache type
            pipe.scard(selector_sets(org, Selector(org_id=org, cache_types=(cache_type,)))[0][0])
    counts = iter(pipe.execute())
    return {org: {cache_type: next(counts) for cache_type in CACHE_TYPES} for org in orgs}


def _rows(field: str, postgres: dict[str, tuple[int, int, int]], redis: dict[str, int]) -> list[dict[str, Any]]:
    names = sorted({*postgres, *(name for name, n in redis.items() if n)},
                   key=lambda name: (-postgres.get(name, (0,))[0], -redis.get(name, 0), name))
    out = []
    for name in names:
        entries, live, size = postgres.get(name, (0, 0, 0))
        out.append({field: name, "postgresEntries": entries, "postgresLive": live, "postgresValueBytes": size,
                    "redisEntries": redis.get(name, 0)})
    return out
