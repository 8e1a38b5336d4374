"""The one place a Redis URL becomes a client: :func:`redis_client`, :func:`is_cluster_url`, :func:`cluster_url`.

A plain URL (``redis://``, ``rediss://``, ``unix://``) gives ``redis.Redis.from_url`` with
exactly the keyword arguments passed, as before. A cluster URL gives
``redis.cluster.RedisCluster`` over its startup nodes:

- ``redis+cluster://host:port`` (any one node; the client discovers the others), or
- ``redis+cluster://host:port,host:port,…`` (several startup nodes, as
  ``AI_CACHE_REDIS_CLUSTER_NODES=host:port,…`` makes it: :func:`cluster_url`);
- ``rediss+cluster://…`` for TLS; ``user:password@`` before the nodes as in any URL.

Keys that must live together carry a hash tag (``ai:{<org>}:…``), so an organization's
entries, index sets and locks share one slot and multi-key commands on them stay legal.
A cluster client gets the same socket timeouts; ``retry`` (redis-py's cluster-level retry
count) defaults to none, like the plain clients built here, so a dead node fails fast.

A cluster client is lazy (:class:`LazyRedisCluster`): redis-py's ``RedisCluster`` asks a
startup node for the slot map when it is built, so building it while the cluster is down
raises. A service started then must answer from its other tiers and take Redis up when it
comes back, so the real client is built on first use; while that fails, every command raises
``redis.ConnectionError`` (a Redis error like any other: the tier reports itself down, the
rate limiter and the locks fall back) and a new attempt is made at most every
:data:`RECONNECT_SECONDS`.
"""
from __future__ import annotations

import os
import threading
from typing import Any, Mapping
from urllib.parse import parse_qsl, unquote

import redis
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.commands.core import Script
from redis.retry import Retry

from .clock import Clock, SystemClock

CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")
CLUSTER_NODES_ENV = "AI_CACHE_REDIS_CLUSTER_NODES"
REDIS_ENV = "AI_CACHE_REDIS_URL"

AnyRedis = redis.Redis | RedisCluster
"""A client :func:`redis_client` returns (a :class:`LazyRedisCluster` passes for a ``RedisCluster``)."""

RECONNECT_SECONDS = 1.0
"""How long a cluster client that could not reach any startup node waits before trying again."""

ERRORS = (redis.RedisError, redis.exceptions.RedisClusterException, OSError)
"""What a failing Redis raises: redis-py's ``RedisClusterException`` (e.g. no node reachable,
a slot not covered) is no ``RedisError``, so catch this tuple."""


def is_cluster_url(url: str | None) -> bool:
    """Whether ``url`` names a Redis Cluster (``redis+cluster://`` or ``rediss+cluster://``)."""
    return bool(url) and url.split("://", 1)[0].lower() in CLUSTER_SCHEMES


def cluster_url(nodes: str | list[str], *, tls: bool = False) -> str:
    """``redis+cluster://h:p,h:p`` from ``"h:p,h:p"`` (``AI_CACHE_REDIS_CLUSTER_NODES``) or a list."""
    items = [n.strip() for n in (nodes.split(",") if isinstance(nodes, str) else nodes) if n.strip()]
    if not items:
        raise ValueError("no cluster node given (expected host:port,host:port,…)")
    for item in items:
        _node(item)
    return f"{CLUSTER_SCHEMES[tls]}://{','.join(items)}"


def redis_url_from_env(env: Mapping[str, str] = os.environ) -> str | None:
    """``AI_CACHE_REDIS_URL``, else a cluster URL made from ``AI_CACHE_REDIS_CLUSTER_NODES``, else ``None``."""
    if env.get(REDIS_ENV):
        return env[REDIS_ENV]
    if env.get(CLUSTER_NODES_ENV):
        return cluster_url(env[CLUSTER_NODES_ENV])
    return None


def cluster_nodes(url: str) -> list[tuple[str, int]]:
    """The startup nodes a cluster URL names."""
    return [_node(n) for n in _split_cluster_url(url)["nodes"]]


def redis_client(url: str, **kwargs: Any) -> AnyRedis:
    """A client for ``url``: ``redis.Redis.from_url(url, **kwargs)`` for a single server,
    ``RedisCluster`` over the named startup nodes for a cluster URL (``max_connections`` is
    then per node; ``retry`` is the cluster-level retry, none unless given)."""
    if not is_cluster_url(url):
        return redis.Redis.from_url(url, **kwargs)
    parts = _split_cluster_url(url)
    options = {**parts["options"], **kwargs}
    retry = options.pop("retry", None) or Retry(NoBackoff(), 0)
    options.pop("db", None)
    if parts["tls"]:
        options.setdefault("ssl", True)
    if parts["username"] is not None:
        options.setdefault("username", parts["username"])
    if parts["password"] is not None:
        options.setdefault("password", parts["password"])
    nodes = [ClusterNode(host, port) for host, port in (_node(n) for n in parts["nodes"])]
    return LazyRedisCluster(startup_nodes=nodes, retry=retry, **options)


def is_cluster(client: Any) -> bool:
    return isinstance(client, RedisCluster)


class LazyRedisCluster:
    """A ``RedisCluster`` built on first use, and built again after a failed attempt (see the
    module docstring); every attribute is the real client's.

    It passes for a ``RedisCluster`` (``isinstance`` reads ``__class__``), so code that asks
    whether a client is a cluster needs no knowledge of it. Nothing fails before a command
    runs, where callers already handle Redis errors: until the client is built, an attribute
    is a method that builds it when called, a ``pipeline`` fails at ``execute`` and a
    registered script when it runs.

    :param clock: what the :data:`RECONNECT_SECONDS` wait reads; ``options`` go to ``RedisCluster``.
    """

    def __init__(self, *, clock: Clock | None = None, reconnect_seconds: float = RECONNECT_SECONDS, **options: Any):
        self._options, self._clock, self._reconnect_seconds = options, clock or SystemClock(), reconnect_seconds
        self._client: RedisCluster | None = None
        self._failed: tuple[float, str] | None = None
        """When the last attempt failed, and why."""
        self._lock = threading.Lock()

    @property
    def __class__(self) -> type:  # isinstance(client, RedisCluster) holds
        return RedisCluster

    @property
    def connected(self) -> bool:
        """Whether the real client has been built (a node answered once)."""
        return self._client is not None

    def cluster(self) -> RedisCluster:
        """The real client, built now if need be; raises ``redis.ConnectionError`` while no
        startup node answers (without trying again within :data:`RECONNECT_SECONDS`)."""
        client = self._client
        if client is not None:
            return client
        with self._lock:
            if self._client is None:
                self._client = self._build()
            return self._client

    def _build(self) -> RedisCluster:
        now = self._clock.now()
        if self._failed is not None and now - self._failed[0] < self._reconnect_seconds:
            raise redis.ConnectionError(f"the Redis Cluster did not answer: {self._failed[1]}")
        try:
            client = RedisCluster(**self._options)
        except ERRORS as exc:
            self._failed = (now, str(exc))
            raise redis.ConnectionError(f"the Redis Cluster does not answer: {exc}") from exc
        self._failed = None
        return client

    def __getattr__(self, name: str) -> Any:
        """The real client's attribute; before it is built, a method that builds it when called
        (callers write ``call(client.get, key)`` with the call inside their ``try``)."""
        if name.startswith("_"):  # protocol probes (copy, pickle) and our own fields before __init__
            raise AttributeError(name)
        if self._client is not None:
            return getattr(self._client, name)
        return lambda *args, **kwargs: getattr(self.cluster(), name)(*args, **kwargs)

    def pipeline(self, transaction: Any = None, shard_hint: Any = None) -> Any:
        try:
            return self.cluster().pipeline(transaction, shard_hint)
        except redis.ConnectionError as exc:
            return _FailingPipeline(exc)

    def register_script(self, script: str | bytes) -> Script:
        """A script bound to this client (its SHA needs no server: the text is encoded here)."""
        return Script(self, script.encode() if isinstance(script, str) else script)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def __enter__(self) -> "LazyRedisCluster":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


class _FailingPipeline:
    """The pipeline of a cluster client that cannot reach the cluster: it queues nothing and
    raises the connection error at ``execute``."""

    def __init__(self, error: redis.ConnectionError):
        self._error = error

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: self

    def execute(self, raise_on_error: bool = True) -> list:
        raise redis.ConnectionError(str(self._error))



def _split_cluster_url(url: str) -> dict:
    scheme, rest = url.split("://", 1)
    if scheme.lower() not in CLUSTER_SCHEMES:
        raise ValueError(f"not a Redis Cluster URL: {url!r}")
    rest, _, query = rest.partition("?")
    netloc = rest.split("/", 1)[0]
    username = password = None
    if "@" in netloc:
        userinfo, netloc = netloc.rsplit("@", 1)
        user, sep, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if sep else None
    nodes = [n for n in netloc.split(",") if n]
    if not nodes:
        raise ValueError(f"a Redis Cluster URL names no node: {url!r}")
    options: dict[str, Any] = {}
    for key, value in parse_qsl(query):
        if key in ("socket_timeout", "socket_connect_timeout"):
            options[key] = float(value)
        elif key == "max_connections":
            options[key] = int(value)
    return {"tls": scheme.lower() == "rediss+cluster", "username": username, "password": password,
            "nodes": nodes, "options": options}


def _node(text: str) -> tuple[str, int]:
    host, sep, port = text.strip().rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"a cluster node must be host:port, not {text!r}")
    return host.strip("[]"), int(port)
