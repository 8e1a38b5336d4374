"""``POST|GET /api/ai-cache/seasonal-scaling``: configure, execute and inspect seasonal scaling.

See :class:`~wedcache.seasonal_control.SeasonalControl`. ``configure`` needs ``seasonConfig``;
``execute`` applies ``seasonConfig.season`` when given, else the calendar's season, and a
second ``execute`` while one runs is ``CACHE_006``; ``status`` (and ``GET``) report.
``executeImmediate`` with ``configure`` applies the new plan at once.
"""
from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Request
from pydantic import Field
from starlette.responses import Response

from ...apikeys import ApiKey
from ...seasonal_control import ScalingInProgress, event_json
from ..auth import caller
from ..errors import ApiError
from ..models import COMMON_ERRORS, _Body, errors, json_response

router = APIRouter(tags=["seasonal scaling"])


class SeasonConfig(_Body):
    season: str
    traffic_multiplier: float = Field(alias="trafficMultiplier")
    cache_size: float = Field(alias="cacheSize", description="cache-size multiplier against the winter baseline")
    cost_budget: float = Field(alias="costBudget")


class ScalingBody(_Body):
    action: Literal["configure", "execute", "status"]
    season_config: SeasonConfig | None = Field(None, alias="seasonConfig")
    execute_immediate: bool = Field(False, alias="executeImmediate")


@router.post("/api/ai-cache/seasonal-scaling", summary="Configure, execute or inspect seasonal scaling",
             response_model=None, responses=errors(*COMMON_ERRORS, "CACHE_006"))
def seasonal_scaling(body: ScalingBody, request: Request, key: ApiKey = Depends(caller)) -> Response:
    state = request.app.state.wedcache
    control, out = state.scaling, {"success": True, "action": body.action}
    if body.action == "configure":
        if body.season_config is None:
            raise ApiError("CACHE_001", "seasonConfig: is required for configure", {"field": "seasonConfig"})
        c = body.season_config
        out["config"] = control.configure(c.season, c.traffic_multiplier, c.cache_size, c.cost_budget)
        state.audit(request, key, "CONFIG_CHANGE", "SEASONAL_CONFIG", out["config"])
    if body.action == "execute" or (body.action == "configure" and body.execute_immediate):
        season = body.season_config.season if body.season_config else None
        try:
            event = control.execute(season)
        except ScalingInProgress as exc:
            raise ApiError("CACHE_006", str(exc)) from None
        out["event"] = event_json(event)
        state.audit(request, key, "SCALING_CHANGE", "MEMORY_TIER", out["event"])
    out["status"] = control.status()
    return json_response(out, request.state.rate_headers)


@router.get("/api/ai-cache/seasonal-scaling", summary="Seasonal scaling status", response_model=None,
            responses=errors(*COMMON_ERRORS))
def scaling_status(request: Request, key: ApiKey = Depends(caller)) -> Response:
    return json_response({"success": True, "status": request.app.state.wedcache.scaling.status()},
                         request.state.rate_headers)
