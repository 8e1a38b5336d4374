-- 0001_initial: the source document's schema (ws-241 "Database Schema"), verbatim, plus
-- the tables it references (organizations, weddings, auth.users) and its enums.

-- Referenced tables -----------------------------------------------------------------------
CREATE TABLE organizations (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  name TEXT,
  created_at TIMESTAMPTZ DEFAULT NOW()
);

CREATE TABLE weddings (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  organization_id UUID REFERENCES organizations(id) NOT NULL,
  wedding_date DATE,
  location TEXT,
  created_at TIMESTAMPTZ DEFAULT NOW()
);

CREATE SCHEMA IF NOT EXISTS auth;

CREATE TABLE auth.users (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  email TEXT,
  created_at TIMESTAMPTZ DEFAULT NOW()
);

-- Enums (values mirror wedcache.keys.CACHE_TYPES and wedcache.policy) ----------------------
CREATE TYPE cache_type_enum AS ENUM (
  'chat_response', 'vendor_recommendation', 'venue_search', 'budget_estimate',
  'timeline_planning', 'guest_management', 'content_generation', 'general'
);

CREATE TYPE market_tier_enum AS ENUM ('tier_1', 'tier_2', 'tier_3');

CREATE TYPE vendor_type_enum AS ENUM (
  'photographer', 'videographer', 'venue', 'caterer', 'florist', 'band_dj',
  'wedding_planner', 'baker', 'transportation', 'officiant', 'hair_makeup', 'other'
);

CREATE TYPE season_enum AS ENUM ('spring', 'summer', 'fall', 'winter');

CREATE TYPE performance_metric_type AS ENUM (
  'hit', 'miss', 'response_time', 'hit_rate', 'memory_usage', 'eviction', 'error'
);

CREATE TYPE audit_action_type AS ENUM (
  'CACHE_ACCESS', 'CACHE_WRITE', 'CACHE_INVALIDATE', 'CACHE_DELETE', 'SECURITY_VIOLATION',
  'GDPR_REPORT', 'GDPR_DELETION', 'ENCRYPTION', 'INTEGRITY_CHECK', 'SCALING_CHANGE',
  'CONFIG_CHANGE', 'KEY_CREATED', 'KEY_REVOKED'
);

CREATE TYPE risk_level_enum AS ENUM ('low', 'medium', 'high', 'critical');

-- Core tables (source document) -------------------------------------------------------------
CREATE TABLE ai_cache_entries (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  cache_key TEXT NOT NULL,
  cache_value JSONB NOT NULL,
  ttl_seconds INTEGER NOT NULL,
  created_at TIMESTAMPTZ DEFAULT NOW(),
  expires_at TIMESTAMPTZ NOT NULL,
  wedding_id UUID REFERENCES weddings(id),
  organization_id UUID REFERENCES organizations(id) NOT NULL,
  cache_type cache_type_enum NOT NULL,
  wedding_context JSONB,
  access_count INTEGER DEFAULT 0,
  last_accessed_at TIMESTAMPTZ DEFAULT NOW(),
  market_tier market_tier_enum DEFAULT 'tier_3',
  vendor_type vendor_type_enum,
  seasonal_context JSONB
);

CREATE TABLE ai_cache_performance_metrics (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  organization_id UUID REFERENCES organizations(id) NOT NULL,
  metric_type performance_metric_type NOT NULL,
  metric_value NUMERIC NOT NULL,
  recorded_at TIMESTAMPTZ DEFAULT NOW(),
  cache_key TEXT,
  response_time_ms INTEGER,
  hit_rate NUMERIC(5,2),
  memory_usage_mb INTEGER,
  market_tier market_tier_enum,
  seasonal_context JSONB
);

CREATE TABLE ai_cache_seasonal_configs (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  season season_enum NOT NULL,
  traffic_multiplier NUMERIC(3,1) NOT NULL,
  cache_size_multiplier NUMERIC(3,1) NOT NULL,
  ttl_adjustment_factor NUMERIC(3,2) NOT NULL,
  cost_factor NUMERIC(3,2) NOT NULL,
  start_date DATE NOT NULL,
  end_date DATE NOT NULL,
  is_active BOOLEAN DEFAULT true,
  created_at TIMESTAMPTZ DEFAULT NOW(),
  updated_at TIMESTAMPTZ DEFAULT NOW()
);

-- Security & compliance tables (source document) --------------------------------------------
CREATE TABLE ai_cache_audit_logs (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  organization_id UUID REFERENCES organizations(id) NOT NULL,
  action_type audit_action_type NOT NULL,
  resource_type TEXT NOT NULL,
  resource_id TEXT,
  user_id UUID REFERENCES auth.users(id),
  ip_address INET,
  user_agent TEXT,
  details JSONB,
  created_at TIMESTAMPTZ DEFAULT NOW(),
  risk_level risk_level_enum DEFAULT 'low'
);
