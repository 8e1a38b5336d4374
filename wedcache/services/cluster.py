"""A throwaway loopback Redis Cluster from the pip-shipped ``redis-server``: :class:`LocalRedisCluster`.

``masters`` nodes (no replicas), each ``--cluster-enabled yes --appendonly no`` with its own
folder, port, ``nodes.conf``, pid file and log under ``<state_dir>/redis-cluster/node-<i>``.
Slots are split evenly and assigned with ``CLUSTER ADDSLOTS`` (the shipped server is Redis
6.2, which has no ``ADDSLOTSRANGE``), the nodes are joined with ``CLUSTER MEET``, and
:meth:`LocalRedisCluster.start` returns once every node reports ``cluster_state:ok`` and
knows every other. Nothing is persisted: a fresh start forgets the old ``nodes.conf``.
"""
from __future__ import annotations

import json
import subprocess
import time
import random
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from ..errors import ServiceError
from .servers import _log_tail, _pid_alive, _read_int, _wait_until, port_is_free, redis_server_binary

SLOTS = 16384
BUS_OFFSET = 10000
"""Redis 6.2 puts a node's cluster bus on its port + 10000 (``cluster-port`` came in 7.0)."""


def cluster_port(avoid: set[int] = frozenset()) -> int:
    """A port P on 127.0.0.1 with P and its bus port P + 10000 free (so P <= 55535)."""
    for _ in range(200):
        port = random.randint(12000, 22000)  # P and P + 10000 below the ephemeral range
        if port not in avoid and port + BUS_OFFSET not in avoid and port_is_free(port) \
                and port_is_free(port + BUS_OFFSET):
            return port
    raise ServiceError("redis-cluster: no free port pair (P, P + 10000) found on 127.0.0.1")


class _Node:
    def __init__(self, home: Path, port: int | None):
        self.dir = home
        self.port = port or _read_int(home / "port") or cluster_port()

    @property
    def log_path(self) -> Path:
        return self.dir / "redis.log"

    @property
    def pid(self) -> int | None:
        return _read_int(self.dir / "redis.pid")

    def client(self, timeout: float = 1.0) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=timeout,
                           socket_connect_timeout=timeout, decode_responses=True, retry=Retry(NoBackoff(), 0))

    def is_ours(self) -> bool:
        """Whether this node (not another server on the port) answers."""
        try:
            with self.client() as c:
                return Path(c.config_get("dir")["dir"]) == self.dir
        except Exception:
            return False

    def info(self) -> dict:
        with self.client() as c:
            return c.cluster("INFO")

    def write_config(self) -> Path:
        q = json.dumps
        lines = [f"port {self.port}", "bind 127.0.0.1", "daemonize yes", "cluster-enabled yes",
                 f"cluster-config-file {q(str(self.dir / 'nodes.conf'))}", "cluster-node-timeout 5000",
                 f"pidfile {q(str(self.dir / 'redis.pid'))}", f"logfile {q(str(self.log_path))}",
                 f"dir {q(str(self.dir))}", 'save ""', "appendonly no"]
        config = self.dir / "redis.conf"
        config.write_text("\n".join(lines) + "\n")
        return config


class LocalRedisCluster:
    """A ``masters``-node loopback Redis Cluster in ``<state_dir>/redis-cluster``.

    :param ports: the nodes' ports; default: those used last time, else free ones.
    """

    kind = "redis-cluster"

    def __init__(self, state_dir: str | Path, masters: int = 3, ports: list[int] | None = None):
        if masters < 1:
            raise ValueError(f"a cluster needs at least one master, not {masters}")
        self.dir = (Path(state_dir) / "redis-cluster").resolve()
        remembered = _read_int(self.dir / "masters")
        if ports is None and remembered and remembered != masters and self._any_alive(remembered):
            raise ServiceError(f"redis-cluster: a {remembered}-master cluster already runs in {self.dir}; "
                               "stop it first (wedcache services down)")
        self.masters = masters
        self.nodes = [_Node(self.dir / f"node-{i}", ports[i] if ports else None) for i in range(masters)]

    def _any_alive(self, count: int) -> bool:
        return any(_pid_alive(_read_int(self.dir / f"node-{i}" / "redis.pid")) for i in range(count))

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    @property
    def ports(self) -> list[int]:
        return [n.port for n in self.nodes]

    @property
    def log_path(self) -> Path:
        return self.nodes[0].log_path

    @property
    def pid(self) -> int | None:
        return self.nodes[0].pid

    def describe(self) -> dict:
        return {"url": self.url, "port": self.nodes[0].port, "ports": self.ports, "pid": self.pid,
                "pids": [n.pid for n in self.nodes], "masters": self.masters, "dir": str(self.dir),
                "log": str(self.log_path)}

    def is_running(self) -> bool:
        """Whether every node is ours, reports ``cluster_state:ok`` and knows all the others."""
        try:
            return all(n.is_ours() for n in self.nodes) and all(self._healthy(n) for n in self.nodes)
        except Exception:
            return False

    def _healthy(self, node: _Node) -> bool:
        info = node.info()
        return info.get("cluster_state") == "ok" and int(info.get("cluster_known_nodes", 0)) == self.masters \
            and int(info.get("cluster_slots_assigned", 0)) == SLOTS

    def start(self) -> LocalRedisCluster:
        """Start the nodes unless the cluster runs already; assign slots, join, wait for ``ok``."""
        if self.is_running():
            return self
        self.stop()  # half a cluster (a node died, a port moved) is rebuilt from scratch
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "masters").write_text(f"{self.masters}\n")
        taken: set[int] = set()
        for node in self.nodes:
            if node.port in taken or not (port_is_free(node.port) and port_is_free(node.port + BUS_OFFSET)):
                node.port = cluster_port(taken)
            taken |= {node.port, node.port + BUS_OFFSET}
            node.dir.mkdir(parents=True, exist_ok=True)
            (node.dir / "port").write_text(f"{node.port}\n")
            (node.dir / "nodes.conf").unlink(missing_ok=True)
            done = subprocess.run([str(redis_server_binary()), str(node.write_config())], cwd=node.dir,
                                  capture_output=True, text=True)
            if done.returncode != 0 or not _wait_until(node.is_ours, 15):
                raise ServiceError(f"redis-cluster: node on port {node.port} did not start (exit {done.returncode}) "
                                   f"{done.stderr.strip()}\nserver log {node.log_path}:\n{_log_tail(node.log_path)}")
        self._form()
        return self

    def _form(self) -> None:
        share = SLOTS // self.masters
        for i, node in enumerate(self.nodes):
            first, last = i * share, SLOTS - 1 if i == self.masters - 1 else (i + 1) * share - 1
            with node.client(5) as c:
                c.execute_command("CLUSTER ADDSLOTS", *range(first, last + 1))
        with self.nodes[0].client(5) as c:
            for other in self.nodes[1:]:
                c.execute_command("CLUSTER MEET", "127.0.0.1", other.port)
        if not _wait_until(lambda: all(self._healthy(n) for n in self.nodes), 30):
            states = {n.port: n.info().get("cluster_state") for n in self.nodes}
            raise ServiceError(f"redis-cluster: not cluster_state:ok within 30 s ({states}); "
                               f"server log {self.log_path}:\n{_log_tail(self.log_path)}")
        time.sleep(0.05)

    def stop(self) -> None:
        """Shut every node down (no save) and wait until its process and port are gone."""
        for node in self.nodes:
            pid = node.pid
            if not node.is_ours():
                continue
            try:
                with node.client(5) as c:
                    c.shutdown(nosave=True)
            except redis.ConnectionError:
                pass  # the server drops the connection as it exits
            if not _wait_until(lambda: not _pid_alive(pid) and port_is_free(node.port), 20):
                raise ServiceError(f"redis-cluster node (pid {pid}) on port {node.port} did not stop within 20 s; "
                                   f"server log: {node.log_path}")
