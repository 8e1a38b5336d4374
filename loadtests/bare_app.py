"""The baseline of ``wedcache bench-service``: a bare FastAPI app, no cache, no auth.

Its one endpoint, ``POST /api/ai-cache/query``, answers fixed JSON bytes: what the real
service answered for the benchmark's hot query when ``WEDCACHE_BARE_BODY_FILE`` names a file
holding them (the benchmark captures them), else a cached hit of the same shape. It reads
neither the request body nor headers, so it measures FastAPI and uvicorn alone. Serve it as
the service is served: ``python -m wedcache.service.server loadtests.bare_app:create_app --workers N``.
"""
from __future__ import annotations

import os
from pathlib import Path

import orjson
from fastapi import FastAPI
from starlette.responses import Response

BODY_ENV = "WEDCACHE_BARE_BODY_FILE"
QUERY_PATH = "/api/ai-cache/query"
HIT_BODY = {"success": True, "cached": True, "cacheAge": 1.0, "responseTime": 0.05,
            "data": {"answer": "Consider these barn venues with outdoor ceremony space.", "model": "bare",
                     "tokens": 12}}


def hit_body() -> bytes:
    """The JSON to answer: the file named by ``WEDCACHE_BARE_BODY_FILE``, else :data:`HIT_BODY`."""
    path = os.environ.get(BODY_ENV)
    return Path(path).read_bytes() if path else orjson.dumps(HIT_BODY)


def create_app(body: bytes | None = None) -> FastAPI:
    """The bare app answering ``body`` (default :func:`hit_body`) on ``POST /api/ai-cache/query``."""
    payload = hit_body() if body is None else body
    app = FastAPI(title="wedcache bare baseline", openapi_url=None, docs_url=None, redoc_url=None)

    @app.post(QUERY_PATH)
    async def query() -> Response:
        return Response(payload, media_type="application/json")

    return app
