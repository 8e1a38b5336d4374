"""Who is calling: the :func:`caller` dependency (API key, then the plan's rate limit).

The key comes as ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``. No key, or an
unknown or revoked one, is ``CACHE_002``; a key over its plan's hourly budget is
``CACHE_003`` with ``Retry-After``. Every authenticated response carries
``X-RateLimit-Limit``, ``X-RateLimit-Remaining`` and ``X-RateLimit-Reset`` (seconds until the
budget is whole again); an unlimited plan sends none. :func:`organization_scope` enforces
tenancy: a member key may only name its own organization (``CACHE_007`` otherwise, audited).
"""
from __future__ import annotations

import math

import psycopg
from fastapi import Request
from starlette.concurrency import run_in_threadpool

from ..apikeys import NOT_REMEMBERED, ApiKey
from ..keys import organization_uuid
from .errors import ApiError


async def caller(request: Request) -> ApiKey:
    """The verified key of the request, within its rate limit (a FastAPI dependency).

    A key verified lately and an unlimited plan need no I/O and are checked on the event
    loop; the database (an unknown secret) and Redis (a limited plan) are asked from the
    thread pool, their clients being blocking."""
    state = request.app.state.wedcache
    secret = _secret(request)
    if not secret:
        raise ApiError("CACHE_002", "an API key is required: send Authorization: Bearer <key> or X-API-Key")
    key = state.keys.remembered(secret)
    if key is NOT_REMEMBERED:
        key = await run_in_threadpool(_verify, state.keys, secret)
    if key is None:
        raise ApiError("CACHE_002", "the API key is unknown or revoked")
    limiter = state.limiter
    decision = limiter.check(key.id, key.plan) if limiter.unlimited(key.plan) else \
        await run_in_threadpool(limiter.check, key.id, key.plan)
    headers = rate_headers(decision)
    if not decision.allowed:
        headers["Retry-After"] = str(max(1, math.ceil(decision.retry_after)))
        raise ApiError("CACHE_003", f"the {key.plan} plan allows {decision.limit} requests per hour",
                       {"plan": key.plan, "limit": decision.limit}, headers)
    request.state.rate_headers = headers
    request.state.api_key = key
    return key


def _verify(keys, secret: str) -> ApiKey | None:
    try:
        return keys.verify(secret)
    except psycopg.Error as exc:
        raise ApiError("CACHE_004", f"API keys cannot be checked: the database is unavailable ({exc})") from None


def rate_headers(decision) -> dict[str, str]:
    if decision.limit is None:
        return {}
    return {"X-RateLimit-Limit": str(decision.limit), "X-RateLimit-Remaining": str(max(0, decision.remaining)),
            "X-RateLimit-Reset": str(math.ceil(decision.reset_seconds))}


def organization_scope(request: Request, key: ApiKey, named: str | None) -> str:
    """The organization a request acts on: the key's own, or ``named`` (an admin key only).

    :raises ApiError: ``CACHE_007`` when a member key names another organization (audited).
    """
    if not named:
        return key.organization_id
    try:
        org = organization_uuid(named, "organizationId")
    except ValueError as exc:
        raise ApiError("CACHE_001", str(exc), {"field": "organizationId"}) from None
    if org != key.organization_id and not key.is_admin:
        auditor = getattr(request.app.state.wedcache, "audit_violation", None)
        if auditor is not None:
            auditor(request, key, "cross-organization access", {"organizationId": org}, "high")
        raise ApiError("CACHE_007", "this key may only act on its own organization",
                       {"field": "organizationId"})
    return org


def _secret(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip() or None
    return request.headers.get("x-api-key") or None
