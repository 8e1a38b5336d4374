-- 0006_semantic: vectors for semantic matching (wedcache.semantic), when pgvector is there.
--
-- Optional by construction: on a server without the `vector` extension (or where this role
-- may not create it) the block only raises a NOTICE, so the base install still migrates.
-- The statements are idempotent: wedcache.semantic.pgvector runs this same file again when
-- the extension appears later (the migration is then already recorded as applied).
-- One row per stored entry: its key, organization, cache type, the model's vector and the
-- guard's entities; the vector is computed once, when the entry is stored. Inner product on
-- unit vectors (= cosine similarity); HNSW for the nearest neighbours, and
-- (organization_id, cache_type) so every search is filtered by organization first.
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'vector') THEN
    RAISE NOTICE 'wedcache 0006_semantic: pgvector is not installed; semantic matching stays in memory';
    RETURN;
  END IF;
  BEGIN
    CREATE EXTENSION IF NOT EXISTS vector;
  EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'wedcache 0006_semantic: may not CREATE EXTENSION vector; semantic matching stays in memory';
    RETURN;
  END;
  EXECUTE $sql$
    CREATE TABLE IF NOT EXISTS ai_cache_semantic (
      cache_key TEXT PRIMARY KEY,
      organization_id UUID NOT NULL,
      cache_type TEXT NOT NULL,
      model TEXT NOT NULL,
      embedding vector(256) NOT NULL,
      entities JSONB NOT NULL DEFAULT '{}'::jsonb,
      created_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
    )$sql$;
  EXECUTE 'CREATE INDEX IF NOT EXISTS idx_ai_cache_semantic_org ON ai_cache_semantic (organization_id, cache_type)';
  EXECUTE 'CREATE INDEX IF NOT EXISTS idx_ai_cache_semantic_hnsw ON ai_cache_semantic '
          'USING hnsw (embedding vector_ip_ops) WITH (m = 16, ef_construction = 64)';
END
$$;
