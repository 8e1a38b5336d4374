-- 0003_api_keys: wedcache's addition for the HTTP service's authentication (the source
-- document names "API key authentication for programmatic access" and per-plan rate limits,
-- but gives no table). A key is stored only as the SHA-256 of its secret; the secret is
-- shown once, when the key is created.

CREATE TABLE ai_cache_api_keys (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  organization_id UUID REFERENCES organizations(id) NOT NULL,
  key_hash BYTEA NOT NULL UNIQUE,
  key_prefix TEXT NOT NULL,
  plan TEXT NOT NULL CHECK (plan IN ('authenticated', 'premium', 'enterprise')),
  role TEXT NOT NULL DEFAULT 'member' CHECK (role IN ('member', 'admin')),
  label TEXT,
  created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
  revoked_at TIMESTAMPTZ
);

CREATE INDEX ai_cache_api_keys_org_idx ON ai_cache_api_keys (organization_id);
