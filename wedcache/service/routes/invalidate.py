"""``DELETE /api/ai-cache/invalidate``: remove the entries a selector matches, tier by tier.

Scoped to the key's organization; ``scope: wedding`` also needs ``weddingId``; ``scope:
global`` spans every organization and needs an admin key (a member key gets ``CACHE_007``).
The answer counts what each tier removed (``-1``: the tier was unavailable and skipped).
"""
from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Request
from pydantic import Field
from starlette.responses import Response

from ...apikeys import ApiKey
from ..auth import caller
from ..errors import ApiError
from ..injection import find_injection, refuse_injection
from ..models import COMMON_ERRORS, _Body, errors, json_response

router = APIRouter(tags=["cache"])


class InvalidateBody(_Body):
    wedding_id: str | None = Field(None, alias="weddingId", min_length=1, max_length=100)
    cache_types: list[str] | None = Field(None, alias="cacheTypes", max_length=8)
    scope: Literal["organization", "wedding", "global"] = "organization"
    patterns: list[str] | None = Field(None, max_length=20)
    vendor_types: list[str] | None = Field(None, alias="vendorTypes", max_length=12)
    market_tiers: list[str] | None = Field(None, alias="marketTiers", max_length=3)


@router.delete("/api/ai-cache/invalidate", summary="Invalidate cache entries", response_model=None,
               responses=errors(*COMMON_ERRORS, "CACHE_007"))
def invalidate(body: InvalidateBody, request: Request, key: ApiKey = Depends(caller)) -> Response:
    state = request.app.state.wedcache
    if body.scope == "global" and not key.is_admin:
        state.audit_violation(request, key, "global invalidation with a member key", {"scope": "global"}, "high")
        raise ApiError("CACHE_007", "a global invalidation needs an admin key", {"field": "scope"})
    if any(len(p) > 200 for p in body.patterns or ()):
        raise ApiError("CACHE_001", "patterns: each pattern must be at most 200 characters", {"field": "patterns"})
    found = find_injection({"patterns": body.patterns or (), "weddingId": [body.wedding_id]})
    if found is not None:
        refuse_injection(state, request, key, found)
    removed = state.cache.invalidate_per_tier(
        scope=body.scope, org_id=None if body.scope == "global" else key.organization_id,
        wedding_id=body.wedding_id, cache_types=body.cache_types, patterns=body.patterns,
        vendor_types=body.vendor_types, market_tiers=body.market_tiers)
    state.audit(request, key, "CACHE_INVALIDATE", "CACHE_ENTRY", {"selector": body.model_dump(by_alias=True),
                                                                   "removed": removed})
    total = sum(n for n in removed.values() if n > 0)
    return json_response({"success": True, "removed": removed, "total": total}, request.state.rate_headers)
