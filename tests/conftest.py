"""Shared fixtures: real servers, a fresh database per session, a manual clock, the policy.

Integration tests talk to real Redis and PostgreSQL. :func:`services` finds or starts them
(:func:`wedcache.services.ensure_services`) and fails, never skips, when it cannot. Tests
isolate by organization (:func:`org_id`), so nobody flushes the shared Redis; PostgreSQL
tests use a database created for this session (:func:`database_url`) and dropped after it.
:func:`local_redis` and :func:`local_postgres` start dedicated servers for tests that stop
and restart them.
"""
from __future__ import annotations

import os
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import psycopg
import pytest
from psycopg import sql

from wedcache import services as svc
from wedcache.clock import ManualClock
from wedcache.policy import load_policy

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def state_dir() -> Path:
    """The throwaway servers' folder: ``$WEDCACHE_STATE_DIR``, else ``.wedcache`` in the repo."""
    return svc.state_dir_path(os.environ.get(svc.STATE_DIR_ENV) or REPO_ROOT / ".wedcache")


@pytest.fixture(scope="session")
def services(state_dir) -> svc.Services:
    """Answering Redis and PostgreSQL servers (env URLs, default ports or throwaway ones)."""
    try:
        return svc.ensure_services(state_dir)
    except svc.ServiceError as error:
        pytest.fail(f"no Redis/PostgreSQL server for the tests: {error}", pytrace=False)


@pytest.fixture(scope="session")
def redis_url(services) -> str:
    return services.redis_url


@pytest.fixture(scope="session")
def redis_cluster_url(state_dir) -> str:
    """A Redis Cluster: ``$AI_CACHE_REDIS_URL``/``$AI_CACHE_REDIS_CLUSTER_NODES`` when they name an
    answering cluster, else the state folder's throwaway 3-master loopback cluster (started or
    reused; ``wedcache services down`` stops it)."""
    from wedcache.redis_client import is_cluster_url, redis_url_from_env

    url = redis_url_from_env(os.environ)
    if url and is_cluster_url(url) and svc.redis_answers(url):
        return url
    try:
        return svc.ensure_redis_cluster(state_dir, 3)
    except svc.ServiceError as error:
        pytest.fail(f"no Redis Cluster for the tests: {error}", pytrace=False)


@pytest.fixture(scope="session", params=["single", "cluster"])
def any_redis_url(request) -> str:
    """Each Redis kind in turn: the single server (:func:`redis_url`), then the cluster."""
    return request.getfixturevalue("redis_url" if request.param == "single" else "redis_cluster_url")


@pytest.fixture(scope="session")
def database_url(services):
    """A database created for this test session (dropped at its end), as a URL."""
    with scratch_database(services.database_url, "wedcache_test") as url:
        yield url


@contextmanager
def scratch_database(server_url: str, prefix: str, *, migrate: bool = False) -> Iterator[str]:
    """A new database ``<prefix>_<random>`` on ``server_url``'s server (migrated when asked),
    dropped on exit; yields its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    _admin(server_url, sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = svc.with_database(server_url, name)
    try:
        if migrate:
            from wedcache.migrations import apply_migrations
            apply_migrations(url)
        yield url
    finally:
        _admin(server_url, sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _admin(url: str, statement: sql.Composed) -> None:
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(statement)
    except psycopg.Error as error:
        pytest.fail(f"{statement.as_string(None)} failed on {svc.redact(url)}: {error}", pytrace=False)


@pytest.fixture(scope="session")
def migrated_database_url(database_url) -> str:
    """:func:`database_url` with wedcache's migrations applied."""
    from wedcache.migrations import apply_migrations

    apply_migrations(database_url)
    return database_url


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def policy():
    return load_policy()


@pytest.fixture
def org_id() -> str:
    """A fresh organization per test: its keys share nothing with other tests'."""
    return str(uuid.uuid4())


def _server_factory(server_class, tmp_path: Path):
    """Yield a function that starts a dedicated server per call; stop them all afterwards."""
    started = []

    def start(port: int | None = None):
        server = server_class(tmp_path / f"{server_class.kind}-{len(started)}", port).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
        if isinstance(server, svc.LocalPostgres):
            shutil.rmtree(server.data, ignore_errors=True)


@pytest.fixture
def local_redis(tmp_path):
    """``local_redis()`` starts a dedicated :class:`~wedcache.services.LocalRedis`; stopped after the test."""
    yield from _server_factory(svc.LocalRedis, tmp_path)


@pytest.fixture
def local_postgres(tmp_path):
    """``local_postgres()`` starts a dedicated :class:`~wedcache.services.LocalPostgres`; stopped after the test."""
    yield from _server_factory(svc.LocalPostgres, tmp_path)
