"""Request and response bodies of the HTTP API, camelCase as in the source document.

Requests reuse the cache's own models (:class:`~wedcache.context.WeddingContext`,
:class:`~wedcache.answering.QueryOptions`), so the service validates exactly what the cache
accepts. Response models document ``/openapi.json``; hot endpoints build their JSON directly.
"""
from __future__ import annotations

from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from ..answering import QueryOptions
from ..context import MAX_QUERY_CHARS, WeddingContext
from .errors import CODES


class _Body(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid")


class QueryBody(_Body):
    """``POST /api/ai-cache/query``."""

    query: str = Field(min_length=1, max_length=MAX_QUERY_CHARS)
    wedding_context: WeddingContext | None = Field(None, alias="weddingContext")
    options: QueryOptions | None = None


class SemanticAnalytics(BaseModel):
    """Present when the answer came from a question that means the same (``X-Cache: HIT-semantic-<tier>``)."""

    similarity: float = Field(description="cosine similarity of the question to the matched one")
    matchedKey: str = Field(description="the cache key of the entry that answered")
    indexTier: str = Field(description="where the matched vector was found: memory or postgres")


class Analytics(BaseModel):
    hitRate: float
    performanceScore: float
    semantic: SemanticAnalytics | None = None


class QueryResponse(BaseModel):
    success: bool
    data: Any = None
    cached: bool
    cacheAge: float | None = Field(None, description="seconds since the answer was computed (hits only)")
    responseTime: float = Field(description="milliseconds spent in the service")
    analytics: Analytics | None = None


class ErrorDetail(BaseModel):
    code: str = Field(description=", ".join(f"{c} {t}" for c, (_, t) in CODES.items()))
    message: str
    details: dict[str, Any] | None = None
    timestamp: str
    requestId: str


class ErrorBody(BaseModel):
    error: ErrorDetail


def errors(*codes: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for ``codes`` (merged by status)."""
    out: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        status, title = CODES[code]
        entry = out.setdefault(status, {"model": ErrorBody, "description": ""})
        entry["description"] = ", ".join(filter(None, [entry["description"], f"{code} {title}"]))
    return out


COMMON_ERRORS = ("CACHE_001", "CACHE_002", "CACHE_003", "CACHE_004")


def json_response(body: Any, headers: dict[str, str] | None = None, status: int = 200) -> Response:
    """JSON through orjson (no ``jsonable_encoder`` pass: the bodies are plain data)."""
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)
