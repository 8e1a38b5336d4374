"""Placeholder, replaced by its owner."""
from . import app  # noqa: F401
