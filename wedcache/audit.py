"""The audit trail: :class:`AuditLog` over ``ai_cache_audit_logs``.

One row per state-changing operation, security violation and compliance action, with who
(organization, API key), from where (IP address, user agent), what (``action_type``,
``resource_type``, ``resource_id``, ``details``) and how risky (``risk_level``). Off when
``AI_CACHE_AUDIT_LOGGING_ENABLED`` is false. Writing a row never fails the operation it
records: an unavailable database is logged (with the row) instead. ``created_at`` is the
injected clock's time.
"""
from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import orjson
import psycopg
import psycopg_pool
from psycopg.types.json import Jsonb

from .clock import Clock

log = logging.getLogger(__name__)

RISK_LEVELS = ("low", "medium", "high", "critical")


@dataclass(frozen=True)
class AuditEvent:
    organization_id: str
    action_type: str
    """One of the ``audit_action_type`` enum (``CACHE_INVALIDATE``, ``SECURITY_VIOLATION`` …)."""
    resource_type: str
    resource_id: str | None = None
    ip_address: str | None = None
    user_agent: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    risk_level: str = "low"


class AuditLog:
    def __init__(self, pool: psycopg_pool.ConnectionPool, clock: Clock, enabled: bool = True):
        self.pool, self.clock, self.enabled = pool, clock, enabled

    def record(self, event: AuditEvent) -> bool:
        """Write ``event``; ``False`` when disabled or the database refused (logged)."""
        if not self.enabled:
            return False
        try:
            with self.pool.connection() as conn:
                conn.execute("INSERT INTO organizations (id) VALUES (%s) ON CONFLICT DO NOTHING",
                             (event.organization_id,))
                conn.execute(
                    "INSERT INTO ai_cache_audit_logs (organization_id, action_type, resource_type, resource_id, "
                    "ip_address, user_agent, details, created_at, risk_level) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    (event.organization_id, event.action_type, event.resource_type, event.resource_id,
                     _ip(event.ip_address), (event.user_agent or "")[:500] or None,
                     Jsonb(event.details, dumps=_dumps),
                     datetime.fromtimestamp(self.clock.now(), timezone.utc), event.risk_level))
            return True
        except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
            log.error("audit row not written (%s): %s", exc, event)
            return False

    def recent(self, organization_id: str | None = None, *, action_type: str | None = None,
               since: float | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Newest rows first, optionally of one organization / action type / since an epoch time."""
        where, params = ["TRUE"], []
        for column, value in (("organization_id", organization_id), ("action_type", action_type)):
            if value is not None:
                where.append(f"{column} = %s")
                params.append(value)
        if since is not None:
            where.append("created_at >= %s")
            params.append(datetime.fromtimestamp(since, timezone.utc))
        with self.pool.connection() as conn:
            rows = conn.execute(
                "SELECT organization_id::text, action_type::text, resource_type, resource_id, host(ip_address), "
                "user_agent, details, extract(epoch from created_at), risk_level::text FROM ai_cache_audit_logs "
                f"WHERE {' AND '.join(where)} ORDER BY created_at DESC LIMIT %s", [*params, limit]).fetchall()
        keys = ("organizationId", "actionType", "resourceType", "resourceId", "ipAddress", "userAgent", "details",
                "createdAt", "riskLevel")
        return [dict(zip(keys, (*row[:7], float(row[7]), row[8]))) for row in rows]


def _ip(value: str | None) -> str | None:
    """A valid address or ``None`` (the column is INET; a test client's host is not an IP)."""
    try:
        return str(ipaddress.ip_address(value)) if value else None
    except ValueError:
        return None


def _dumps(value: Any) -> str:
    return orjson.dumps(value, default=str).decode()
