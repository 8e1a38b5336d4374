"""Two real ``wedcache serve`` replicas on one Redis and PostgreSQL, and how tests talk to them.

:func:`two_replicas` is a :func:`wedcache.fleet.fleet` of two without a balancer (one worker
each, so each replica is one memory tier, with :func:`wedcache.service_bench.server_env`'s
instant origin), stopped afterwards. :class:`Replica` is one of them behind a keep-alive HTTP client, so a tight poll
costs one loopback round trip.
"""
from __future__ import annotations

import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, NamedTuple

import httpx

from wedcache.fleet import fleet
from wedcache.service_bench import QUERY_PATH, Server

INVALIDATE_PATH = "/api/ai-cache/invalidate"
SCALING_PATH = "/api/ai-cache/seasonal-scaling"


class Fresh(NamedTuple):
    """The first answer not from the memory copy a replica held (times from the poll's start)."""

    seconds: float
    """Until that answer arrived."""
    sent_after: float
    """Until the request that got it was sent (the old copy was gone by then or during it)."""
    polls: int
    response: httpx.Response


@dataclass
class Replica:
    """One serving replica and a client holding its connection open."""

    server: Server
    http: httpx.Client

    def ask(self, body: dict[str, Any]) -> httpx.Response:
        response = self.http.post(QUERY_PATH, json=body)
        assert response.status_code == 200, response.text
        return response

    def hold_in_memory(self, body: dict[str, Any], tries: int = 50) -> httpx.Response:
        """Ask until the answer comes from this replica's memory tier (a peer's overwrite
        message may still drop the first promoted copy)."""
        for _ in range(tries):
            response = self.ask(body)
            if response.headers["X-Cache"] == "HIT-memory":
                return response
        raise AssertionError(f"{body['query']!r} never came from {self.server.url}'s memory tier")

    def first_fresh(self, body: dict[str, Any], seconds: float = 2.0) -> "Fresh":
        """Ask back to back until the answer no longer comes from the memory copy held so far."""
        started, polls = time.perf_counter(), 0
        while time.perf_counter() - started < seconds:
            sent = time.perf_counter()
            response, polls = self.ask(body), polls + 1
            if response.headers["X-Cache"] != "HIT-memory":
                return Fresh(time.perf_counter() - started, sent - started, polls, response)
        raise AssertionError(f"{self.server.url} still served its memory copy after {seconds} s")

    def status(self) -> dict[str, Any]:
        response = self.http.get(SCALING_PATH)
        assert response.status_code == 200, response.text
        return response.json()["status"]


@contextmanager
def two_replicas(redis_url: str, database_url: str, secret: str) -> Iterator[tuple[Replica, Replica]]:
    """Replicas A and B serving until the block ends (always stopped; their logs are in the error
    when one does not start)."""
    with fleet(redis_url, database_url, replicas=2, balancer=False) as running, ExitStack() as stack:
        replicas = [Replica(server, stack.enter_context(httpx.Client(base_url=server.url, headers={"X-API-Key": secret},
                                                                    timeout=10.0)))
                    for server in running.servers]
        yield replicas[0], replicas[1]
