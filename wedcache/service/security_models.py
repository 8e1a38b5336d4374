"""Bodies of ``POST /api/ai-cache/security`` (camelCase): the request and one answer per action.

The request is validated as one flat :class:`SecurityBody` (so an error names the field,
``userId``, not ``handleDataDeletionRequest.userId``) plus the rule that an action takes only
the fields it reads (:data:`ACTION_FIELDS`); the document shows the precise contract, one
schema per action (:data:`REQUEST_SCHEMA`, derived from the same field definitions). The
answers are what :class:`~wedcache.security.CacheSecurityManager` returns, plus ``success``
and ``action``; they document ``/openapi.json`` (the route writes its JSON directly). A tier
that was unavailable is ``null`` in per-tier maps and ``-1`` in counts.
"""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, Field, TypeAdapter, create_model

from .models import _Body

Action = Literal["generateGDPRReport", "handleDataDeletionRequest", "auditSecurityViolations",
                 "encryptSensitiveData", "validateCacheIntegrity"]

ACTION_FIELDS: dict[str, frozenset[str]] = {
    "generateGDPRReport": frozenset({"organizationId"}),
    "handleDataDeletionRequest": frozenset({"organizationId", "userId", "weddingId"}),
    "auditSecurityViolations": frozenset({"organizationId", "since", "limit"}),
    "encryptSensitiveData": frozenset({"organizationId"}),
    "validateCacheIntegrity": frozenset({"organizationId"}),
}
"""The fields each action reads (besides ``action``); any other field is refused, naming it."""

ADMIN_ACTIONS = frozenset({"handleDataDeletionRequest", "encryptSensitiveData", "validateCacheIntegrity"})
"""State-changing actions (they delete or rewrite stored entries): admin keys only."""


class SecurityBody(_Body):
    """``POST /api/ai-cache/security``."""

    action: Action
    organization_id: str | None = Field(None, alias="organizationId", min_length=1, max_length=200,
                                        description="default: the key's own organization (required for deletion)")
    user_id: str | None = Field(None, alias="userId", min_length=1, max_length=100)
    wedding_id: str | None = Field(None, alias="weddingId", min_length=1, max_length=100)
    since: datetime | None = Field(None, description="rows at or after this time")
    limit: int = Field(100, ge=1, le=1000, description="most rows returned")


def _action_schema(action: str) -> dict[str, Any]:
    """The JSON schema of ``action``'s body: ``action`` and the :class:`SecurityBody` fields it reads."""
    fields = {name: (info.annotation, info) for name, info in SecurityBody.model_fields.items()
              if (info.alias or name) in ACTION_FIELDS[action]}
    model = create_model(f"{action[0].upper()}{action[1:]}Body", __base__=_Body,
                         action=(Literal[action], ...), **fields)  # type: ignore[call-overload]
    schema = TypeAdapter(model).json_schema(by_alias=True)
    schema["properties"] = {name: _not_null(prop) for name, prop in schema["properties"].items()}
    if action == "handleDataDeletionRequest":
        schema["required"] = [*schema["required"], "organizationId"]
        schema["anyOf"] = [{"required": ["weddingId"]}, {"required": ["userId"]}]
    return schema


def _not_null(prop: dict[str, Any]) -> dict[str, Any]:
    """A property schema without its ``null`` alternative (null is accepted as "not given", not advertised)."""
    options = [o for o in prop.get("anyOf", ()) if o != {"type": "null"}]
    if len(options) != 1:
        return prop
    rest = {k: v for k, v in prop.items() if k not in ("anyOf", "default")}
    return {**options[0], **rest}


REQUEST_SCHEMA = {"oneOf": [_action_schema(action) for action in ACTION_FIELDS]}
"""The request body as documented: one schema per action."""


class _Answer(BaseModel):
    success: bool
    organizationId: str


# -- generateGDPRReport ------------------------------------------------------------------------
class TierHoldings(BaseModel):
    entries: int
    bytes: int = Field(description="encoded size of the entries (PostgreSQL row overhead not counted)")
    personalDataEntries: int
    sealedEntries: int
    encryptedEntries: int
    unreadableEntries: int
    entriesPastRetention: int


class AuditRetention(BaseModel):
    rows: int | None
    oldestRowAt: str | None
    rowsPastRetention: int | None


class Retention(BaseModel):
    retentionDays: int
    oldestEntryAgeDays: float | None
    entriesPastRetention: int
    auditTrail: AuditRetention
    status: Literal["within", "exceeded"]


class GDPRReport(_Answer):
    action: Literal["generateGDPRReport"]
    generatedAt: str
    complete: bool = Field(description="false when a tier could not be read (its entry is null)")
    tiers: dict[str, TierHoldings | None]
    totals: dict[str, int]
    personalData: dict[str, Any]
    retention: Retention
    recordOfProcessing: dict[str, Any] = Field(description="GDPR Article 30(1) record of processing")


# -- handleDataDeletionRequest -----------------------------------------------------------------
class DeletionResult(_Answer):
    action: Literal["handleDataDeletionRequest"]
    weddingIds: list[str]
    userId: str | None
    removed: dict[str, int] = Field(description="entries removed per tier")
    total: int
    complete: bool
    scope: str


# -- auditSecurityViolations -------------------------------------------------------------------
class ViolationRow(BaseModel):
    organizationId: str
    actionType: str
    resourceType: str
    resourceId: str | None
    ipAddress: str | None
    userAgent: str | None
    details: dict[str, Any] | None
    createdAt: str
    riskLevel: str


class ViolationsReport(_Answer):
    action: Literal["auditSecurityViolations"]
    since: str | None
    total: int
    byRiskLevel: dict[str, int]
    byViolation: dict[str, int]
    violations: list[ViolationRow]


# -- encryptSensitiveData ----------------------------------------------------------------------
class TierEncryption(BaseModel):
    scanned: int
    encrypted: int
    alreadyEncrypted: int
    expiredRemoved: int
    skipped: int = Field(description="unreadable or tampered copies, left for validateCacheIntegrity")
    complete: bool


class EncryptionResult(_Answer):
    action: Literal["encryptSensitiveData"]
    tiers: dict[str, TierEncryption]
    complete: bool
    encrypted: int


# -- validateCacheIntegrity --------------------------------------------------------------------
class TierIntegrity(BaseModel):
    checked: int
    valid: int
    unsealed: int = Field(description="valid legacy entries without a tag (encryptSensitiveData seals them)")
    tampered: int
    inconsistent: int
    removed: int
    complete: bool


class IntegrityProblem(BaseModel):
    cacheKey: str
    tiers: list[str]
    kind: Literal["tampered", "inconsistent"]
    reason: str


class IntegrityResult(_Answer):
    action: Literal["validateCacheIntegrity"]
    complete: bool
    tiers: dict[str, TierIntegrity]
    tampered: int
    inconsistent: int
    removed: int
    problems: list[IntegrityProblem]


SecurityAnswer = Annotated[Union[GDPRReport, DeletionResult, ViolationsReport, EncryptionResult, IntegrityResult],
                           Field(discriminator="action")]
