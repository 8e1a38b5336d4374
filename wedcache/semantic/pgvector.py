"""The PostgreSQL side of semantic matching: :class:`PgVectorStore` over ``ai_cache_semantic``.

The table comes from ``0006_semantic.sql``, which is optional by construction: without the
``vector`` extension it does nothing, and :meth:`PgVectorStore.ensure` runs it again when
the extension shows up later. :attr:`PgVectorStore.available` says whether the table is there.

A search always names the organization and cache type in its ``WHERE`` clause, so a row of
another tenant can never be returned, whatever plan PostgreSQL picks. With few rows per
organization the planner reads the ``(organization_id, cache_type)`` index and sorts those
rows exactly; with many it walks the HNSW index and filters. pgvector 0.6 filters *after*
the HNSW walk, so ``hnsw.ef_search`` is raised (:data:`EF_SEARCH`) to keep enough candidates
for a small tenant in a large table (fewer hits at worst, never a foreign one).
Vectors travel as pgvector's text form; similarity is the inner product of unit vectors.
"""
from __future__ import annotations

import logging

import numpy as np
import orjson
import psycopg
import psycopg_pool

from ..migrations import migration_sql
from .embedder import DEFAULT_MODEL
from .entities import Entities

log = logging.getLogger(__name__)

MIGRATION = "0006_semantic"
TABLE = "ai_cache_semantic"
HNSW_INDEX = "idx_ai_cache_semantic_hnsw"
EF_SEARCH = 200

_SEARCH = f"""SELECT cache_key, entities, -(embedding <#> %(q)s::vector) AS similarity FROM {TABLE}
WHERE organization_id = %(org)s AND cache_type = %(type)s AND -(embedding <#> %(q)s::vector) >= %(min)s
ORDER BY embedding <#> %(q)s::vector LIMIT %(k)s"""
_UPSERT = f"""INSERT INTO {TABLE} (cache_key, organization_id, cache_type, model, embedding, entities)
VALUES (%s, %s, %s, %s, %s::vector, %s::jsonb)
ON CONFLICT (cache_key) DO UPDATE SET organization_id = EXCLUDED.organization_id,
  cache_type = EXCLUDED.cache_type, model = EXCLUDED.model, embedding = EXCLUDED.embedding,
  entities = EXCLUDED.entities, created_at = NOW()"""


def vector_literal(vector: np.ndarray) -> str:
    """pgvector's text form, ``[0.1,0.2,…]`` (float32 precision)."""
    return "[" + ",".join(f"{x:.7g}" for x in np.asarray(vector, dtype=np.float32).ravel()) + "]"


def table_exists(conn: psycopg.Connection) -> bool:
    return conn.execute("SELECT to_regclass(%s)", (TABLE,)).fetchone()[0] is not None


def extension_available(conn: psycopg.Connection) -> bool:
    return conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'").fetchone() is not None


class PgVectorStore:
    """Vectors of stored entries in PostgreSQL; search by organization, then similarity."""

    def __init__(self, database_url: str, *, model: str = DEFAULT_MODEL, pool_max: int = 4,
                 timeout_ms: int = 200):
        self.model = model
        kwargs = {"autocommit": True, "connect_timeout": 2, "application_name": "wedcache-semantic",
                  "options": f"-c statement_timeout={int(timeout_ms)} -c hnsw.ef_search={EF_SEARCH}"}
        self._pool = psycopg_pool.ConnectionPool(database_url, kwargs=kwargs, min_size=1, max_size=pool_max,
                                                 open=True, timeout=max(0.5, 2 * timeout_ms / 1000),
                                                 name="wedcache-semantic")
        self.available = self.ensure()

    def ensure(self) -> bool:
        """Create the table when pgvector is there and the table is not (idempotent);
        ``True`` when the table exists afterwards, ``False`` also when PostgreSQL does not answer."""
        try:
            return self._ensure()
        except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
            log.warning("semantic: pgvector unavailable: %s", exc)
            return False

    def _ensure(self) -> bool:
        with self._pool.connection() as conn:
            if not table_exists(conn) and extension_available(conn):
                conn.execute("SET statement_timeout = 0")
                conn.execute(migration_sql(MIGRATION))
                conn.execute("RESET statement_timeout")
            return table_exists(conn)

    def add(self, org: str, key: str, vector: np.ndarray, entities: Entities | None = None,
            cache_type: str = "general") -> None:
        self.add_many(org, [key], np.asarray(vector)[None, :], [entities or Entities()], cache_type)

    def add_many(self, org: str, keys: list[str], vectors: np.ndarray, entities: list[Entities] | None = None,
                 cache_type: str = "general") -> None:
        """Upsert one row per key (one round trip per batch)."""
        rows = [(key, org, cache_type, self.model, vector_literal(vectors[i]),
                 orjson.dumps((entities[i] if entities else Entities()).to_json()).decode())
                for i, key in enumerate(keys)]
        with self._pool.connection() as conn, conn.cursor() as cur:
            cur.executemany(_UPSERT, rows)

    def bulk_load(self, org: str, keys: list[str], vectors: np.ndarray, entities: list[Entities] | None = None,
                  cache_type: str = "general") -> None:
        """Backfill many new rows at once: ``COPY``, with the HNSW index dropped and rebuilt
        (one build is far cheaper than an index insertion per row). Keys must be new."""
        with self._pool.connection() as conn:
            conn.execute("SET statement_timeout = 0")
            conn.execute("SET maintenance_work_mem = '256MB'")
            conn.execute(f"DROP INDEX IF EXISTS {HNSW_INDEX}")
            columns = "cache_key, organization_id, cache_type, model, embedding, entities"
            with conn.cursor().copy(f"COPY {TABLE} ({columns}) FROM STDIN") as copy:
                for i, key in enumerate(keys):
                    found = entities[i] if entities else Entities()
                    copy.write_row((key, org, cache_type, self.model, vector_literal(vectors[i]),
                                    orjson.dumps(found.to_json()).decode()))
            conn.execute(migration_sql(MIGRATION))  # recreates the index (idempotent)
            conn.execute("RESET statement_timeout")
            conn.execute("RESET maintenance_work_mem")

    def remove(self, key: str) -> bool:
        with self._pool.connection() as conn:
            return conn.execute(f"DELETE FROM {TABLE} WHERE cache_key = %s", (key,)).rowcount > 0

    def remove_many(self, keys: list[str]) -> int:
        with self._pool.connection() as conn:
            return conn.execute(f"DELETE FROM {TABLE} WHERE cache_key = ANY(%s)", (list(keys),)).rowcount

    def remove_organization(self, org: str) -> int:
        with self._pool.connection() as conn:
            return conn.execute(f"DELETE FROM {TABLE} WHERE organization_id = %s", (org,)).rowcount

    def candidates(self, org: str, vector: np.ndarray, threshold: float, k: int = 4,
                   cache_type: str = "general") -> list[tuple[str, float, Entities]]:
        """Up to ``k`` of ``org``'s keys with similarity ≥ ``threshold``, most similar first."""
        params = {"q": vector_literal(vector), "org": org, "type": cache_type, "min": threshold, "k": k}
        with self._pool.connection() as conn:
            rows = conn.execute(_SEARCH, params).fetchall()
        return [(key, float(similarity), Entities.from_json(entities)) for key, entities, similarity in rows]

    def lookup(self, org: str, vector: np.ndarray, threshold: float,
               cache_type: str = "general") -> tuple[str, float] | None:
        found = self.candidates(org, vector, threshold, 1, cache_type)
        return (found[0][0], found[0][1]) if found else None

    def explain(self, org: str, vector: np.ndarray, cache_type: str = "general") -> str:
        """The plan of a search (which index PostgreSQL uses), for reports."""
        params = {"q": vector_literal(vector), "org": org, "type": cache_type, "min": -1.0, "k": 4}
        with self._pool.connection() as conn:
            return "\n".join(r[0] for r in conn.execute("EXPLAIN " + _SEARCH, params).fetchall())

    def close(self) -> None:
        self._pool.close()
