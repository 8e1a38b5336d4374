-- 0004_metrics: wedcache's additions for per-request metric rows (wedcache.metrics.MetricsBuffer)
-- and GET /api/ai-cache/statistics (wedcache.statistics). A request is one row with
-- metric_type 'hit' or 'miss' and metric_value = its response time in milliseconds; no seed
-- column changes meaning, and rows of the other metric types leave the new columns NULL.

-- Addition: the tier that answered a hit (NULL for a miss), for memoryCacheHitRate,
-- redisCacheHitRate and postgresHitRate.
ALTER TABLE ai_cache_performance_metrics
  ADD COLUMN tier TEXT CHECK (tier IN ('memory', 'redis', 'postgres'));

-- Addition: the request's primary vendor type (its first one; NULL when it named none), for
-- the statistics' vendorType filter.
ALTER TABLE ai_cache_performance_metrics ADD COLUMN vendor_type vendor_type_enum;

-- Addition: the wedding season the request was served in.
ALTER TABLE ai_cache_performance_metrics ADD COLUMN season season_enum;

-- Addition: time-range reads across every organization (0002 indexes organization_id,
-- recorded_at for one organization's reads).
CREATE INDEX ai_cache_performance_metrics_time_idx ON ai_cache_performance_metrics (recorded_at);
