"""``GET /api/metrics``: the Prometheus text exposition (the source document's scrape target).

The series are :class:`~wedcache.metrics.ServiceMetrics`'s: ``ai_cache_requests_total``
(``market_tier``, ``vendor_type``), ``ai_cache_hits_total`` (``tier``, ``market_tier``,
``vendor_type``), the ``ai_cache_response_time_ms`` histogram (``tier``, ``origin`` for a
miss), ``ai_cache_seasonal_load_factor``, ``ai_cache_memory_usage_bytes``,
``ai_cache_memory_limit_bytes`` and ``ai_cache_errors_total`` (``code``). The gauges are set
just before rendering, so a scrape reads current values. With several workers
(``PROMETHEUS_MULTIPROC_DIR``, set by ``wedcache serve --workers N``) whichever worker answers
renders every worker's values, added up (:func:`~wedcache.metrics.render_metrics`).

No API key is needed, like any Prometheus scrape target: the exposition holds aggregate
counts by market tier, vendor type, cache tier and error code — no organization, key, query
or answer — and Prometheus's static scrape configuration of the source document sends no
credentials. Keep the port off the public internet (or filter ``/api/metrics`` at the proxy)
where even aggregate traffic figures are sensitive. Scrapes are not rate-limited.
"""
from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import PlainTextResponse, Response

from ..models import errors

router = APIRouter(tags=["operations"])


def json_errors(*codes: str) -> dict[int | str, dict]:
    """:func:`~wedcache.service.models.errors` as JSON bodies, on a route whose own answer is text."""
    out = {}
    for status, entry in errors(*codes).items():
        schema = {"$ref": f"#/components/schemas/{entry['model'].__name__}"}
        out[status] = {"description": entry["description"], "content": {"application/json": {"schema": schema}}}
    return out


@router.get("/api/metrics", summary="Prometheus metrics (text exposition; no API key)", response_model=None,
            response_class=PlainTextResponse, response_description="The Prometheus text exposition format",
            responses=json_errors("CACHE_004"))
def metrics(request: Request) -> Response:
    """Every worker's series; the memory and load-factor gauges are set first (see the module docstring)."""
    state = request.app.state.wedcache
    state.refresh_gauges()
    body, content_type = state.metrics.render()
    return Response(body, media_type=content_type)
