"""``POST /api/ai-cache/security``: the source document's security and compliance actions.

One endpoint, five ``action``s, each a method of
:class:`~wedcache.security.CacheSecurityManager`:

- ``generateGDPRReport`` and ``auditSecurityViolations`` read: any key, for its own
  organization; an admin key may name any ``organizationId``.
- ``handleDataDeletionRequest``, ``encryptSensitiveData`` and ``validateCacheIntegrity``
  delete or rewrite stored entries: admin keys only. A member key gets ``CACHE_007`` (a
  security violation, audited), as it does for a global invalidation. A deletion must name
  its ``organizationId`` (the controller) and ``weddingId`` or ``userId``.

A member key naming another organization is ``CACHE_007`` (audited, by
:func:`~wedcache.service.auth.organization_scope`). A field the action does not read, or one
it needs and lacks, is ``CACHE_001`` naming it. ``CACHE_008`` is a request the GDPR cannot be
served for as asked: a deletion or encryption that could not reach a tier (the details hold
what was done, ``-1`` for the tier), a ``userId`` this deployment cannot map to weddings,
encryption while ``AI_CACHE_ENCRYPTION_ENABLED`` is false.

The body is read as JSON and validated here (:func:`_parse`) rather than by a FastAPI body
model, so that ``/openapi.json`` can show one schema per action
(:data:`~wedcache.service.security_models.REQUEST_SCHEMA`) while errors still name the field.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from fastapi import APIRouter, Body, Depends, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.responses import Response

from ...apikeys import ApiKey
from ...security import Actor, CacheSecurityManager, ComplianceIssue
from ..auth import caller, organization_scope
from ..errors import ApiError
from ..models import COMMON_ERRORS, errors, json_response
from ..security_models import ACTION_FIELDS, ADMIN_ACTIONS, REQUEST_SCHEMA, SecurityAnswer, SecurityBody

router = APIRouter(tags=["security"])


@router.post("/api/ai-cache/security", response_model=None, summary="Security and compliance operations",
             responses={200: {"model": SecurityAnswer, "description": "the action's answer (by `action`)"},
                        **errors(*COMMON_ERRORS, "CACHE_007", "CACHE_008")},
             openapi_extra={"requestBody": {"required": True,
                                            "content": {"application/json": {"schema": REQUEST_SCHEMA}}}})
def security(request: Request, payload: Any = Body(...), key: ApiKey = Depends(caller)) -> Response:
    state = request.app.state.wedcache
    body = _parse(payload)
    _check_fields(body)
    org = organization_scope(request, key, body.organization_id)
    if body.action in ADMIN_ACTIONS and not key.is_admin:
        state.audit_violation(request, key, f"{body.action} with a member key", {"organizationId": org}, "medium")
        raise ApiError("CACHE_007", f"{body.action} changes stored data and needs an admin key", {"field": "action"})
    manager = CacheSecurityManager.from_state(state)
    try:
        answer = _run(manager, body, org, _actor(request, key))
    except ComplianceIssue as issue:
        raise ApiError("CACHE_008", issue.message, issue.details) from None
    return json_response({"success": True, "action": body.action, **answer}, request.state.rate_headers)


def _run(manager: CacheSecurityManager, body: SecurityBody, org: str, actor: Actor) -> dict:
    if body.action == "generateGDPRReport":
        return manager.generate_gdpr_report(org, actor)
    if body.action == "handleDataDeletionRequest":
        return manager.handle_data_deletion_request(org, wedding_id=body.wedding_id, user_id=body.user_id,
                                                    actor=actor)
    if body.action == "auditSecurityViolations":
        return manager.audit_security_violations(org, since=_epoch(body.since), limit=body.limit)
    if body.action == "encryptSensitiveData":
        return manager.encrypt_sensitive_data(org, actor)
    return manager.validate_cache_integrity(org, actor)


def _parse(payload: Any) -> SecurityBody:
    """The body as :class:`SecurityBody`; errors go to the app's handler (``CACHE_001`` naming the field)."""
    try:
        return SecurityBody.model_validate(payload)
    except ValidationError as exc:
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]) from None


def _check_fields(body: SecurityBody) -> None:
    """``CACHE_001`` naming a field the action does not read, or a deletion's missing field."""
    allowed = ACTION_FIELDS[body.action]
    for name in sorted(body.model_fields_set - {"action"}):
        alias = SecurityBody.model_fields[name].alias or name
        if alias not in allowed:
            raise ApiError("CACHE_001", f"{alias}: not used by {body.action}", {"field": alias})
    if body.action == "handleDataDeletionRequest":
        if body.organization_id is None:
            raise ApiError("CACHE_001", "organizationId: is required for handleDataDeletionRequest",
                           {"field": "organizationId"})
        if body.wedding_id is None and body.user_id is None:
            raise ApiError("CACHE_001", "weddingId: handleDataDeletionRequest names weddingId or userId",
                           {"field": "weddingId"})


def _actor(request: Request, key: ApiKey) -> Actor:
    return Actor(key.id, key.organization_id, request.client.host if request.client else None,
                 request.headers.get("user-agent"), getattr(request.state, "request_id", None))


_LATEST = datetime(9999, 12, 31, tzinfo=timezone.utc).timestamp()


def _epoch(moment: datetime | None) -> float | None:
    """``moment`` as epoch seconds (a time without a zone is UTC), within 1970-01-01 .. 9999-12-31
    (no audit row is older; a zone offset at either end of the calendar would leave it)."""
    if moment is None:
        return None
    seconds = (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()
    return min(max(seconds, 0.0), _LATEST)
