"""Clean-up of what the service stores: :func:`delete_expired`, :func:`purge_past_retention`, :func:`cleanup`.

**Expired entries.** A PostgreSQL row is garbage once nothing can serve it any more: past
its ``expires_at`` by more than the stale-while-revalidate grace the policy gives its vendor
types (the longest of them; 0 without vendor types), since the cache still serves an entry
inside its grace while it refreshes it. Rows still inside their grace are kept and counted.

**Retention** (``AI_CACHE_GDPR_RETENTION_DAYS``). Entries stored, and audit rows written, more
than that many days before now are purged from PostgreSQL, and the purged keys are deleted
from Redis as well (``redisEntries`` counts them; ``-1`` when Redis was unavailable). For each organization whose data was purged one ``GDPR_DELETION`` audit
row records what went (unless ``AI_CACHE_AUDIT_LOGGING_ENABLED`` is off); these rows are new,
so the purge never deletes its own record.

Deletes run in batches of :data:`BATCH_ROWS` rows, each its own transaction, so a large purge
neither holds long locks nor loses finished work when interrupted. ``dry_run`` counts what
would go and changes nothing. Time is the injected clock's. Report shapes::

    delete_expired       -> {"at", "dryRun", "entries", "keptInGrace"}
    purge_past_retention -> {"at", "dryRun", "retentionDays", "cutoff", "entries", "auditRows",
                             "redisEntries", "organizations", "auditRowsWritten"}
    cleanup              -> {"expired": <delete_expired>, "retention": <purge_past_retention>}
"""
from __future__ import annotations

from collections import Counter
from typing import Any

import psycopg_pool
from psycopg import sql

from .audit import AuditEvent, AuditLog
from .clock import Clock
from .errors import TierUnavailable
from .ops.db import iso
from .policy import Policy
from .tiers.redis import RedisTier

BATCH_ROWS = 5000
DAY_SECONDS = 86_400

_GRACE = ("coalesce((SELECT max(g.grace) FROM unnest(e.vendor_types) AS v(vendor) "
          "JOIN unnest(%s::text[], %s::float8[]) AS g(vendor, grace) ON g.vendor = v.vendor::text), 0)")
_EXPIRED = sql.SQL("e.expires_at < to_timestamp(%s) AND e.expires_at < to_timestamp(%s::float8 - " + _GRACE + ")")
_IN_GRACE = sql.SQL("e.expires_at < to_timestamp(%s) AND e.expires_at >= to_timestamp(%s::float8 - " + _GRACE + ")")
_OLDER_THAN = sql.SQL("e.created_at < to_timestamp(%s)")

_COUNT = "SELECT e.organization_id::text, count(*) FROM {table} e WHERE {cond} GROUP BY 1"
_DELETE = ("DELETE FROM {table} WHERE id IN (SELECT e.id FROM {table} e WHERE {cond} LIMIT %s) "
           "RETURNING organization_id::text, {returned}")


def delete_expired(pool: psycopg_pool.ConnectionPool, policy: Policy, clock: Clock, *,
                   dry_run: bool = False) -> dict[str, Any]:
    """Delete the rows of ``ai_cache_entries`` past their expiry and grace; count those still in grace."""
    now = clock.now()
    params = [now, now, *_graces(policy)]
    deleted = _remove(pool, "ai_cache_entries", _EXPIRED, params, "cache_key", dry_run)
    if not dry_run:
        _forget_vectors(pool, deleted.returned)
    kept = sum(_count(pool, "ai_cache_entries", _IN_GRACE, params).values())
    return {"at": iso(now), "dryRun": dry_run, "entries": sum(deleted.by_org.values()), "keptInGrace": kept}


def purge_past_retention(pool: psycopg_pool.ConnectionPool, clock: Clock, retention_days: int, *,
                         redis: RedisTier | None = None, audit_enabled: bool = True,
                         dry_run: bool = False) -> dict[str, Any]:
    """Purge entries and audit rows older than ``retention_days`` (see the module docstring)."""
    if retention_days < 1:
        raise ValueError("retention_days must be at least 1")
    now = clock.now()
    cutoff = now - retention_days * DAY_SECONDS
    entries = _remove(pool, "ai_cache_entries", _OLDER_THAN, [cutoff], "cache_key", dry_run)
    audits = _remove(pool, "ai_cache_audit_logs", _OLDER_THAN, [cutoff], None, dry_run)
    forgotten = _forget(redis, entries.returned)
    vectors = 0 if dry_run else _forget_vectors(pool, entries.returned, cutoff)
    organizations = sorted(set(entries.by_org) | set(audits.by_org))
    written = 0
    if audit_enabled and not dry_run:
        log = AuditLog(pool, clock)
        details = {"reason": "retention", "retentionDays": retention_days, "cutoff": iso(cutoff)}
        written = sum(log.record(AuditEvent(org, "GDPR_DELETION", "CACHE_DATA", None, None, "wedcache cache cleanup",
                                            {**details, "entries": entries.by_org.get(org, 0),
                                             "auditRows": audits.by_org.get(org, 0)}))
                      for org in organizations)
    return {"at": iso(now), "dryRun": dry_run, "retentionDays": retention_days, "cutoff": iso(cutoff),
            "entries": sum(entries.by_org.values()), "auditRows": sum(audits.by_org.values()),
            "redisEntries": forgotten, "semanticVectors": vectors, "organizations": len(organizations), "auditRowsWritten": written}


def cleanup(pool: psycopg_pool.ConnectionPool, policy: Policy, clock: Clock, retention_days: int, *,
            redis: RedisTier | None = None, audit_enabled: bool = True, dry_run: bool = False) -> dict[str, Any]:
    """:func:`delete_expired`, then :func:`purge_past_retention`."""
    return {"expired": delete_expired(pool, policy, clock, dry_run=dry_run),
            "retention": purge_past_retention(pool, clock, retention_days, redis=redis, audit_enabled=audit_enabled,
                                              dry_run=dry_run)}


# -- parts ---------------------------------------------------------------------------------
class _Removed:
    """Rows removed (or, in a dry run, that would be): per organization, and the returned column."""

    def __init__(self) -> None:
        self.by_org: Counter[str] = Counter()
        self.returned: list[str] = []


def _forget(redis: RedisTier | None, keys: list[str]) -> int:
    """Delete ``keys`` from Redis; how many were there (``-1``: Redis was unavailable, as in invalidation)."""
    if redis is None:
        return 0
    try:
        return sum(1 for key in keys if redis.delete(key))
    except TierUnavailable:
        return -1


def _forget_vectors(pool: psycopg_pool.ConnectionPool, keys: list[str], cutoff: float | None = None) -> int:
    """Delete the semantic vectors (``ai_cache_semantic``, when pgvector made it) of the removed
    entries, and with ``cutoff`` every vector stored before it: a vector holds the question's
    embedding and entities, so retention and GDPR deletion cover it like the entry."""
    with pool.connection() as conn:
        if conn.execute("SELECT to_regclass('ai_cache_semantic')").fetchone()[0] is None:
            return 0
        return conn.execute("DELETE FROM ai_cache_semantic WHERE cache_key = ANY(%s) OR created_at < to_timestamp(%s)",
                            (list(keys), cutoff if cutoff is not None else float("-inf"))).rowcount


def _graces(policy: Policy) -> list[list]:
    """Parallel lists of vendor types and their stale-while-revalidate grace (the ``_GRACE`` parameters)."""
    names = list(policy.vendors)
    return [names, [policy.vendors[name].stale_while_revalidate_seconds for name in names]]


def _count(pool: psycopg_pool.ConnectionPool, table: str, cond: sql.Composable, params: list) -> Counter[str]:
    query = sql.SQL(_COUNT).format(table=sql.Identifier(table), cond=cond)
    with pool.connection() as conn:
        return Counter(dict(conn.execute(query, params).fetchall()))


def _remove(pool: psycopg_pool.ConnectionPool, table: str, cond: sql.Composable, params: list,
            returned: str | None, dry_run: bool) -> _Removed:
    """Delete the rows ``cond`` selects, :data:`BATCH_ROWS` per transaction (count them when ``dry_run``).

    ``returned`` names a column whose values are kept (the purged keys), or ``None``."""
    removed = _Removed()
    if dry_run:
        removed.by_org = _count(pool, table, cond, params)
        return removed
    query = sql.SQL(_DELETE).format(table=sql.Identifier(table), cond=cond,
                                    returned=sql.Identifier(returned) if returned else sql.SQL("NULL"))
    while True:
        with pool.connection() as conn:
            batch = conn.execute(query, [*params, BATCH_ROWS]).fetchall()
        for org, value in batch:
            removed.by_org[org] += 1
            if returned:
                removed.returned.append(value)
        if len(batch) < BATCH_ROWS:
            return removed
