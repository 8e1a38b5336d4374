"""The FastAPI application: :func:`create_app`.

``create_app()`` is the factory ``wedcache serve`` hands to uvicorn (one call per worker).
Its lifespan opens a :class:`~wedcache.service.state.ServiceState` (servers, migrations,
cache, keys, limits, metrics) before the first request and closes it after the last one,
so a graceful shutdown drains in-flight requests and then flushes buffered metrics.
"""
from __future__ import annotations

from contextlib import asynccontextmanager
from typing import AsyncIterator, Callable

from fastapi import FastAPI

from .. import __version__
from ..config import Settings
from .errors import install_error_handlers
from .requestid import RequestIdMiddleware
from .routes import ROUTERS
from .state import ServiceState

DESCRIPTION = ("The tiered cache for AI answers of wedding-planning products (memory -> Redis -> PostgreSQL -> "
               "AI origin). Authenticate with `Authorization: Bearer <key>` or `X-API-Key`. Every error uses the "
               "envelope `{error: {code, message, details, timestamp, requestId}}` with codes CACHE_001-CACHE_008.")


def create_app(settings: Settings | None = None, *,
               open_state: Callable[[], ServiceState] | None = None) -> FastAPI:
    """The app; ``open_state`` overrides how its state is built (tests pass a clock, URLs …)."""
    opener = open_state or (lambda: ServiceState.open(settings))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.wedcache = opener()
        try:
            yield
        finally:
            app.state.wedcache.close()

    app = FastAPI(title="wedcache", version=__version__, description=DESCRIPTION, lifespan=lifespan)
    install_error_handlers(app)
    app.add_middleware(RequestIdMiddleware)
    for router in ROUTERS:
        app.include_router(router)
    return app
