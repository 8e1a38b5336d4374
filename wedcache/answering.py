"""The request path: :class:`WeddingAICacheService` and :class:`QueryOptions`.

``WeddingAICacheService.query`` is what the HTTP endpoint ``POST /api/ai-cache/query``
calls: validate the query, context and options, ask the :class:`~wedcache.cache.TieredCache`
(memory -> Redis -> PostgreSQL), let the origin answer a miss, and shape the source
document's response (``success``, ``data``, ``cached``, ``cacheAge``, ``responseTime`` and
optional ``analytics``). A semantic hit (an answer stored for a question that means the same)
is ``X-Cache: HIT-semantic-<tier>`` and adds ``analytics.semantic``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from .cache import CacheResult, TieredCache
from .context import WeddingContext, check_query, parse_context
from .errors import ContextError

Origin = Callable[[str, WeddingContext], Any]


class QueryOptions(BaseModel):
    """The request's ``options``."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)

    force_refresh: bool = False
    max_age: float | None = Field(None, gt=0, le=365 * 86400)
    include_analytics: bool = False

    @classmethod
    def parse(cls, data: "QueryOptions | dict | None") -> "QueryOptions":
        if isinstance(data, QueryOptions):
            return data
        try:
            return cls.model_validate(data or {})
        except ValidationError as exc:
            err = exc.errors()[0]
            raise ContextError(".".join(["options", *map(str, err["loc"])]), err["msg"]) from None


def infer_cache_type(context: WeddingContext) -> str:
    """The cache type a query falls under when the caller names none."""
    if context.vendor_types == ("venue",):
        return "venue_search"
    if context.vendor_types:
        return "vendor_recommendation"
    if context.budget is not None:
        return "budget_estimate"
    return "general"


@dataclass(frozen=True, slots=True)
class Answered:
    """One answered query: the response body and how it was answered."""

    body: dict[str, Any]
    result: CacheResult
    elapsed_ms: float
    context: WeddingContext

    @property
    def x_cache(self) -> str:
        """``HIT-memory``, ``HIT-redis``, ``HIT-postgres``, ``HIT-semantic-<tier>`` (the tier
        that served the matched entry) or ``MISS`` (the ``X-Cache`` header)."""
        if not self.result.cached:
            return "MISS"
        return f"HIT-semantic-{self.result.tier}" if self.result.semantic else f"HIT-{self.result.tier}"


class WeddingAICacheService:
    """Orchestrates a query: cache first, origin on a miss, the seed's response shape.

    :param cache: the tiered cache.
    :param origin: ``origin(query, context) -> answer``, e.g. ``SimulatedOrigin().answer``.
    """

    def __init__(self, cache: TieredCache, origin: Origin):
        self.cache = cache
        self.origin = origin
        self.total_ms = 0.0

    def query(self, org_id: str, query: str, context: WeddingContext | dict | None = None,
              options: QueryOptions | dict | None = None, *, cache_type: str | None = None) -> dict[str, Any]:
        """Answer ``query``: the seed's response body; raises :class:`ContextError` naming a bad field."""
        return self.answer(org_id, query, context, options, cache_type=cache_type).body

    def answer(self, org_id: str, query: str, context: WeddingContext | dict | None = None,
               options: QueryOptions | dict | None = None, *, cache_type: str | None = None) -> "Answered":
        """:meth:`query` with what the HTTP layer also reports (tier, elapsed time, context)."""
        started = self.cache.clock.now()
        ctx, opts = parse_context(context), QueryOptions.parse(options)
        check_query(query)
        result = self.cache.get_or_compute(
            org_id, query, ctx, lambda: self.origin(query, ctx), cache_type=cache_type or infer_cache_type(ctx),
            force_refresh=opts.force_refresh, max_age=opts.max_age)
        return self._answered(result, started, ctx, opts)

    def answer_from_memory(self, org_id: str, query: str, context: WeddingContext | dict | None = None,
                           options: QueryOptions | dict | None = None, *,
                           cache_type: str | None = None) -> "Answered | None":
        """:meth:`answer` when the memory tier holds a fresh answer (no I/O: the HTTP service
        calls it on its event loop); ``None`` when :meth:`answer` must run (a miss, a lower
        tier, a stale entry, ``forceRefresh``)."""
        started = self.cache.clock.now()
        ctx, opts = parse_context(context), QueryOptions.parse(options)
        if opts.force_refresh:
            return None
        result = self.cache.get_in_memory(org_id, query, ctx, cache_type=cache_type or infer_cache_type(ctx),
                                          max_age=opts.max_age)
        return None if result is None else self._answered(result, started, ctx, opts)

    def _answered(self, result: CacheResult, started: float, ctx: WeddingContext, opts: QueryOptions) -> "Answered":
        elapsed_ms = (self.cache.clock.now() - started) * 1000
        self.total_ms += elapsed_ms
        return Answered(self.response(result, elapsed_ms, opts.include_analytics), result, elapsed_ms, ctx)

    def response(self, result: CacheResult, elapsed_ms: float, analytics: bool) -> dict[str, Any]:
        body: dict[str, Any] = {"success": True, "data": result.value, "cached": result.cached,
                                "responseTime": round(elapsed_ms, 3)}
        if result.cached:
            body["cacheAge"] = round(result.age_seconds, 3)
        if analytics:
            body["analytics"] = self.analytics()
            if result.semantic:
                body["analytics"]["semantic"] = semantic_analytics(result)
        return body

    def analytics(self) -> dict[str, float]:
        """``hitRate`` so far and ``performanceScore`` (0-100).

        The score weighs hit rate against the policy's target and mean response time
        against the end-to-end SLA bound equally: ``50 * min(1, hitRate / target) +
        50 * min(1, slaMs / meanMs)``.
        """
        stats, sla = self.cache, self.cache.policy.sla
        hit_rate = stats.hits / stats.requests if stats.requests else 0.0
        mean_ms = self.total_ms / stats.requests if stats.requests else 0.0
        bound = sla.response_time["end_to_end"].ms
        score = 50 * min(1.0, hit_rate / sla.hit_rate) + 50 * min(1.0, bound / max(mean_ms, 1e-9))
        return {"hitRate": round(hit_rate, 4), "performanceScore": round(score, 1)}


def semantic_analytics(result: CacheResult) -> dict[str, Any]:
    """``analytics.semantic`` of a semantic hit: how similar the matched question was, its key,
    and where its vector was found (``memory`` or ``postgres``; ``X-Cache`` names the tier
    that served the entry)."""
    return {"similarity": round(result.similarity, 4), "matchedKey": result.matched_key,
            "indexTier": result.index_tier}
