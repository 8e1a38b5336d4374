"""``POST /api/ai-cache/query``: the request path of the whole service.

Authenticate and rate-limit the key (:func:`~wedcache.service.auth.caller`), validate the
body (a bad ``weddingContext`` field is ``CACHE_005``; text with injection signatures is
``CACHE_007``, audited: :mod:`~wedcache.service.injection`), ask
:class:`~wedcache.answering.WeddingAICacheService` (memory -> Redis -> PostgreSQL -> origin,
scoped to the key's organization), record the request's metrics, and answer the source
document's body with ``X-Cache: HIT-<tier>|HIT-semantic-<tier>|MISS`` (semantic: an answer stored
for a question that means the same, when the policy's ``[semantic]`` table enables it).

An async endpoint with a blocking slow path: a fresh memory hit needs no I/O and is answered
on the event loop (:meth:`~wedcache.answering.WeddingAICacheService.answer_from_memory`);
anything else (Redis, PostgreSQL, the origin) runs in the thread pool, as the cache's clients
are blocking. A thread hand-off per request cost about a third of a hit's CPU time.
"""
from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from ...apikeys import ApiKey
from ..auth import caller
from ..injection import find_injection, refuse_injection
from ..models import COMMON_ERRORS, QueryBody, QueryResponse, errors, json_response

router = APIRouter(tags=["cache"])


@router.post("/api/ai-cache/query", response_model=None, summary="Answer a wedding-planning query through the cache",
             responses={200: {"model": QueryResponse, "headers": {"X-Cache": {
                 "description": "HIT-memory, HIT-redis, HIT-postgres, HIT-semantic-<tier> or MISS",
                 "schema": {"type": "string"}}}},
                        **errors(*COMMON_ERRORS, "CACHE_005", "CACHE_007")})
async def query(body: QueryBody, request: Request, key: ApiKey = Depends(caller)) -> Response:
    state = request.app.state.wedcache
    context = body.wedding_context
    found = find_injection({"query": [body.query], "weddingContext.location": [context and context.location],
                            "weddingContext.weddingId": [context and context.wedding_id]})
    if found is not None:
        await run_in_threadpool(refuse_injection, state, request, key, found)
    asked = (key.organization_id, body.query, context, body.options)
    answered = state.answering.answer_from_memory(*asked)
    if answered is None:
        answered = await run_in_threadpool(state.answering.answer, *asked)
    state.observe(key, answered)
    return json_response(answered.body, {"X-Cache": answered.x_cache, **request.state.rate_headers})
