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
"""
from __future__ import annotations

import os
from typing import Any, Mapping
from urllib.parse import parse_qsl, unquote

import redis
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.retry import Retry

CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")
CLUSTER_NODES_ENV = "AI_CACHE_REDIS_CLUSTER_NODES"
REDIS_ENV = "AI_CACHE_REDIS_URL"

AnyRedis = redis.Redis | RedisCluster

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
    return RedisCluster(startup_nodes=nodes, retry=retry, **options)


def is_cluster(client: Any) -> bool:
    return isinstance(client, RedisCluster)


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
