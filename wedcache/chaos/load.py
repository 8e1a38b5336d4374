"""Bounded loopback load for the drill: :class:`SteadyLoad`, :func:`stampede` and the workload.

:class:`SteadyLoad` keeps a steady request rate against the fleet from a background thread
(an asyncio loop with one ``httpx.AsyncClient``): ``concurrency`` tasks, each paced at
``rate / concurrency`` requests/s, until :meth:`SteadyLoad.stop` or ``max_seconds``. Every
request becomes a :class:`Sample` (when it was sent, its status or transport error, its
``X-Cache``), so the drill can cut the run into phases afterwards.

:class:`Workload` is deterministic: request ``n`` asks catalogue query ``n % size``, except
every ``fresh_every``-th, which asks a query never seen before (a miss the origin must answer,
so the origin is exercised throughout and the hit rate has a known ceiling).
"""
from __future__ import annotations

import asyncio
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

from ..service_bench import HOT_QUERY, QUERY_PATH

REQUEST_TIMEOUT_SECONDS = 30.0
"""Longer than the service's database pool wait, so a stuck request shows as the service's
answer, not as a client timeout."""


@dataclass(frozen=True)
class Sample:
    """One request: ``at`` (monotonic seconds when sent), ``outcome`` (the HTTP status as text,
    or the transport error's class name) and ``x_cache`` (``None`` without an answer)."""

    at: float
    outcome: str
    x_cache: str | None = None
    seconds: float = 0.0
    error: str | None = None
    """For a refusal, the envelope's error code and message (``CACHE_004: …``)."""

    @property
    def answered(self) -> bool:
        return self.outcome.isdigit()

    @property
    def ok(self) -> bool:
        return self.answered and self.outcome.startswith("2")

    @property
    def is_5xx(self) -> bool:
        return self.answered and self.outcome.startswith("5")

    @property
    def hit(self) -> bool:
        return self.ok and (self.x_cache or "").startswith("HIT-")


@dataclass(frozen=True)
class Workload:
    """Query bodies: a catalogue of ``size`` queries, every ``fresh_every``-th request a new one."""

    size: int = 200
    fresh_every: int = 10
    run: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    def catalogue(self) -> list[dict[str, Any]]:
        return [self.query(i) for i in range(self.size)]

    def query(self, i: int) -> dict[str, Any]:
        return {**HOT_QUERY, "query": f"{HOT_QUERY['query']} (variant {i}, drill {self.run})"}

    def fresh(self, label: str) -> dict[str, Any]:
        return {**HOT_QUERY, "query": f"{HOT_QUERY['query']} (fresh {label}, drill {self.run})"}

    def body(self, n: int) -> dict[str, Any]:
        if self.fresh_every and n % self.fresh_every == self.fresh_every - 1:
            return self.fresh(str(n))
        return self.query(n % self.size)


async def _send(client: httpx.AsyncClient, body: dict[str, Any]) -> Sample:
    sent = time.monotonic()
    try:
        response = await client.post(QUERY_PATH, json=body)
    except httpx.HTTPError as exc:
        return Sample(sent, type(exc).__name__, None, time.monotonic() - sent)
    return Sample(sent, str(response.status_code), response.headers.get("X-Cache"), time.monotonic() - sent,
                  None if response.is_success else _error(response))


def _error(response: httpx.Response) -> str:
    """``CODE: message`` of an error envelope (the body's start when it is none)."""
    try:
        error = response.json()["error"]
        return f"{error['code']}: {error['message']}"
    except (ValueError, KeyError, TypeError):
        return response.text[:200]


def _client(url: str, secret: str, connections: int) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=url, headers={"X-API-Key": secret}, timeout=REQUEST_TIMEOUT_SECONDS,
                             limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections))


class SteadyLoad:
    """Paced load from a background thread (see the module docstring)."""

    def __init__(self, url: str, secret: str, workload: Workload, *, rate: float = 100.0, concurrency: int = 8,
                 max_seconds: float = 600.0):
        if rate <= 0 or concurrency < 1:
            raise ValueError(f"rate and concurrency must be positive, got {rate} and {concurrency}")
        self.url, self.secret, self.workload = url, secret, workload
        self.rate, self.concurrency, self.max_seconds = rate, concurrency, max_seconds
        self.samples: list[Sample] = []
        self._stopping = False
        self._sent = 0
        self._thread: threading.Thread | None = None

    def start(self) -> "SteadyLoad":
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), name="chaos-load", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> list[Sample]:
        """Stop sending, wait for the requests in flight; every sample, in sending order."""
        self._stopping = True
        if self._thread is not None:
            self._thread.join(REQUEST_TIMEOUT_SECONDS + 5)
        return sorted(self.samples, key=lambda s: s.at)

    async def _run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        async with _client(self.url, self.secret, self.concurrency) as client:
            await asyncio.gather(*(self._user(client, deadline) for _ in range(self.concurrency)))

    async def _user(self, client: httpx.AsyncClient, deadline: float) -> None:
        interval = self.concurrency / self.rate
        due = time.monotonic()
        while not self._stopping and time.monotonic() < deadline:
            n, self._sent = self._sent, self._sent + 1  # one event loop: no lock needed
            self.samples.append(await _send(client, self.workload.body(n)))
            due = max(due + interval, time.monotonic())  # a slow answer delays, it does not cause a burst
            await asyncio.sleep(due - time.monotonic())


def stampede(url: str, secret: str, body: dict[str, Any], requests: int) -> list[Sample]:
    """``requests`` concurrent requests for ``body``, each on its own connection (so the
    balancer spreads them over the replicas); their samples."""
    async def run() -> list[Sample]:
        async with _client(url, secret, requests) as client:
            return list(await asyncio.gather(*(_send(client, body) for _ in range(requests))))
    return asyncio.run(run())
