"""What a running service holds: :class:`ServiceState`, opened at start-up and closed at shutdown.

One per worker process. :meth:`ServiceState.open` finds the servers (the URLs in the
settings when they answer, else the default ports, else throwaway local servers:
:func:`~wedcache.services.ensure_services`), applies pending migrations (or refuses to
start, telling to run ``wedcache migrate``), and builds the cache, the origin, the API-key
store, the rate limiter and the metrics around one database pool and one Redis client, and
joins the other replicas on the same Redis (a :class:`~wedcache.coherence.CoherenceBus`).

Metrics: :meth:`ServiceState.observe` counts each answered query in the Prometheus series
(:class:`~wedcache.metrics.ServiceMetrics`) and appends one row to a
:class:`~wedcache.metrics.MetricsBuffer`, which writes batches from a thread of its own
(its own small pool, so a slow or down database never touches the request path). Gauges
(memory tier bytes, seasonal load factor) are set by :meth:`ServiceState.refresh_gauges`:
at scrape time and every few seconds, so other workers' gauges stay current in
multiprocess mode. The semantic guard's ``ai_cache_semantic_rejections_total`` (when the policy
turns semantic matching on) is counted in the same registry. At shutdown, after uvicorn has drained in-flight requests, the buffer is
flushed first, while the database and everything else are still open.
"""
from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

import psycopg_pool
from redis.backoff import NoBackoff
from redis.retry import Retry

from ..answering import Answered, WeddingAICacheService
from ..apikeys import ApiKey, ApiKeyStore
from ..assembly import build_cache, build_origin, build_sealer
from ..audit import AuditEvent, AuditLog
from ..cache import TieredCache
from ..clock import Clock, SystemClock, today
from ..coherence import CoherenceBus
from ..config import Settings, load_settings
from ..errors import ServiceError
from ..metrics import MetricRow, MetricsBuffer, ServiceMetrics
from ..redis_client import AnyRedis, redis_client
from ..migrations import apply_migrations, pending_migrations
from ..policy import Policy, load_policy
from ..ratelimit import RateLimiter
from ..scaling import SeasonalScalingAutomator
from ..seasonal_control import SeasonalControl
from ..services import DATABASE_ENV, REDIS_ENV, ensure_services, redact

SCALING_TICK_SECONDS = 60.0
GAUGE_SECONDS = 5.0
"""How often a worker refreshes its gauges between scrapes (the source document scrapes every 5 s)."""

log = logging.getLogger(__name__)


@dataclass
class ServiceState:
    """The service's long-lived parts (see the module docstring)."""

    settings: Settings
    clock: Clock
    policy: Policy
    cache: TieredCache
    answering: WeddingAICacheService
    keys: ApiKeyStore
    pool: psycopg_pool.ConnectionPool
    redis: AnyRedis
    redis_url: str
    database_url: str
    origin: Any
    limiter: RateLimiter
    auditor: AuditLog
    scaling: SeasonalControl
    metrics: ServiceMetrics
    metrics_buffer: MetricsBuffer
    closers: list[Callable[[], None]] = field(default_factory=list)

    @classmethod
    def open(cls, settings: Settings | None = None, *, clock: Clock | None = None,
             migrate: bool = True) -> "ServiceState":
        settings = settings or load_settings()
        clock = clock or SystemClock()
        redis_url, database_url = _servers(settings)
        _migrate(database_url, migrate)
        policy = load_policy(settings.policy_file)
        sealer = build_sealer(settings)
        metrics = ServiceMetrics()  # before the cache: the semantic guard counts its rejections in it
        cache = build_cache(settings, clock=clock, policy=policy, redis_url=redis_url, database_url=database_url,
                            codec=sealer, semantic_registry=metrics.registry)
        origin = build_origin(settings, clock)
        pool = psycopg_pool.ConnectionPool(database_url, min_size=1, max_size=8, open=True, name="wedcache-service",
                                           check=psycopg_pool.ConnectionPool.check_connection,
                                           kwargs={"autocommit": True, "connect_timeout": 2})
        client = redis_client(redis_url, socket_timeout=0.05, socket_connect_timeout=0.05,
                                      retry=Retry(NoBackoff(), 0))
        automator = SeasonalScalingAutomator(policy, clock, cache.memory, cache.ttl, settings.memory_size_bytes,
                                             settings.max_entries, settings.seasonal_scaling_enabled)
        state = cls(settings, clock, policy, cache, WeddingAICacheService(cache, origin.answer),
                    ApiKeyStore(database_url, pool=pool, clock=clock), pool, client, redis_url, database_url, origin,
                    RateLimiter.from_policy(policy, clock=clock, redis_client=client),
                    AuditLog(pool, clock, settings.audit_logging_enabled),
                    SeasonalControl(automator, policy, clock, pool, client), metrics,
                    MetricsBuffer(database_url))
        automator.listeners.append(state.metrics.count_scaling_event)
        state.closers += [cache.close, pool.close, client.close, getattr(origin, "close", lambda: None),
                          _every(SCALING_TICK_SECONDS, automator.tick)]
        state.closers.append(_join_replicas(state))
        # closed in reverse: the gauge timer stops, the buffer flushes, then this worker's gauges go
        state.closers += [state.metrics.close, state.metrics_buffer.close,
                          _every(GAUGE_SECONDS, state.refresh_gauges)]
        log.info("wedcache service ready: redis %s, postgres %s", redact(redis_url), redact(database_url))
        return state

    def observe(self, key: ApiKey, answered: Answered) -> None:
        """Record one answered query: the Prometheus series and one buffered metric row (no I/O)."""
        result, context = answered.result, answered.context
        tier = result.tier if result.cached else None
        market_tier = self.cache.ttl.partitioner.tier_of(context.location)
        vendor_type = context.vendor_types[0] if context.vendor_types else None
        self.metrics.observe_request(tier=tier, market_tier=market_tier, vendor_type=vendor_type,
                                     response_ms=answered.elapsed_ms)
        self.metrics_buffer.record(MetricRow(key.organization_id, self.clock.now(), result.key, tier, result.cached,
                                             answered.elapsed_ms, market_tier, vendor_type,
                                             self.policy.season_of(today(self.clock))))

    def refresh_gauges(self) -> None:
        """Set the memory tier's bytes and budget and the seasonal load factor to their current values."""
        memory = self.cache.memory
        if memory is not None:
            sizes = memory.stats()
            self.metrics.set_memory(sizes["bytes"], sizes["max_bytes"])
        self.metrics.set_load_factor(self.scaling.status()["loadFactor"])

    def audit(self, request: Any, key: ApiKey, action: str, resource: str, details: dict[str, Any],
              risk: str = "low", resource_id: str | None = None) -> None:
        """An audit row for ``key``'s request (see :class:`~wedcache.audit.AuditLog`)."""
        details = {**details, "apiKeyId": key.id, "requestId": getattr(request.state, "request_id", None)}
        self.auditor.record(AuditEvent(key.organization_id, action, resource, resource_id,
                                       request.client.host if request.client else None,
                                       request.headers.get("user-agent"), details, risk))

    def audit_violation(self, request: Any, key: ApiKey, what: str, details: dict[str, Any], risk: str) -> None:
        self.audit(request, key, "SECURITY_VIOLATION", "API_REQUEST", {"violation": what, **details}, risk)

    def close(self) -> None:
        """Release everything, in reverse order of acquisition; one failure does not stop the rest."""
        for close in reversed(self.closers):
            try:
                close()
            except Exception:  # noqa: BLE001  (shutdown goes on)
                log.exception("closing %s failed", getattr(close, "__qualname__", close))
        self.closers.clear()


def _every(seconds: float, action: Callable[[], Any]) -> Callable[[], None]:
    """Run ``action`` now and then every ``seconds`` on a daemon thread; returns its stopper."""
    stop = threading.Event()

    def loop() -> None:
        while True:
            try:
                action()
            except Exception:  # noqa: BLE001  (a timer must survive one bad round)
                log.exception("periodic %s failed", getattr(action, "__qualname__", action))
            if stop.wait(seconds):
                return

    thread = threading.Thread(target=loop, name="wedcache-timer", daemon=True)
    thread.start()

    def stopper() -> None:
        stop.set()
        thread.join(timeout=5)
    return stopper


def _join_replicas(state: ServiceState) -> Callable[[], None]:
    """Keep this replica coherent with the others on the same Redis (:mod:`wedcache.coherence`):
    its invalidations, stored answers and scaling changes are published, theirs applied here."""
    bus = CoherenceBus(state.redis_url, state.cache.memory, scaling=state.scaling)
    state.cache.events.invalidate.add_listener(bus.publish_invalidation)
    state.cache.events.store.add_listener(bus.publish_overwrite)
    state.scaling.listeners.append(bus.publish_scaling)
    return bus.close


def _servers(settings: Settings) -> tuple[str, str]:
    """The Redis and PostgreSQL URLs to use (settings first; see :func:`ensure_services`).

    A Redis Cluster named in the settings is used even while it does not answer: the service
    then answers from its other tiers and takes the cluster up when it comes back (its client
    is lazy, :class:`~wedcache.redis_client.LazyRedisCluster`). A throwaway stand-in would be
    a Redis the other replicas do not share, so their invalidations would never reach this one.
    """
    env = dict(os.environ)
    if settings.redis_url:
        env[REDIS_ENV] = settings.redis_url
    if settings.database_url:
        env[DATABASE_ENV] = settings.database_url
    found = ensure_services(env=env)  # keeps a configured cluster even while it does not answer
    return found.redis_url, found.database_url


def _migrate(database_url: str, migrate: bool) -> None:
    pending = pending_migrations(database_url)
    if not pending:
        return
    if not migrate:
        raise ServiceError(f"the database {redact(database_url)} lacks migrations {', '.join(pending)}: "
                           "run `wedcache migrate` first")
    log.info("applying migrations %s", ", ".join(apply_migrations(database_url)) or "(done by another worker)")
