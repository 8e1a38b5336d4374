"""The HTTP endpoints, one module per resource; :data:`ROUTERS` lists them for the app."""
from __future__ import annotations

from . import health, invalidate, query, scaling
from . import metrics, statistics
from . import security

ROUTERS = [query.router, invalidate.router, scaling.router, health.router]
ROUTERS += [statistics.router, metrics.router]
ROUTERS += [security.router]
