"""Putting a cache together from settings: :func:`build_cache`, :func:`build_semantic`,
:func:`build_service`, :func:`build_origin`, :func:`build_sealer`.

The one place that knows which tier classes make up the production cache, so the CLI,
the HTTP service, the benchmark and the tests build it the same way.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from redis.backoff import NoBackoff
from redis.retry import Retry

from .answering import WeddingAICacheService
from .cache import EntryCodec, TieredCache
from .clock import Clock, SystemClock
from .config import Settings, load_settings
from .origin import SimulatedOrigin
from .policy import Policy, load_policy
from .redis_client import redis_client
from .singleflight import RedisLocks
from .tiers.memory import MemoryTier
from .ttl import VendorCacheOptimizer

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from .encryption import EntrySealer
    from .semantic.matcher import SemanticMatcher

log = logging.getLogger(__name__)

LOCK_SOCKET_TIMEOUT_S = 0.5
"""The single-flight locks' Redis timeout: a lock is taken only on a miss, where it may save an
origin call of a second; the tier's 50 ms read timeout would turn it off under load."""


def build_cache(settings: Settings | None = None, *, clock: Clock | None = None, policy: Policy | None = None,
                redis_url: str | None = None, database_url: str | None = None,
                memory: bool = True, codec: EntryCodec | None = None,
                semantic_registry: "CollectorRegistry | None" = None) -> TieredCache:
    """Memory (when ``memory``), Redis (when a URL is known) and PostgreSQL (likewise), and
    semantic matching when the policy's ``[semantic]`` table enables it (:func:`build_semantic`;
    its rejection counter goes to ``semantic_registry``)."""
    settings = settings or load_settings()
    clock = clock or SystemClock()
    policy = policy or load_policy(settings.policy_file)
    redis_url = redis_url or settings.redis_url
    database_url = database_url or settings.database_url
    semantic = build_semantic(policy, database_url, semantic_registry, timeout_ms=settings.postgres_timeout_ms)
    tiers, locks = [], None
    if memory:
        tiers.append(MemoryTier(settings.memory_size_bytes, settings.max_entries, settings.eviction,
                                on_evict=semantic.evicted if semantic is not None else None))
    if redis_url:
        from .tiers.redis import RedisTier
        redis_tier = RedisTier(redis_url, timeout_ms=settings.redis_timeout_ms, clock=clock)
        tiers.append(redis_tier)
        locks = RedisLocks(redis_client(redis_url, socket_timeout=LOCK_SOCKET_TIMEOUT_S,  # no retry: a retried
                                        socket_connect_timeout=LOCK_SOCKET_TIMEOUT_S,  # SET NX would find its own lock
                                        retry=Retry(NoBackoff(), 0)), settings.lock_timeout_seconds)
    if database_url:
        from .tiers.postgres import PostgresTier
        tiers.append(PostgresTier(database_url, timeout_ms=settings.postgres_timeout_ms, clock=clock))
    return TieredCache(tiers, clock=clock, policy=policy, locks=locks,
                       ttl=VendorCacheOptimizer(policy, settings.default_ttl),
                       breaker_failures=settings.breaker_failures,
                       breaker_reset_seconds=settings.breaker_reset_seconds,
                       lock_wait_seconds=settings.lock_timeout_seconds, codec=codec, semantic=semantic)


def build_semantic(policy: Policy, database_url: str | None = None,
                   registry: "CollectorRegistry | None" = None, *,
                   timeout_ms: float = 200) -> "SemanticMatcher | None":
    """The policy's semantic matcher, or ``None`` when ``[semantic] enabled`` is false.

    The model is loaded here, at start-up: without the ``semantic`` extra this raises
    :class:`~wedcache.semantic.embedder.SemanticUnavailable` naming it. Vectors are kept in
    PostgreSQL too when ``database_url`` is given and pgvector is there (searches time out after
    ``timeout_ms``, as the PostgreSQL tier's reads do); otherwise (logged) in the memory index only.
    """
    if not policy.semantic.enabled:
        return None
    from .semantic.embedder import Embedder
    from .semantic.guard import Guard
    from .semantic.matcher import SemanticMatcher
    from .semantic.pgvector import PgVectorStore
    from .semantic.settings import SemanticSettings

    settings = SemanticSettings.from_table(policy.semantic.model_dump())
    embedder = Embedder(settings.model)
    store = PgVectorStore(database_url, model=settings.model, timeout_ms=timeout_ms) if database_url else None
    if store is not None and not store.available:
        log.warning("semantic: no pgvector table (extension missing or PostgreSQL down); memory index only")
        store.close()
        store = None
    return SemanticMatcher(policy, settings, embedder=embedder, store=store, guard=Guard(registry))


def build_service(cache: TieredCache, origin: SimulatedOrigin | None = None) -> WeddingAICacheService:
    """A :class:`WeddingAICacheService` over ``cache`` with a simulated origin on its clock."""
    origin = origin or SimulatedOrigin(cache.clock)
    return WeddingAICacheService(cache, origin.answer)


def build_origin(settings: Settings, clock: Clock) -> Any:
    """The OpenAI-compatible API at ``AI_CACHE_ORIGIN_URL``, else the simulated origin (the
    service's choice; ``wedcache cache warm`` makes the same)."""
    if settings.origin_url:
        from .chat_origin import ChatCompletionsOrigin
        return ChatCompletionsOrigin(settings.origin_url, settings.origin_model, settings.origin_api_key, clock=clock,
                                     timeout_seconds=8.0)  # 3 tries and waits stay under the 30 s peer lock
    return SimulatedOrigin(clock, latency_median_ms=settings.origin_latency_median_ms,
                           latency_p95_ms=max(settings.origin_latency_p95_ms, settings.origin_latency_median_ms),
                           cost_per_call_usd=settings.origin_cost_per_call_usd, seed=None)


def build_sealer(settings: Settings) -> "EntrySealer":
    """The entry codec of ``settings``: encryption per ``AI_CACHE_ENCRYPTION_ENABLED``, the key
    from ``AI_CACHE_ENCRYPTION_KEY`` or the state folder (see :func:`~wedcache.encryption.load_key`)."""
    from .encryption import EntrySealer, load_key
    from .services import state_dir_path

    return EntrySealer(load_key(settings.encryption_key, state_dir_path()), encrypt=settings.encryption_enabled)
