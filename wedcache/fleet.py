"""A fleet of ``wedcache serve`` replicas behind one balancer: :func:`fleet` and :class:`Fleet`.

Coherence tests, the distributed gate and the fault drills need several replicas sharing one
Redis and one PostgreSQL, each its own process group on a free loopback port with
``--workers W`` (:class:`~wedcache.service_bench.Server`, as the benchmarks and the gate run
one), plus a :class:`~wedcache.balancer.Balancer` in front so a client sees one URL and new
connections spread over the replicas. :meth:`Fleet.kill` SIGKILLs a replica's whole process
group (a crash, not a drain); :meth:`Fleet.restart` starts it again on the same port, so the
balancer finds it again without being told.
"""
from __future__ import annotations

import os
import signal
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Iterator, Sequence

from .balancer import Balancer
from .service_bench import SERVE_ARGV, Server, server_env

HEALTH_PATH = "/healthz"


class Fleet:
    """``replicas`` servers of one environment and, optionally, their balancer.

    :param serve_argv: the command each replica runs (default ``wedcache serve``)."""

    def __init__(self, redis_url: str, database_url: str, replicas: int = 2, workers: int = 1,
                 env: dict[str, str] | None = None, balancer: bool = True, serve_argv: Sequence[str] = SERVE_ARGV):
        from .services import free_port

        if replicas < 1:
            raise ValueError(f"replicas: at least 1, got {replicas}")
        if workers < 1:
            raise ValueError(f"workers: at least 1, got {workers}")
        self.workers = workers
        self.env = {**server_env(redis_url, database_url), **(env or {})}
        self.servers = [Server(f"replica {i}", list(serve_argv), free_port(), HEALTH_PATH) for i in range(replicas)]
        self.balancer = Balancer([s.port for s in self.servers]) if balancer else None

    @property
    def url(self) -> str:
        """The balancer's URL (replica 0's without a balancer)."""
        return self.balancer.url if self.balancer is not None else self.replica_urls[0]

    @property
    def replica_urls(self) -> list[str]:
        return [server.url for server in self.servers]

    @property
    def pids(self) -> list[int]:
        """Each replica's ``serve`` process (its workers are its children)."""
        return [server.process.pid for server in self.servers if server.process is not None]

    def start(self) -> "Fleet":
        """Start every replica at once (each waits until it answers), then the balancer."""
        try:
            with ThreadPoolExecutor(len(self.servers)) as pool:
                list(pool.map(lambda server: server.start(self.workers, self.env), self.servers))
            if self.balancer is not None:
                self.balancer.start()
        except BaseException:
            self.stop()
            raise
        return self

    def kill(self, i: int) -> None:
        """SIGKILL replica ``i``'s whole process group (every worker) and reap it."""
        server = self._server(i)
        if server.process is None:
            return
        try:
            os.killpg(server.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        server.process.wait()
        server.stop()  # closes its log; the process is gone already

    def restart(self, i: int) -> None:
        """Start replica ``i`` again on its port and wait until it answers (killed or not)."""
        server = self._server(i)
        if server.process is not None and server.process.poll() is None:
            server.stop()
        server.start(self.workers, self.env)
        if self.balancer is not None:
            self.balancer.mark_up(i)

    def stop(self) -> None:
        """Stop the balancer and every replica (SIGTERM, then SIGKILL to the group)."""
        if self.balancer is not None:
            self.balancer.stop()
        for server in self.servers:
            if server.process is not None and server.log is not None and not server.log.closed:
                server.stop()

    def output_tail(self, i: int, chars: int = 3000) -> str:
        """The end of replica ``i``'s output (for error messages)."""
        return self._server(i).output_tail(chars)

    def _server(self, i: int) -> Server:
        if not 0 <= i < len(self.servers):
            raise IndexError(f"replica {i}: the fleet has {len(self.servers)} replicas")
        return self.servers[i]


@contextmanager
def fleet(redis_url: str, database_url: str, replicas: int = 2, workers: int = 1,
          env: dict[str, str] | None = None, balancer: bool = True,
          serve_argv: Sequence[str] = SERVE_ARGV) -> Iterator[Fleet]:
    """A started :class:`Fleet`, always stopped afterwards."""
    running = Fleet(redis_url, database_url, replicas, workers, env, balancer, serve_argv).start()
    try:
        yield running
    finally:
        running.stop()
