"""Schema migrations: :func:`apply_migrations` and :func:`pending_migrations`.

A migration is a numbered SQL file shipped in this package (``0001_initial.sql`` …); its
version is the file name without ``.sql``. Applied versions are recorded in
``wedcache_migrations``. Each migration runs in its own transaction under a transaction
level advisory lock, so two processes migrating the same database at once apply each
migration exactly once and never see a half-applied one.
"""
from __future__ import annotations

from importlib.resources import files

import psycopg

MIGRATIONS_TABLE = "wedcache_migrations"
LOCK_ID = 0x77656463616368  # "wedcach": one advisory lock key for every wedcache migrator

_CREATE_TABLE = """CREATE TABLE IF NOT EXISTS wedcache_migrations (
  version TEXT PRIMARY KEY,
  applied_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
)"""


def available_migrations() -> list[str]:
    """Every migration shipped with wedcache, in the order they apply."""
    return sorted(f.name[:-4] for f in files(__package__).iterdir() if f.name.endswith(".sql"))


def migration_sql(version: str) -> str:
    return files(__package__).joinpath(f"{version}.sql").read_text(encoding="utf-8")


def pending_migrations(database_url: str) -> list[str]:
    """The migrations ``database_url`` has not applied yet."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        applied = _applied(conn)
    return [v for v in available_migrations() if v not in applied]


def apply_migrations(database_url: str) -> list[str]:
    """Apply every pending migration; returns the versions applied by this call."""
    applied_now = []
    with psycopg.connect(database_url, autocommit=True) as conn:
        for version in available_migrations():
            if _apply_one(conn, version):
                applied_now.append(version)
    return applied_now


def _apply_one(conn: psycopg.Connection, version: str) -> bool:
    """Apply ``version`` in one locked transaction unless it is already recorded."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_ID,))
        conn.execute(_CREATE_TABLE)
        if conn.execute("SELECT 1 FROM wedcache_migrations WHERE version = %s", (version,)).fetchone():
            return False
        conn.execute(migration_sql(version))
        conn.execute("INSERT INTO wedcache_migrations (version, applied_at) VALUES (%s, NOW())", (version,))
    return True


def _applied(conn: psycopg.Connection) -> set[str]:
    if conn.execute("SELECT to_regclass(%s)", (MIGRATIONS_TABLE,)).fetchone()[0] is None:
        return set()
    return {row[0] for row in conn.execute("SELECT version FROM wedcache_migrations")}
