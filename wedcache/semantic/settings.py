"""The policy's ``[semantic]`` table as data: :class:`SemanticSettings`.

Off by default. ``cache_types`` names the cache types that may answer from a near match
(exact keys are always tried first); ``threshold`` is the lowest cosine similarity that
counts, chosen by ``wedcache tune semantic``; ``model`` names a model of
:data:`~.embedder.MODELS`. A bad value raises :class:`~wedcache.errors.InvalidInput` naming
``semantic.<field>``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ..errors import InvalidInput
from ..keys import CACHE_TYPES
from .embedder import DEFAULT_MODEL, MODELS

DEFAULT_CACHE_TYPES: tuple[str, ...] = ("chat_response", "vendor_recommendation", "venue_search", "general")
"""Question-answering types; generated content and budgets are off unless a policy names them."""


@dataclass(frozen=True)
class SemanticSettings:
    enabled: bool = False
    threshold: float = 0.9
    model: str = DEFAULT_MODEL
    cache_types: tuple[str, ...] = DEFAULT_CACHE_TYPES

    def __post_init__(self):
        if not isinstance(self.enabled, bool):
            raise InvalidInput("semantic.enabled", "must be true or false")
        if not isinstance(self.threshold, (int, float)) or not 0 < self.threshold <= 1:
            raise InvalidInput("semantic.threshold", "must be a number in (0, 1]")
        if self.model not in MODELS:
            raise InvalidInput("semantic.model", f"must be one of {', '.join(MODELS)}")
        unknown = [t for t in self.cache_types if t not in CACHE_TYPES]
        if unknown:
            raise InvalidInput("semantic.cache_types", f"unknown {', '.join(map(str, unknown))}; "
                               f"must be among {', '.join(CACHE_TYPES)}")

    def applies_to(self, cache_type: str) -> bool:
        return self.enabled and cache_type in self.cache_types

    @classmethod
    def from_table(cls, table: dict[str, Any] | None) -> "SemanticSettings":
        """From a policy's ``[semantic]`` table (missing keys keep their defaults)."""
        table = dict(table or {})
        unknown = sorted(set(table) - {"enabled", "threshold", "model", "cache_types"})
        if unknown:
            raise InvalidInput(f"semantic.{unknown[0]}", "is not a setting (enabled, threshold, model, cache_types)")
        if "cache_types" in table:
            if not isinstance(table["cache_types"], (list, tuple)):
                raise InvalidInput("semantic.cache_types", "must be a list of cache types")
            table["cache_types"] = tuple(table["cache_types"])
        return cls(**table)

    def to_table(self) -> dict[str, Any]:
        """The ``[semantic]`` table (TOML-ready)."""
        table = asdict(self)
        table["cache_types"] = list(self.cache_types)
        return table
