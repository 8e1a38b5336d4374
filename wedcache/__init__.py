"""wedcache: a real tiered cache for AI answers (memory -> Redis -> PostgreSQL -> origin).

Start with :class:`~wedcache.answering.WeddingAICacheService` (the request path) and
:class:`~wedcache.cache.TieredCache` (the tiers, promotion, single-flight, fail-open).
"""
__version__ = "0.1.0"
