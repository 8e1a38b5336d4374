"""Security and compliance over the cache: :class:`CacheSecurityManager`.

The source document's fifth component. It works on what the tiers *store*, tier by tier
(:meth:`TieredCache.entries_per_tier` lists an organization through each tier's own index:
the memory tier's organization index, Redis' ``idx:all`` set, PostgreSQL's
``organization_id``), never on what a lookup would answer, because a GDPR report or an
integrity check is about every copy. Five operations, each writing one audit row:

- :meth:`~CacheSecurityManager.generate_gdpr_report` (``GDPR_REPORT``): entries and bytes per
  tier, entries holding personal data (context fields outside
  :data:`~wedcache.encryption.PUBLIC_CONTEXT_FIELDS`) and whether they are encrypted, retention
  against ``AI_CACHE_GDPR_RETENTION_DAYS`` (entries and audit rows), and an Article 30 record
  of processing.
- :meth:`~CacheSecurityManager.handle_data_deletion_request` (``GDPR_DELETION``): removes a
  wedding's entries from every tier through the cache's invalidation path. A user maps to
  entries only through the weddings they belong to: no entry records a user (the wedding
  context accepts no user field), so a ``userId`` is resolved by the ``user_weddings`` hook —
  in the service :func:`wedding_members`, the ``wedding_members`` table the product fills
  (migration 0005); a user with no recorded wedding is a :class:`ComplianceIssue` rather than
  a success that deleted nothing.
- :meth:`~CacheSecurityManager.audit_security_violations`: recent ``SECURITY_VIOLATION`` rows
  counted by risk level.
- :meth:`~CacheSecurityManager.encrypt_sensitive_data` (``ENCRYPTION``): re-seals, with
  encryption, entries stored before it was on (legacy plaintext, or tag-only seals).
- :meth:`~CacheSecurityManager.validate_cache_integrity` (``INTEGRITY_CHECK``, plus one
  ``SECURITY_VIOLATION`` per bad entry): removes copies that fail their tag or do not decode,
  and keys whose copies disagree across tiers (a stale or replayed copy; the cache recomputes).

**Incomplete work is never a success.** A deletion or an encryption that could not reach a
tier (``-1`` in its counts) raises :class:`ComplianceIssue` (``CACHE_008``) carrying what was
done; what was removed elsewhere stays removed, and the request can be repeated. A report or
an integrity check over an unavailable tier answers with ``complete: false``.

**Scope.** Deletion goes through the cache's invalidation path: this process's tiers, and,
through the service's :class:`~wedcache.coherence.CoherenceBus`, every other replica's
memory tier (a replica that missed the message drops its memory tier on reconnect). Audit rows belong to
the organization whose data is acted on; they are not deleted by a deletion request (they are
the record of it) and are reported with their retention.
"""
from __future__ import annotations

import logging
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Iterable

import psycopg
import psycopg_pool

from .audit import RISK_LEVELS, AuditEvent, AuditLog
from .cache import TieredCache
from .clock import Clock, iso_utc
from .encryption import _is_cipher, personal_fields  # one definition of "a ciphertext object"
from .entry import CacheEntry
from .errors import InvalidInput, TamperedEntry, TierUnavailable, WedcacheError
from .keys import organization_uuid
from .tiers import Unreadable

log = logging.getLogger(__name__)

DAY = 86400.0
MAX_VIOLATION_ROWS = 50
"""``SECURITY_VIOLATION`` rows one integrity check writes at most (the check row has the totals)."""

UserWeddings = Callable[[str, str], Iterable[str]]
"""``(organization_id, user_id) -> wedding ids`` the user is a data subject of."""


def wedding_members(pool: psycopg_pool.ConnectionPool) -> UserWeddings:
    """The :data:`UserWeddings` of the ``wedding_members`` table (migration 0005)."""
    def weddings_of(org: str, user_id: str) -> list[str]:
        with pool.connection() as conn:
            rows = conn.execute("SELECT m.wedding_id::text FROM wedding_members m JOIN weddings w ON w.id = "
                                "m.wedding_id WHERE w.organization_id = %s AND m.user_id = %s",
                                (org, organization_uuid(user_id, "userId"))).fetchall()
        return [wedding for (wedding,) in rows]
    return weddings_of


class ComplianceIssue(WedcacheError):
    """A request the GDPR obligations cannot be met for as asked (``CACHE_008``); ``details`` says what was done."""

    def __init__(self, message: str, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.message, self.details = message, dict(details or {})


@dataclass(frozen=True)
class Actor:
    """Who asked, for the audit row (the HTTP service fills it from the request)."""

    api_key_id: str | None = None
    organization_id: str | None = None
    """The caller's own organization (differs from the one acted on for an admin key)."""
    ip_address: str | None = None
    user_agent: str | None = None
    request_id: str | None = None


class CacheSecurityManager:
    """GDPR report and deletion, encryption, integrity and the violation log over a :class:`TieredCache`.

    :param cache: the cache; its ``codec`` (an :class:`~wedcache.encryption.EntrySealer`) opens,
        verifies and seals entries (``None``: nothing is sealed, nothing can be encrypted).
    :param auditor: where audit rows go (and violations are read from).
    :param pool: the service's database pool (audit-trail retention in the report); ``None``
        leaves the audit trail uncounted (reported as ``null``).
    :param clock: time of ages and retention (default: the cache's).
    :param retention_days: ``AI_CACHE_GDPR_RETENTION_DAYS``.
    :param user_weddings: resolves a ``userId`` to the weddings holding their data (see the module docstring).
    """

    def __init__(self, cache: TieredCache, auditor: AuditLog, pool: psycopg_pool.ConnectionPool | None, *,
                 clock: Clock | None = None, retention_days: int = 2555, user_weddings: UserWeddings | None = None):
        self.cache, self.codec, self.auditor, self.pool = cache, cache.codec, auditor, pool
        self.clock = clock or cache.clock
        self.retention_days = retention_days
        self.user_weddings = user_weddings

    @classmethod
    def from_state(cls, state: Any, **kwargs: Any) -> "CacheSecurityManager":
        """The manager of a :class:`~wedcache.service.state.ServiceState`."""
        kwargs.setdefault("user_weddings", wedding_members(state.pool))
        return cls(state.cache, state.auditor, state.pool, clock=state.clock,
                   retention_days=state.settings.gdpr_retention_days, **kwargs)

    # -- GDPR report ---------------------------------------------------------------------
    def generate_gdpr_report(self, org_id: str, actor: Actor | None = None) -> dict[str, Any]:
        """What is stored for ``org_id`` per tier, its personal data, retention and the Article 30 record."""
        org, now = organization_uuid(org_id, "organizationId"), self.clock.now()
        listed = self.cache.entries_per_tier(org)
        cutoff = now - self.retention_days * DAY
        unique = _unique_entries(listed)
        fields = sorted({name for e in unique.values() for name in personal_fields(e.context)})
        holding = [e for e in unique.values() if personal_fields(e.context)]
        report = {
            "organizationId": org, "generatedAt": iso_utc(now), "complete": _complete(listed),
            "tiers": {name: self._tier_report(found, cutoff) for name, found in listed.items()},
            "totals": {"entries": len(unique), "personalDataEntries": len(holding),
                       "unencryptedPersonalDataEntries": sum(1 for e in holding if not self._encrypted(e))},
            "personalData": {"fields": fields, "encryptionEnabled": self._encrypting,
                             "encrypted": all(self._encrypted(e) for e in holding)},
            "retention": self._retention(unique.values(), org, now, cutoff),
            "recordOfProcessing": self._article_30(org, fields),
        }
        self._audit(actor, org, "GDPR_REPORT", "ORGANIZATION", {"totals": report["totals"],
                                                                "complete": report["complete"]}, resource_id=org)
        return report

    def _retention(self, entries: Iterable[CacheEntry], org: str, now: float, cutoff: float) -> dict[str, Any]:
        created = [e.created_at for e in entries]
        past = sum(1 for t in created if t < cutoff)
        audit = self._audit_retention(org, cutoff)
        exceeded = past > 0 or (audit["rowsPastRetention"] or 0) > 0
        return {"retentionDays": self.retention_days,
                "oldestEntryAgeDays": round((now - min(created)) / DAY, 3) if created else None,
                "entriesPastRetention": past, "auditTrail": audit, "status": "exceeded" if exceeded else "within"}

    def _audit_retention(self, org: str, cutoff: float) -> dict[str, Any]:
        """Audit rows of ``org`` (they hold IP addresses and user agents: personal data too)."""
        unknown = {"rows": None, "oldestRowAt": None, "rowsPastRetention": None}
        if self.pool is None:
            return unknown
        try:
            with self.pool.connection() as conn:
                rows, oldest, past = conn.execute(
                    "SELECT count(*), extract(epoch from min(created_at)), count(*) FILTER (WHERE created_at < %s) "
                    "FROM ai_cache_audit_logs WHERE organization_id = %s",
                    (datetime.fromtimestamp(cutoff, timezone.utc), org)).fetchone()
        except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:  # the report says it could not count them
            log.warning("audit retention not read: %s", exc)
            return unknown
        return {"rows": rows, "oldestRowAt": iso_utc(float(oldest)) if oldest is not None else None,
                "rowsPastRetention": past}

    def _article_30(self, org: str, fields: list[str]) -> dict[str, Any]:
        """GDPR Article 30(1) record of the processing the cache does for the controller ``org``."""
        measures = ["API-key authentication (keys stored as SHA-256 hashes) and per-organization isolation "
                    "of cache keys and index sets"]
        if self.codec is not None:
            measures.insert(0, "HMAC-SHA256 integrity tag over every entry (identity, times, content)")
            if self._encrypting:
                measures.insert(0, "AES-256-GCM field encryption of every answer and personal context field "
                                   "(per-field nonce; key, organization and field as associated data)")
        if self.auditor.enabled:
            measures.append("audit logging of state-changing, security and compliance operations "
                            "(ai_cache_audit_logs)")
        return {
            "controller": {"organizationId": org},
            "processor": "wedcache tiered AI answer cache (memory, Redis, PostgreSQL)",
            "purposes": ["answering wedding-planning questions from cached AI answers",
                         "reducing the latency and cost of AI origin calls"],
            "categoriesOfDataSubjects": ["couples and guests of the weddings the organization plans",
                                         "people using the organization's API clients (audit trail)"],
            "categoriesOfPersonalData": [f"wedding context field {name!r}" for name in fields]
            + ["AI answers about a wedding", "IP addresses and user agents of API requests (audit trail)"]
            + (["question embeddings and the entities the semantic guard reads (dates, places, guest and budget "
                "ranges; table ai_cache_semantic, not encrypted)"] if self.cache.semantic is not None else []),
            "recipients": ["the organization's own API clients",
                           "the AI origin (the query and wedding context of a cache miss)"],
            "retentionPeriod": {"days": self.retention_days,
                                "cacheEntries": "served until the entry's TTL (hours); stored copies are removed by "
                                                "garbage collection (Redis expiry, the PostgreSQL clean-up job) or "
                                                "by deletion on request; see retention.entriesPastRetention"},
            "securityMeasures": measures,
        }

    # -- deletion ------------------------------------------------------------------------
    def handle_data_deletion_request(self, org_id: str, *, wedding_id: str | None = None, user_id: str | None = None,
                                     actor: Actor | None = None) -> dict[str, Any]:
        """Remove the data subject's entries from every tier; counts per tier (``-1``: not reached).

        :raises InvalidInput: naming ``weddingId`` when neither a wedding nor a user is named.
        :raises ComplianceIssue: when ``user_id`` cannot be resolved, or a tier was not reached.
        """
        org = organization_uuid(org_id, "organizationId")
        if not wedding_id and not user_id:
            raise InvalidInput("weddingId", "a deletion request names weddingId or userId")
        if user_id and self.user_weddings is None:
            self._refuse(actor, org, "GDPR_DELETION", "DATA_SUBJECT", ComplianceIssue(
                "userId: no cache entry records a user and this deployment links no user to weddings; name the "
                "user's weddingId instead", {"field": "userId", "userId": user_id}))
        weddings = self._weddings(org, wedding_id, user_id)
        if not weddings:
            self._refuse(actor, org, "GDPR_DELETION", "DATA_SUBJECT", ComplianceIssue(
                "userId: no wedding of this user is recorded (wedding_members); name the user's weddingId instead",
                {"field": "userId", "userId": user_id}))
        removed = {tier.name: 0 for tier in self.cache.tiers}
        for wedding in weddings:
            _add_counts(removed, self.cache.invalidate_per_tier(scope="wedding", org_id=org, wedding_id=wedding))
        unreached = [name for name, n in removed.items() if n < 0]
        result = {"organizationId": org, "weddingIds": weddings, "userId": user_id, "removed": removed,
                  "total": sum(n for n in removed.values() if n > 0), "complete": not unreached,
                  "scope": "memory tiers of every replica (through the invalidation bus), Redis and PostgreSQL"}
        self._audit(actor, org, "GDPR_DELETION", "DATA_SUBJECT", result, "high" if unreached else "medium",
                    resource_id=user_id or wedding_id)
        if unreached:
            raise ComplianceIssue(f"the deletion did not reach the {', '.join(unreached)} tier (unavailable): "
                                  "entries removed elsewhere stay removed; repeat the request", result)
        return result

    def _weddings(self, org: str, wedding_id: str | None, user_id: str | None) -> list[str]:
        """The wedding ids (canonical) the request covers."""
        weddings = [wedding_id] if wedding_id else []
        if user_id:
            weddings += list(self.user_weddings(org, user_id))
        return list(dict.fromkeys(organization_uuid(w, "weddingId") for w in weddings))

    # -- violations ----------------------------------------------------------------------
    def audit_security_violations(self, org_id: str, *, since: float | None = None,
                                  limit: int = 100) -> dict[str, Any]:
        """The newest ``SECURITY_VIOLATION`` rows of ``org_id`` (at most ``limit``), counted by risk level."""
        org = organization_uuid(org_id, "organizationId")
        rows = self.auditor.recent(org, action_type="SECURITY_VIOLATION", since=since, limit=limit)
        by_risk = Counter(row["riskLevel"] for row in rows)
        kinds = Counter((row["details"] or {}).get("violation") or row["resourceType"] for row in rows)
        return {"organizationId": org, "since": iso_utc(since) if since is not None else None, "total": len(rows),
                "byRiskLevel": {level: by_risk.get(level, 0) for level in RISK_LEVELS}, "byViolation": dict(kinds),
                "violations": [{**row, "createdAt": iso_utc(row["createdAt"])} for row in rows]}

    # -- encryption ----------------------------------------------------------------------
    def encrypt_sensitive_data(self, org_id: str, actor: Actor | None = None) -> dict[str, Any]:
        """Re-seal with encryption every entry of ``org_id`` stored without it, in each tier.

        Expired unencrypted copies are removed rather than sealed (they are served by no one).

        :raises ComplianceIssue: when encryption is off, or a tier was not reached.
        """
        org, now = organization_uuid(org_id, "organizationId"), self.clock.now()
        if not self._encrypting:
            self._refuse(actor, org, "ENCRYPTION", "CACHE_ENTRY", ComplianceIssue(
                "encryption is disabled (AI_CACHE_ENCRYPTION_ENABLED=false): personal data cannot be encrypted",
                {"encryptionEnabled": False}))
        tiers = {name: self._encrypt_tier(name, found, now) for name, found in self.cache.entries_per_tier(org).items()}
        result = {"organizationId": org, "tiers": tiers, "complete": all(t["complete"] for t in tiers.values()),
                  "encrypted": sum(t["encrypted"] for t in tiers.values())}
        self._audit(actor, org, "ENCRYPTION", "CACHE_ENTRY", result, "low" if result["complete"] else "high")
        if not result["complete"]:
            unreached = ", ".join(name for name, t in tiers.items() if not t["complete"])
            raise ComplianceIssue(f"encryption did not reach the {unreached} tier (unavailable): unencrypted "
                                  "entries may remain there; repeat the request", result)
        return result

    def _encrypt_tier(self, name: str, found: list | None, now: float) -> dict[str, Any]:
        counts = {"scanned": 0, "encrypted": 0, "alreadyEncrypted": 0, "expiredRemoved": 0, "skipped": 0,
                  "complete": found is not None}
        try:
            for item in found or ():
                counts["scanned"] += 1
                counts[self._encrypt_one(name, item, now)] += 1
        except TierUnavailable as exc:
            log.warning("encryption stopped on the %s tier: %s", name, exc)
            counts["complete"] = False
        return counts

    def _encrypt_one(self, name: str, item: CacheEntry | Unreadable, now: float) -> str:
        """Seal ``item`` in tier ``name``; returns the counter it adds to."""
        if isinstance(item, Unreadable) or self._encrypted(item):
            return "skipped" if isinstance(item, Unreadable) else "alreadyEncrypted"
        if item.expires_at <= now:
            self.cache.on_tier(name, "delete", item.key)
            return "expiredRemoved"
        try:
            plain = self.codec.open(item)
        except TamperedEntry:
            return "skipped"  # left for validateCacheIntegrity to remove
        self.cache.on_tier(name, "set", self.codec.seal(plain))
        return "encrypted"

    # -- integrity -----------------------------------------------------------------------
    def validate_cache_integrity(self, org_id: str, actor: Actor | None = None) -> dict[str, Any]:
        """Check every stored copy of ``org_id``'s entries; remove tampered copies and disagreeing keys."""
        org = organization_uuid(org_id, "organizationId")
        listed = self.cache.entries_per_tier(org)
        tiers = {name: _integrity_counts(found) for name, found in listed.items()}
        copies: dict[str, list[tuple[str, CacheEntry]]] = defaultdict(list)
        problems: list[dict[str, Any]] = []
        for name, found in listed.items():
            for item in found or ():
                plain, reason = self._checked(item, org)
                if reason is None:
                    tiers[name]["valid"] += 1
                    tiers[name]["unsealed"] += not self._sealed(item)
                    copies[item.key].append((name, plain))
                    continue
                tiers[name]["tampered"] += 1
                problems.append({"cacheKey": item.key, "tiers": [name], "reason": reason, "kind": "tampered"})
                self._remove(name, item.key, tiers)
                self.cache.events.tampered.fire(key=item.key, org_id=org, tier=name)
        problems += self._remove_disagreeing(copies, tiers)
        return self._integrity_result(actor, org, listed, tiers, problems)

    def _checked(self, item: CacheEntry | Unreadable, org: str) -> tuple[CacheEntry | None, str | None]:
        """``(opened entry, None)``, or ``(None, why it fails)``."""
        if isinstance(item, Unreadable):
            return None, item.reason
        if item.org_id != org:
            return None, f"stored under organization {org} but belongs to {item.org_id}"
        if self.codec is None:
            return item, None
        try:
            return self.codec.open(item), None
        except TamperedEntry as exc:
            return None, exc.reason

    def _remove_disagreeing(self, copies: dict[str, list[tuple[str, CacheEntry]]],
                            tiers: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
        """Keys whose valid copies differ between tiers: every copy goes (the cache recomputes)."""
        problems = []
        for key, held in copies.items():
            if all(_same_content(held[0][1], entry) for _, entry in held[1:]):
                continue
            for name, _ in held:
                tiers[name]["inconsistent"] += 1
                self._remove(name, key, tiers)
            problems.append({"cacheKey": key, "tiers": [n for n, _ in held], "kind": "inconsistent",
                             "reason": "copies differ across tiers (stale or replayed copy)"})
        return problems

    def _remove(self, name: str, key: str, tiers: dict[str, dict[str, Any]]) -> None:
        try:
            tiers[name]["removed"] += bool(self.cache.on_tier(name, "delete", key))
        except TierUnavailable as exc:
            log.warning("integrity check could not remove %s from %s: %s", key, name, exc)
            tiers[name]["complete"] = False

    def _integrity_result(self, actor: Actor | None, org: str, listed: dict, tiers: dict[str, dict[str, Any]],
                          problems: list[dict[str, Any]]) -> dict[str, Any]:
        tampered = sum(t["tampered"] for t in tiers.values())
        result = {"organizationId": org, "complete": _complete(listed) and all(t["complete"] for t in tiers.values()),
                  "tiers": tiers, "tampered": tampered,
                  "inconsistent": sum(1 for p in problems if p["kind"] == "inconsistent"),
                  "removed": sum(t["removed"] for t in tiers.values()), "problems": problems}
        for problem in problems[:MAX_VIOLATION_ROWS]:
            self._audit(actor, org, "SECURITY_VIOLATION", "CACHE_ENTRY",
                        {"violation": f"{problem['kind']} cache entry", **problem},
                        "critical" if problem["kind"] == "tampered" else "high", resource_id=problem["cacheKey"])
        risk = "critical" if tampered else "high" if problems else "low"
        self._audit(actor, org, "INTEGRITY_CHECK", "CACHE_ENTRY", {k: v for k, v in result.items() if k != "problems"},
                    risk)
        return result

    # -- shared --------------------------------------------------------------------------
    @property
    def _encrypting(self) -> bool:
        return self.codec is not None and bool(getattr(self.codec, "encrypt", False))

    def _sealed(self, entry: CacheEntry) -> bool:
        return self.codec is not None and self.codec.is_sealed(entry)

    def _encrypted(self, entry: CacheEntry | Unreadable) -> bool:
        """Sealed with its answer and every personal context field as ciphertext."""
        if isinstance(entry, Unreadable) or not self._sealed(entry):
            return False
        context = entry.context or {}
        return _is_cipher(entry.value.get("value")) and all(_is_cipher(context[f]) for f in personal_fields(context))

    def _tier_report(self, found: list | None, cutoff: float) -> dict[str, Any] | None:
        """Sizes and protection of one tier's listing (``None``: the tier was unavailable)."""
        if found is None:
            return None
        entries = [e for e in found if isinstance(e, CacheEntry)]
        return {"entries": len(found), "bytes": sum(e.size for e in entries),
                "personalDataEntries": sum(1 for e in entries if personal_fields(e.context)),
                "sealedEntries": sum(1 for e in entries if self._sealed(e)),
                "encryptedEntries": sum(1 for e in entries if self._encrypted(e)),
                "unreadableEntries": len(found) - len(entries),
                "entriesPastRetention": sum(1 for e in entries if e.created_at < cutoff)}

    def _refuse(self, actor: Actor | None, org: str, action: str, resource: str, issue: ComplianceIssue) -> None:
        """Audit a request refused as a compliance issue, then raise it."""
        self._audit(actor, org, action, resource, {**issue.details, "complete": False, "refused": issue.message},
                    "medium")
        raise issue

    def _audit(self, actor: Actor | None, org: str, action: str, resource: str, details: dict[str, Any],
               risk: str = "low", resource_id: str | None = None) -> None:
        actor = actor or Actor()
        details = {**details, "apiKeyId": actor.api_key_id, "actorOrganizationId": actor.organization_id,
                   "requestId": actor.request_id}
        self.auditor.record(AuditEvent(org, action, resource, resource_id, actor.ip_address, actor.user_agent,
                                       details, risk))


# -- helpers -------------------------------------------------------------------------------
def _integrity_counts(found: list | None) -> dict[str, Any]:
    return {"checked": len(found or ()), "valid": 0, "unsealed": 0, "tampered": 0, "inconsistent": 0, "removed": 0,
            "complete": found is not None}


def _unique_entries(listed: dict[str, list | None]) -> dict[str, CacheEntry]:
    """One entry per key over all tiers (the fastest tier's copy)."""
    unique: dict[str, CacheEntry] = {}
    for found in listed.values():
        for entry in found or ():
            if isinstance(entry, CacheEntry):
                unique.setdefault(entry.key, entry)
    return unique


def _same_content(a: CacheEntry, b: CacheEntry) -> bool:
    """Equal answers, contexts and tags, and times within a millisecond (tiers round them differently)."""
    return ((a.value, a.context, a.cache_type, a.query, a.wedding_id, a.market_tier, tuple(a.vendor_types))
            == (b.value, b.context, b.cache_type, b.query, b.wedding_id, b.market_tier, tuple(b.vendor_types))
            and abs(a.created_at - b.created_at) <= 1e-3 and abs(a.expires_at - b.expires_at) <= 1e-3)


def _add_counts(total: dict[str, int], more: dict[str, int]) -> None:
    """Add per-tier counts; ``-1`` (a tier not reached) sticks."""
    for name, n in more.items():
        total[name] = -1 if n < 0 or total.get(name, 0) < 0 else total.get(name, 0) + n


def _complete(listed: dict[str, list | None]) -> bool:
    return all(found is not None for found in listed.values())


