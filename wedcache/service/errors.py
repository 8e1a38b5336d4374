"""The HTTP error contract: :class:`ApiError`, the source document's codes, and the handlers.

Every error leaves the service as the source document's envelope::

    {"error": {"code": "CACHE_005", "message": "...", "details": {...},
               "timestamp": "2026-06-06T12:00:00.000Z", "requestId": "..."}}

with the request's ``X-Request-ID`` echoed. :func:`install_error_handlers` maps what can go
wrong to a code: validation errors name the JSON field (a ``weddingContext`` field is
``CACHE_005``, anything else ``CACHE_001``); an origin that cannot answer a miss is
``CACHE_004``; and an unexpected exception is logged with its request id and answered as
``CACHE_004`` too, so no request ever gets a bare 500. Every envelope answered while the
service's state exists is counted in ``ai_cache_errors_total`` by code.
"""
from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any, Mapping

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from ..clock import iso_utc
from ..errors import InvalidInput, OriginUnavailable, TamperedEntry

log = logging.getLogger(__name__)

CODES: dict[str, tuple[int, str]] = {
    "CACHE_001": (400, "Invalid query format"),
    "CACHE_002": (401, "Authentication required"),
    "CACHE_003": (429, "Rate limit exceeded"),
    "CACHE_004": (503, "Cache service unavailable"),
    "CACHE_005": (400, "Invalid wedding context"),
    "CACHE_006": (409, "Seasonal scaling in progress"),
    "CACHE_007": (403, "Security violation detected"),
    "CACHE_008": (409, "GDPR compliance issue"),
}
"""Code -> (HTTP status, the source document's title)."""


class ApiError(Exception):
    """An error the API answers with ``code``'s status and the envelope.

    :param message: what went wrong, for a person (names the field when there is one).
    :param details: machine-readable extras (``field``, limits …).
    :param headers: extra response headers (``Retry-After`` …).
    :param status: overrides the code's usual status (e.g. 404 for an unknown route).
    """

    def __init__(self, code: str, message: str, details: Mapping[str, Any] | None = None,
                 headers: Mapping[str, str] | None = None, status: int | None = None):
        super().__init__(f"{code}: {message}")
        self.code, self.message = code, message
        self.details = dict(details or {})
        self.headers = dict(headers or {})
        self.status = status or CODES[code][0]


def field_error(field: str, reason: str) -> ApiError:
    """``CACHE_005`` for a ``weddingContext`` field, ``CACHE_001`` for any other."""
    code = "CACHE_005" if field.startswith("weddingContext") else "CACHE_001"
    return ApiError(code, f"{field}: {reason}", {"field": field})


def request_id(request: Request) -> str:
    return request.scope.get("state", {}).get("request_id", "")


def error_response(request: Request, error: ApiError) -> Response:
    _count(request, error.code)
    body = {"error": {"code": error.code, "message": error.message, "details": error.details or None,
                      "timestamp": _timestamp(request), "requestId": request_id(request)}}
    return Response(orjson.dumps(body), status_code=error.status, media_type="application/json",
                    headers=error.headers)


def install_error_handlers(app: FastAPI) -> None:
    """Answer every failure with the envelope (see the module docstring)."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Response:
        return error_response(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        return error_response(request, _from_validation(exc.errors()))

    @app.exception_handler(InvalidInput)
    async def _invalid_input(request: Request, exc: InvalidInput) -> Response:
        return error_response(request, field_error(exc.field, exc.reason))

    @app.exception_handler(OriginUnavailable)
    async def _origin(request: Request, exc: OriginUnavailable) -> Response:
        return error_response(request, ApiError("CACHE_004", f"no tier holds the answer and the origin failed: {exc}"))

    @app.exception_handler(TamperedEntry)
    async def _tampered(request: Request, exc: TamperedEntry) -> Response:
        state, key = getattr(request.app.state, "wedcache", None), getattr(request.state, "api_key", None)
        if state is not None and key is not None:
            state.audit_violation(request, key, "tampered cache entry", {"cacheKey": exc.key, "reason": exc.reason},
                                  "critical")
        return error_response(request, ApiError("CACHE_007", "a stored answer failed its integrity check and was "
                                                             "removed; retry to recompute it", {"cacheKey": exc.key}))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        return error_response(request, ApiError("CACHE_001", str(exc.detail), status=exc.status_code))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("request %s failed", request_id(request))
        return error_response(request, ApiError("CACHE_004", "the service could not complete the request"))


def _from_validation(errors: list[dict]) -> ApiError:
    """The first validation error, as the field it names (``weddingContext.guestCount``)."""
    if not errors:
        return ApiError("CACHE_001", "the request is invalid")
    err = errors[0]
    if err.get("type") == "json_invalid":
        return ApiError("CACHE_001", "the body is not valid JSON", {"position": err.get("loc", [None, None])[-1]})
    loc = list(err.get("loc", ()))
    location = [str(part) for part in (loc[1:] if loc[:1] and loc[0] in ("body", "query", "path", "header") else loc)]
    if not location:
        return ApiError("CACHE_001", f"body: {err.get('msg', 'invalid')}", {"field": "body"})
    return field_error(".".join(location), err.get("msg", "invalid"))


def _count(request: Request, code: str) -> None:
    """Count the error in the service's metrics (none before start-up or in a document-only app)."""
    metrics = getattr(getattr(request.app.state, "wedcache", None), "metrics", None)
    if metrics is not None:
        metrics.count_error(code)


def _timestamp(request: Request) -> str:
    state = getattr(request.app.state, "wedcache", None)
    now = state.clock.now() if state is not None else datetime.now(timezone.utc).timestamp()
    return iso_utc(now)
