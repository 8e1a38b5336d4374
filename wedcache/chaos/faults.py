"""The drill's own Redis and PostgreSQL, and the outages it inflicts on them.

The drill stops and restarts its backends, so it never uses the servers of
``AI_CACHE_*`` URLs, the default ports or the shared state folder: :func:`private_backends`
starts a throwaway :class:`~wedcache.services.LocalRedis` and
:class:`~wedcache.services.LocalPostgres` in a temporary folder, each pinned to a free port
(a restart must come back on the same port, or the replicas could not find it), and removes
them afterwards. :func:`outage` stops one for a while and starts it again, and says when.
"""
from __future__ import annotations

import logging
import shutil
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from ..services import LocalPostgres, LocalRedis, free_port

log = logging.getLogger(__name__)


@dataclass
class Backends:
    redis: LocalRedis
    postgres: LocalPostgres

    @property
    def redis_url(self) -> str:
        return self.redis.url

    @property
    def database_url(self) -> str:
        return self.postgres.url


@contextmanager
def private_backends() -> Iterator[Backends]:
    """A fresh Redis and PostgreSQL of the drill's own, stopped and deleted on exit."""
    home = Path(tempfile.mkdtemp(prefix="wedcache-chaos-"))
    started: list[LocalRedis | LocalPostgres] = []
    try:
        for server in (LocalRedis(home, free_port()), LocalPostgres(home, free_port())):
            started.append(server.start())
        yield Backends(*started)
    finally:
        for server in reversed(started):
            try:
                server.stop()
            except Exception as exc:  # noqa: BLE001  (clean up the rest anyway)
                log.warning("stopping the drill's %s failed: %s", server.kind, exc)
        shutil.rmtree(home, ignore_errors=True)


@dataclass(frozen=True)
class Outage:
    """One outage on the monotonic clock: stop asked, server gone, server answering again."""

    tier: str
    stop_at: float
    down_at: float
    up_at: float

    @property
    def seconds(self) -> float:
        return self.up_at - self.down_at


def outage(server: LocalRedis | LocalPostgres, seconds: float) -> Outage:
    """Stop ``server``, keep it down ``seconds``, start it again (it answers when this returns)."""
    stop_at = time.monotonic()
    server.stop()
    down_at = time.monotonic()
    time.sleep(seconds)
    server.start()
    return Outage(server.kind, stop_at, down_at, time.monotonic())
