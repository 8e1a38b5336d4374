-- 0002_cache_lookup: wedcache's additions to the source document's schema. They add no
-- seed column's meaning; they make the L3 tier's lookups, invalidation and cleanup fast.

-- Addition: the normalised query, so invalidation by glob pattern runs in SQL.
ALTER TABLE ai_cache_entries ADD COLUMN query_text TEXT NOT NULL DEFAULT '';

-- Addition: every vendor type of the context (the seed's vendor_type holds the primary one).
ALTER TABLE ai_cache_entries ADD COLUMN vendor_types vendor_type_enum[] NOT NULL DEFAULT '{}';

-- Addition: one row per key (the upsert target and the read path).
CREATE UNIQUE INDEX ai_cache_entries_cache_key_key ON ai_cache_entries (cache_key);

-- Additions: invalidation by organization, wedding, cache type, market tier, vendor types.
CREATE INDEX ai_cache_entries_org_idx ON ai_cache_entries (organization_id);
CREATE INDEX ai_cache_entries_wedding_idx ON ai_cache_entries (wedding_id);
CREATE INDEX ai_cache_entries_org_type_idx ON ai_cache_entries (organization_id, cache_type);
CREATE INDEX ai_cache_entries_org_tier_idx ON ai_cache_entries (organization_id, market_tier);
CREATE INDEX ai_cache_entries_vendor_types_idx ON ai_cache_entries USING GIN (vendor_types);

-- Addition: garbage collection of expired rows.
CREATE INDEX ai_cache_entries_expires_idx ON ai_cache_entries (expires_at);

-- Additions: time-range reads of metrics and audit logs per organization.
CREATE INDEX ai_cache_performance_metrics_org_time_idx
  ON ai_cache_performance_metrics (organization_id, recorded_at);
CREATE INDEX ai_cache_audit_logs_org_time_idx ON ai_cache_audit_logs (organization_id, created_at);
