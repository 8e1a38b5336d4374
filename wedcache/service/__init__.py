"""The HTTP service: ``create_app`` (FastAPI) over the tiered cache; run by ``wedcache serve``."""
from __future__ import annotations

from .app import create_app

__all__ = ["create_app"]
