"""``GET /healthz`` (the process answers) and ``GET /readyz`` (its backends, and their breakers)."""
from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from ..models import json_response

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="Liveness: the process answers")
def healthz() -> Response:
    return json_response({"status": "ok"})


@router.get("/readyz", summary="Readiness: each backend tier's state and breaker")
def readyz(request: Request) -> Response:
    """200 when every backend tier answers; 503 (still with the details) when one does not.

    The service keeps answering from the other tiers and the origin either way (fail-open);
    readiness tells a load balancer or an operator that it runs degraded.
    """
    cache = request.app.state.wedcache.cache
    tiers, ready = {}, True
    for tier in cache.tiers:
        up, breaker = _probe(tier), cache.breakers.get(tier.name)
        tiers[tier.name] = {"up": up, "breaker": breaker.state if breaker is not None else None}
        ready = ready and up
    return json_response({"status": "ready" if ready else "degraded", "tiers": tiers}, status=200 if ready else 503)


def _probe(tier) -> bool:
    """Ask the tier for its stats directly (its breaker may be skipping it)."""
    try:
        tier.stats()
    except Exception:  # noqa: BLE001  (any failure means not ready)
        return False
    return True
