"""Analyses of stored entries (``ai_cache_entries``): :func:`patterns`, :func:`keys`, :func:`vendors`, :func:`entry_sizes`.

An entry's *size* is the bytes of its stored value as text (``octet_length(cache_value::text)``,
the envelope and ciphertext when entries are sealed). ``accessCount`` is the table's
``access_count``: reads that reached PostgreSQL (memory and Redis hits never touch the row).
Requests and hits come from the metric rows of a time window, as in :mod:`.analytics`; a
request's vendor type is its first one, as is an entry's ``vendor_type``. Every analysis
takes ``organization`` (a UUID or a name) to look at one organization. JSON shapes:

:func:`patterns` — the most asked normalised queries, and every cache type::

    {"timeRange", "organizationId", "from", "to",
     "queries":    [{"query", "entries", "accessCount", "requests", "hits", "hitRate"}],
     "cacheTypes": [{"cacheType", "entries", "accessCount", "requests", "hits", "hitRate"}]}

:func:`keys` — entries per organization, cache type and market tier, and the hot keys::

    {"organizationId", "at",
     "byOrganization" | "byCacheType" | "byMarketTier": [{<"organizationId"|"cacheType"|"marketTier">,
                                                         "entries", "live", "expired", "accessCount"}],
     "hot": [{"cacheKey", "organizationId", "cacheType", "marketTier", "query", "accessCount",
              "lastAccessedAt", "expiresAt", "live"}]}

:func:`vendors` — per vendor type (``none``: entries without one): stored entries, requests and
hit rate, and the TTL the policy gives (``policyTtlSeconds``: base TTL x the entry's market
tier multiplier x the season's factor, averaged over the stored entries) against the TTL they
got (``storedTtlSeconds``) and their observed lifetime (``observedLifetimeSeconds``: from
being stored to the last read, over entries read at least once)::

    {"timeRange", "organizationId", "from", "to", "season",
     "vendors": [{"vendorType", "entries", "live", "accessCount", "requests", "hits", "hitRate",
                  "baseTtlSeconds", "volatilityFactor", "policyTtlSeconds", "storedTtlSeconds",
                  "observedLifetimeSeconds"}]}

:func:`entry_sizes` — the size distribution, per cache type, and the largest entries::

    {"organizationId", "summary": {"entries", "totalBytes", "meanBytes", "p50Bytes", "p95Bytes",
                                   "p99Bytes", "maxBytes"},
     "buckets": [{"bucket", "entries", "bytes"}], "byCacheType": [{"cacheType", "entries", "totalBytes",
     "meanBytes", "maxBytes"}], "largest": [{"cacheKey", "organizationId", "cacheType", "query", "bytes"}]}
"""
from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timezone
from typing import Any

import psycopg_pool
from psycopg import sql

from ..keys import CACHE_TYPES
from ..metrics import NO_VENDOR
from ..partition import LocationBasedCachePartitioner
from ..policy import Policy
from ..ttl import VendorCacheOptimizer
from .db import check_limit, iso, metric_window, org_clause, ratio, rounded, rows

SIZE_BUCKETS = (1024, 4096, 16384, 65536, 262144)
"""Upper bounds (bytes, exclusive) of the size buckets; a last bucket holds everything larger."""
_SIZE = "octet_length(e.cache_value::text)"

_PATTERNS = """WITH stored AS (
  SELECT {item} AS item, count(*) AS entries, coalesce(sum(e.access_count), 0) AS access
  FROM ai_cache_entries e WHERE {org} GROUP BY 1),
asked AS (
  SELECT {asked_item} AS item, count(*) AS requests, count(*) FILTER (WHERE m.metric_type = 'hit') AS hits
  FROM ai_cache_performance_metrics m {join} WHERE {window} GROUP BY 1)
SELECT coalesce(s.item, a.item), coalesce(s.entries, 0), coalesce(s.access, 0), coalesce(a.requests, 0),
  coalesce(a.hits, 0)
FROM stored s FULL JOIN asked a ON a.item = s.item
ORDER BY 4 DESC, 3 DESC, 2 DESC, 1 LIMIT %s"""

_KEY_COUNTS = """SELECT {column}::text, count(*), count(*) FILTER (WHERE e.expires_at > to_timestamp(%s)),
  coalesce(sum(e.access_count), 0)
FROM ai_cache_entries e WHERE {org} GROUP BY 1 ORDER BY 2 DESC, 1"""

_HOT = """SELECT e.cache_key, e.organization_id::text, e.cache_type::text, coalesce(e.market_tier, 'tier_3')::text,
  e.query_text, coalesce(e.access_count, 0), date_part('epoch', e.last_accessed_at), date_part('epoch', e.expires_at)
FROM ai_cache_entries e WHERE {org} ORDER BY 6 DESC, 1 LIMIT %s"""

_VENDOR_ENTRIES = """SELECT coalesce(e.vendor_type::text, %s), coalesce(e.market_tier, 'tier_3')::text,
  e.vendor_types::text[], count(*), count(*) FILTER (WHERE e.expires_at > to_timestamp(%s)),
  coalesce(sum(e.access_count), 0), sum(e.ttl_seconds)::float8,
  count(*) FILTER (WHERE e.access_count > 0),
  coalesce(sum(date_part('epoch', e.last_accessed_at - e.created_at)) FILTER (WHERE e.access_count > 0), 0)
FROM ai_cache_entries e WHERE {org} GROUP BY 1, 2, 3"""

_VENDOR_REQUESTS = """SELECT coalesce(m.vendor_type::text, %s), count(*), count(*) FILTER (WHERE m.metric_type = 'hit')
FROM ai_cache_performance_metrics m WHERE {window} GROUP BY 1"""

_SIZE_SUMMARY = f"""SELECT count(*), coalesce(sum({_SIZE}), 0), avg({_SIZE})::float8,
  percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY {_SIZE}), max({_SIZE})
FROM ai_cache_entries e WHERE {{org}}"""

_SIZE_BUCKETS = f"""SELECT width_bucket({_SIZE}, %s::int[]), count(*), sum({_SIZE})
FROM ai_cache_entries e WHERE {{org}} GROUP BY 1 ORDER BY 1"""

_SIZE_BY_TYPE = f"""SELECT e.cache_type::text, count(*), sum({_SIZE}), avg({_SIZE})::float8, max({_SIZE})
FROM ai_cache_entries e WHERE {{org}} GROUP BY 1 ORDER BY 3 DESC, 1"""

_LARGEST = f"""SELECT e.cache_key, e.organization_id::text, e.cache_type::text, e.query_text, {_SIZE}
FROM ai_cache_entries e WHERE {{org}} ORDER BY 5 DESC, 1 LIMIT %s"""


def patterns(pool: psycopg_pool.ConnectionPool, *, now: float, time_range: str = "24h",
             organization: str | None = None, limit: int = 20) -> dict[str, Any]:
    """The most asked normalised queries and every cache type (see the module docstring)."""
    window, limit = metric_window(now, time_range, organization, "m"), check_limit(limit)
    org, org_params = org_clause(organization, "e.organization_id")

    def ranked(item: str, asked_item: str, join: str, size: int) -> list[tuple]:
        query = sql.SQL(_PATTERNS).format(item=sql.SQL(item), asked_item=sql.SQL(asked_item), join=sql.SQL(join),
                                          org=org, window=window.where)
        return rows(pool, query, [*org_params, *window.params, size])

    queries = ranked("e.query_text", "e.query_text",
                     "JOIN ai_cache_entries e ON e.cache_key = m.cache_key", limit)
    types = ranked("e.cache_type::text", "split_part(m.cache_key, ':', 3)", "", len(CACHE_TYPES))
    return {**window.describe(time_range),
            "queries": [_pattern("query", row) for row in queries],
            "cacheTypes": [_pattern("cacheType", row) for row in types]}


def keys(pool: psycopg_pool.ConnectionPool, *, now: float, organization: str | None = None,
         limit: int = 20) -> dict[str, Any]:
    """Key counts per organization, cache type and market tier, and the hot keys by ``access_count``."""
    org, org_params = org_clause(organization, "e.organization_id")
    out: dict[str, Any] = {"organizationId": org_params[0] if org_params else None, "at": iso(now)}
    for name, field, column in (("byOrganization", "organizationId", "e.organization_id"),
                                ("byCacheType", "cacheType", "e.cache_type"),
                                ("byMarketTier", "marketTier", "coalesce(e.market_tier, 'tier_3')")):
        found = rows(pool, sql.SQL(_KEY_COUNTS).format(column=sql.SQL(column), org=org), [now, *org_params])
        out[name] = [{field: value, "entries": n, "live": live, "expired": n - live, "accessCount": access}
                     for value, n, live, access in found]
    hot = rows(pool, sql.SQL(_HOT).format(org=org), [*org_params, check_limit(limit)])
    out["hot"] = [{"cacheKey": key, "organizationId": owner, "cacheType": ctype, "marketTier": tier, "query": query,
                   "accessCount": access, "lastAccessedAt": iso(seen), "expiresAt": iso(expires),
                   "live": expires > now} for key, owner, ctype, tier, query, access, seen, expires in hot]
    return out


def vendors(pool: psycopg_pool.ConnectionPool, policy: Policy, *, now: float, time_range: str = "24h",
            organization: str | None = None, default_ttl: int = 3600) -> dict[str, Any]:
    """Per vendor type: entries, hit rate, the policy's TTL against the stored TTL and observed lifetime."""
    window = metric_window(now, time_range, organization, "m")
    org, org_params = org_clause(organization, "e.organization_id")
    stored = rows(pool, sql.SQL(_VENDOR_ENTRIES).format(org=org), [NO_VENDOR, now, *org_params])
    asked = {v: (n, hits) for v, n, hits in
             rows(pool, sql.SQL(_VENDOR_REQUESTS).format(window=window.where), [NO_VENDOR, *window.params])}
    season = policy.season_of(_day(now))
    figures = _vendor_figures(stored, VendorCacheOptimizer(policy, default_ttl), season)
    out = []
    for vendor in sorted(set(figures) | set(asked)):
        requests, hits = asked.get(vendor, (0, 0))
        conf = policy.vendors.get(vendor)
        out.append({"vendorType": vendor, **figures.get(vendor, _no_entries()), "requests": requests, "hits": hits,
                    "hitRate": ratio(hits, requests), "baseTtlSeconds": conf.baseTtl if conf else default_ttl,
                    "volatilityFactor": conf.volatilityFactor if conf else None})
    return {**window.describe(time_range), "season": season, "vendors": out}


def entry_sizes(pool: psycopg_pool.ConnectionPool, *, organization: str | None = None,
                limit: int = 20) -> dict[str, Any]:
    """Sizes of stored values: summary, buckets, per cache type and the largest entries."""
    org, org_params = org_clause(organization, "e.organization_id")
    n, total, mean, percentiles, most = rows(pool, sql.SQL(_SIZE_SUMMARY).format(org=org), org_params)[0]
    p50, p95, p99 = percentiles or (None, None, None)  # NULL over no rows
    counted = {b: (c, s) for b, c, s in
               rows(pool, sql.SQL(_SIZE_BUCKETS).format(org=org), [list(SIZE_BUCKETS), *org_params])}
    by_type = rows(pool, sql.SQL(_SIZE_BY_TYPE).format(org=org), org_params)
    largest = rows(pool, sql.SQL(_LARGEST).format(org=org), [*org_params, check_limit(limit)])
    return {"organizationId": org_params[0] if org_params else None,
            "summary": {"entries": n, "totalBytes": total, "meanBytes": rounded(mean, 1), "p50Bytes": rounded(p50, 1),
                        "p95Bytes": rounded(p95, 1), "p99Bytes": rounded(p99, 1), "maxBytes": most},
            "buckets": [{"bucket": label, "entries": counted.get(i, (0, 0))[0], "bytes": counted.get(i, (0, 0))[1]}
                        for i, label in enumerate(bucket_labels())],
            "byCacheType": [{"cacheType": t, "entries": c, "totalBytes": s, "meanBytes": rounded(m, 1),
                             "maxBytes": x} for t, c, s, m, x in by_type],
            "largest": [{"cacheKey": k, "organizationId": o, "cacheType": t, "query": q, "bytes": b}
                        for k, o, t, q, b in largest]}


def bucket_labels() -> list[str]:
    """``< 1 KiB``, ``1-4 KiB`` … ``>= 256 KiB``: one label per :data:`SIZE_BUCKETS` bucket, plus the last."""
    kib = [b // 1024 for b in SIZE_BUCKETS]
    middle = [f"{low}-{high} KiB" for low, high in zip(kib, kib[1:])]
    return [f"< {kib[0]} KiB", *middle, f">= {kib[-1]} KiB"]


# -- parts ---------------------------------------------------------------------------------
def _pattern(field: str, row: tuple) -> dict[str, Any]:
    item, entries, access, requests, hits = row
    return {field: item, "entries": entries, "accessCount": access, "requests": requests, "hits": hits,
            "hitRate": ratio(hits, requests)}


def _vendor_figures(stored: list[tuple], optimizer: VendorCacheOptimizer, season: str) -> dict[str, dict[str, Any]]:
    """Per vendor type, from rows grouped by (vendor type, market tier, vendor types)."""
    sums: dict[str, defaultdict] = {}
    partitioner: LocationBasedCachePartitioner = optimizer.partitioner
    factor = optimizer.policy.seasons[season].ttl_adjustment_factor
    for vendor, tier, vendor_types, n, live, access, ttl_sum, read, life_sum in stored:
        total = sums.setdefault(vendor, defaultdict(float))
        policy_ttl = optimizer.base_ttl(tuple(vendor_types)) * partitioner.ttl_multiplier(tier) * factor
        for name, value in (("entries", n), ("live", live), ("accessCount", access), ("ttl", ttl_sum),
                            ("policy", policy_ttl * n), ("read", read), ("life", life_sum)):
            total[name] += value
    return {vendor: {"entries": int(s["entries"]), "live": int(s["live"]), "accessCount": int(s["accessCount"]),
                     "policyTtlSeconds": rounded(s["policy"] / s["entries"], 1),
                     "storedTtlSeconds": rounded(s["ttl"] / s["entries"], 1),
                     "observedLifetimeSeconds": rounded(s["life"] / s["read"], 1) if s["read"] else None}
            for vendor, s in sums.items()}


def _no_entries() -> dict[str, Any]:
    return {"entries": 0, "live": 0, "accessCount": 0, "policyTtlSeconds": None, "storedTtlSeconds": None,
            "observedLifetimeSeconds": None}


def _day(now: float) -> date:
    return datetime.fromtimestamp(now, timezone.utc).date()
