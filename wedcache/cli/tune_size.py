"""``wedcache tune size`` (being written)."""
from __future__ import annotations

from .tune import tune_app  # noqa: F401
