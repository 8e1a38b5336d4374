"""``POST /api/ai-cache/query``: the request path of the whole service.

Authenticate and rate-limit the key (:func:`~wedcache.service.auth.caller`), validate the
body (a bad ``weddingContext`` field is ``CACHE_005``), ask
:class:`~wedcache.answering.WeddingAICacheService` (memory -> Redis -> PostgreSQL -> origin,
scoped to the key's organization), record the request's metrics, and answer the source
document's body with ``X-Cache: HIT-<tier>|MISS``. A sync endpoint: the cache's clients are
blocking, so FastAPI runs it in its thread pool.
"""
from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from ...apikeys import ApiKey
from ..auth import caller
from ..models import COMMON_ERRORS, QueryBody, QueryResponse, errors, json_response

router = APIRouter(tags=["cache"])


@router.post("/api/ai-cache/query", response_model=None, summary="Answer a wedding-planning query through the cache",
             responses={200: {"model": QueryResponse, "headers": {"X-Cache": {"schema": {"type": "string"}}}},
                        **errors(*COMMON_ERRORS, "CACHE_005")})
def query(body: QueryBody, request: Request, key: ApiKey = Depends(caller)) -> Response:
    state = request.app.state.wedcache
    answered = state.answering.answer(key.organization_id, body.query, body.wedding_context, body.options)
    state.observe(key, answered)
    return json_response(answered.body, {"X-Cache": answered.x_cache, **request.state.rate_headers})
