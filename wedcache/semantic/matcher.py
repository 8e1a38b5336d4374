"""Semantic lookup for one question: :class:`SemanticMatcher`.

Exact keys are the cache's job and come first; on an exact miss the cache asks
:meth:`SemanticMatcher.match`: the question is embedded, the memory index and then
PostgreSQL (pgvector) are searched *within the organization and cache type*, and the
candidates at or above the threshold are offered, most similar first, to the guard; the
first it accepts is the match. :meth:`SemanticMatcher.remember` is called once per stored
entry: the vector and the entities are computed then and kept with it (memory index and
``ai_cache_semantic``), never recomputed on a lookup. :class:`~wedcache.cache.TieredCache`
makes these calls when it is given a matcher (``semantic=``; :func:`~wedcache.assembly.build_semantic`
builds one from the policy), and forgets vectors as entries are deleted, invalidated or evicted.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import psycopg
import psycopg_pool

from ..context import WeddingContext, parse_context
from ..entry import CacheEntry
from ..keys import organization_uuid
from ..policy import Policy
from .embedder import Embedder, default_embedder
from .entities import Entities, EntityExtractor
from .guard import Guard
from .index import VectorIndex
from .pgvector import PgVectorStore
from .settings import SemanticSettings

log = logging.getLogger(__name__)
STORE_ERRORS = (psycopg.Error, psycopg_pool.PoolTimeout)
"""A failing PostgreSQL is skipped (fail-open): the memory index still answers, the origin after it."""

CANDIDATES = 4
"""Near matches offered to the guard per tier: the nearest may be "Dallas" when "Austin" is next."""


@dataclass(frozen=True)
class SemanticMatch:
    key: str
    similarity: float
    tier: str
    """``memory`` or ``postgres``: where the vector was found."""


@dataclass(frozen=True)
class Prepared:
    """A question made ready to store or look up: its unit vector and its entities."""

    vector: np.ndarray
    entities: Entities


class SemanticMatcher:
    """Near-match lookups for organizations' questions, behind the wedding-aware guard."""

    def __init__(self, policy: Policy, settings: SemanticSettings | None = None, *,
                 embedder: Embedder | None = None, index: VectorIndex | None = None,
                 store: PgVectorStore | None = None, guard: Guard | None = None, candidates: int = CANDIDATES):
        self.settings = settings or SemanticSettings(enabled=True)
        self.embedder = embedder or default_embedder()
        self.extractor = EntityExtractor(policy)
        self.index = index if index is not None else VectorIndex(self.embedder.dim)
        self.store = store if store is not None and store.available else None
        self.guard = guard or Guard()
        self.k = candidates

    def prepare(self, query: str, context: WeddingContext | dict | None = None) -> Prepared:
        context = parse_context(context)
        return Prepared(self.embedder.embed_one(query), self.extractor.extract(query, context))

    def remember(self, org_id: str, key: str, query: str, context: WeddingContext | dict | None = None,
                 cache_type: str = "general", prepared: Prepared | None = None) -> Prepared:
        """Index a stored entry (memory, and PostgreSQL when there); returns what was computed."""
        org = organization_uuid(org_id)
        prepared = prepared or self.prepare(query, context)
        self.index.add(org, key, prepared.vector, prepared.entities, cache_type)
        self._on_store("add", org, key, prepared.vector, prepared.entities, cache_type)
        return prepared

    def forget(self, key: str) -> None:
        """Drop ``key``'s vector everywhere (the entry was deleted, invalidated or evicted)."""
        self.index.remove(key)
        self._on_store("remove", key)

    def forget_many(self, keys: list[str]) -> None:
        """:meth:`forget` for each of ``keys`` (one PostgreSQL round trip)."""
        for key in keys:
            self.index.remove(key)
        if keys:
            self._on_store("remove_many", list(keys))

    def evicted(self, entry: CacheEntry) -> None:
        """The memory tier evicted ``entry`` (its ``on_evict``): drop it from the memory index
        only, so that index stays as large as the memory tier; PostgreSQL keeps the vector,
        as the lower tiers keep the entry."""
        self.index.remove(entry.key)

    def close(self) -> None:
        if self.store is not None:
            self.store.close()

    def forget_organization(self, org_id: str) -> None:
        org = organization_uuid(org_id)
        self.index.remove_organization(org)
        self._on_store("remove_organization", org)

    def match(self, org_id: str, query: str, context: WeddingContext | dict | None = None,
              cache_type: str = "general", prepared: Prepared | None = None) -> SemanticMatch | None:
        """The stored entry that answers ``query`` too, or ``None`` (then the origin answers)."""
        if not self.settings.applies_to(cache_type):
            return None
        org = organization_uuid(org_id)
        prepared = prepared or self.prepare(query, context)
        threshold = self.settings.threshold
        tried: set[str] = set()
        memory = [(key, sim, self.index.entities(key))
                  for key, sim in self.index.candidates(org, prepared.vector, threshold, self.k, cache_type)]
        found = self._accepted(prepared.entities, memory, tried)
        if found:
            return SemanticMatch(found[0], found[1], "memory")
        stored = self._on_store("candidates", org, prepared.vector, threshold, self.k, cache_type)
        found = self._accepted(prepared.entities, stored or [], tried)
        return SemanticMatch(found[0], found[1], "postgres") if found else None

    def _on_store(self, method: str, *args):
        """``store.<method>(*args)``, or ``None`` without a store or when PostgreSQL fails."""
        if self.store is None:
            return None
        try:
            return getattr(self.store, method)(*args)
        except STORE_ERRORS as exc:
            log.warning("semantic: pgvector %s skipped: %s", method, exc)
            return None

    def _accepted(self, entities: Entities, candidates, tried: set[str]) -> tuple[str, float] | None:
        for key, similarity, stored in candidates:
            if key in tried or stored is None:
                continue
            tried.add(key)
            if self.guard.verdict(entities, stored) is None:
                return key, similarity
        return None
