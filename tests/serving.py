"""``wedcache serve --workers N`` as a subprocess for a test: :func:`serving`.

The server runs from this interpreter's ``wedcache`` script on a free loopback port, logs to a
file the test can read, and is stopped with SIGTERM (its drain and metric flush) on the way out;
a server that does not exit cleanly fails the test.
"""
from __future__ import annotations

import secrets
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator, NamedTuple

import httpx
from waiting import wait_until

from wedcache.service_bench import server_env
from wedcache.services import free_port

WEDCACHE = Path(sys.executable).with_name("wedcache")


class Served(NamedTuple):
    client: httpx.Client
    """A client with a new connection per request, so any worker may answer it."""
    log: IO[str]


def serve_env(redis_url: str, database_url: str, **extra: str) -> dict[str, str]:
    """:func:`~wedcache.service_bench.server_env` (the given servers, an instant origin) with a
    small memory tier and an encryption key of the test's own, plus ``extra``."""
    return {**server_env(redis_url, database_url), "AI_CACHE_MEMORY_SIZE_MB": "32",
            "AI_CACHE_ENCRYPTION_KEY": secrets.token_urlsafe(32), **extra}


@contextmanager
def serving(env: dict[str, str], log_path: Path, workers: int = 2,
            headers: dict[str, str] | None = None) -> Iterator[Served]:
    """Serve until the block ends, then SIGTERM and assert a clean exit."""
    port, log = free_port(), log_path.open("w+")
    server = subprocess.Popen([str(WEDCACHE), "serve", "--workers", str(workers), "--port", str(port),
                               "--log-level", "warning"], env=env, stdout=log, stderr=subprocess.STDOUT)
    fresh = httpx.Limits(max_keepalive_connections=0)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", limits=fresh, timeout=10, headers=headers) as client:
            wait_until(lambda: _answers(client), timeout=60)
            yield Served(client, log)
    finally:
        server.terminate()
        try:
            server.wait(timeout=40)
        finally:
            server.kill()
            log.close()
    assert server.returncode == 0, read_log(log_path)


def read_log(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")


def _answers(client: httpx.Client) -> bool:
    try:
        return client.get("/healthz").status_code == 200
    except httpx.TransportError:
        return False
