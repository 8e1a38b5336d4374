"""``wedcache plan capacity`` (being written)."""
from __future__ import annotations

from .tune import plan_app  # noqa: F401
