"""The service benchmark: the cached-query endpoint against a bare FastAPI endpoint.

:func:`run_service_bench` serves, on loopback with the same uvicorn set-up
(:func:`wedcache.service.server.run_uvicorn`) and worker count, the real service
(``wedcache serve``; origin latency 0) and the bare app of :mod:`loadtests.bare_app` (the
same JSON, no cache, no auth). It warms the hot query, then runs headless Locust
(:mod:`loadtests.bench_locustfile`, ``FastHttpUser``) against each in alternating rounds, so
machine noise hits both sides alike. Figures are medians over rounds; the ratio is the
median of the per-round ``service_rps / bare_rps``. Each round also loads the service
lightly (``latency_users``, default 2): the hit latencies come from that run, where a
request waits for no other (under the saturating load latency is queueing, ``users / rps``,
and is reported as ``hit_p95_ms_saturated``). Hit latencies count only answers with
``X-Cache: HIT-*``, measured by Locust's clock in milliseconds. Results go to
``reports/bench/service.json`` (:data:`SERVICE_BENCH_KEYS`).
"""
from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

SERVICE_BENCH_KEYS = ("service_rps", "bare_rps", "ratio", "hit_p50_ms", "hit_p95_ms")
TARGETS = {"ratio": 0.5, "hit_p95_ms": 10.0}
"""``ratio`` at least, ``hit_p95_ms`` below."""
QUERY_PATH = "/api/ai-cache/query"
HOT_QUERY = {"query": "rustic barn venues near Austin for 150 guests with outdoor ceremony space",
             "weddingContext": {"weddingDate": "2026-06-06", "location": "Austin, TX", "vendorTypes": ["venue"],
                                "guestCount": 150}}
API_KEY_ENV = "WEDCACHE_BENCH_API_KEY"
SAMPLES_ENV = "WEDCACHE_BENCH_SAMPLES"
LOCUSTFILE = Path(__file__).resolve().parent.parent / "loadtests" / "bench_locustfile.py"
HOST = "127.0.0.1"
START_SECONDS = 60.0
STOP_SECONDS = 15.0
SERVE_ARGV = (sys.executable, "-m", "wedcache", "serve")
"""``wedcache serve`` from this interpreter (a :class:`Server`'s ``argv``)."""


# --- servers -------------------------------------------------------------------------------

@dataclass
class Server:
    """A uvicorn server run as a subprocess in its own process group."""

    name: str
    argv: list[str]
    """The command before ``--host/--port/--workers/--log-level`` (both servers take them)."""
    port: int
    probe: str
    """A path answered once the app runs (any HTTP status counts)."""
    process: subprocess.Popen | None = None
    log: Any = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def command(self, workers: int) -> list[str]:
        return [*self.argv, "--host", HOST, "--port", str(self.port), "--workers", str(workers),
                "--log-level", "warning"]

    def start(self, workers: int, env: dict[str, str]) -> "Server":
        self.log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(self.command(workers), env=env, stdin=subprocess.DEVNULL,
                                        stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        self._wait_answering()
        return self

    def stop(self) -> None:
        """SIGTERM (graceful), then SIGKILL to the whole process group after :data:`STOP_SECONDS`."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_SECONDS)
            except subprocess.TimeoutExpired:
                _kill_group(self.process.pid)
                self.process.wait(STOP_SECONDS)
        _kill_group(self.process.pid)  # workers outliving their parent
        self.log.close()

    def output_tail(self, chars: int = 3000) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-chars:]

    def _wait_answering(self) -> None:
        import httpx

        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the {self.name} server exited with {self.process.returncode}:\n"
                                   f"{self.output_tail()}")
            try:
                httpx.get(self.url + self.probe, timeout=1.0)
                return
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError(f"the {self.name} server did not answer on {self.url} within {START_SECONDS:.0f} s:\n"
                           f"{self.output_tail()}")


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


@contextmanager
def serving(server: Server, workers: int, env: dict[str, str]) -> Iterator[Server]:
    """``server`` started with ``workers`` workers, always stopped afterwards."""
    try:
        yield server.start(workers, env)
    finally:
        server.stop()


# --- the hot query -------------------------------------------------------------------------

def bench_key(database_url: str) -> tuple[Any, str]:
    """An enterprise (unlimited) key of a throwaway organization, in a migrated database."""
    from .apikeys import ApiKeyStore
    from .migrations import apply_migrations

    apply_migrations(database_url)
    return ApiKeyStore(database_url).create(f"wedcache-bench-service-{uuid.uuid4().hex[:12]}", "enterprise",
                                            label="wedcache bench-service")


def warm(url: str, secret: str, requests: int) -> tuple[Counter, bytes]:
    """Send the hot query ``requests`` times, each on a new connection (so every worker sees it).

    Returns the ``X-Cache`` values seen and the last hit's body.
    """
    import httpx

    seen, body = Counter(), b""
    for _ in range(requests):
        response = httpx.post(url + QUERY_PATH, json=HOT_QUERY, headers={"X-API-Key": secret}, timeout=30.0)
        response.raise_for_status()
        label = response.headers.get("X-Cache", "none")
        seen[label] += 1
        if label.startswith("HIT-"):
            body = response.content
    if not body:
        raise RuntimeError(f"warming the hot query produced no cache hit: X-Cache {dict(seen)}")
    return seen, body


# --- Locust rounds -------------------------------------------------------------------------

@dataclass
class Round:
    """One Locust run against one server: Locust's RPS and the latencies by ``X-Cache``."""

    rps: float
    requests: int
    failures: int
    cpu_warning: bool
    latencies_ms: dict[str, list[float]] = field(default_factory=dict)

    def x_cache(self) -> Counter:
        return Counter({label: len(values) for label, values in self.latencies_ms.items()})

    def percentiles(self, hits_only: bool) -> tuple[float, float]:
        """(p50, p95) in ms of the hits (``X-Cache: HIT-*``) or of every successful answer."""
        values = sorted(v for label, vs in self.latencies_ms.items() if label != "error"
                        and (label.startswith("HIT-") or not hits_only) for v in vs)
        if not values:
            raise RuntimeError(f"no {'hit' if hits_only else 'successful answer'} in the round: "
                               f"{dict(self.x_cache())}")
        return _percentile(values, 0.50), _percentile(values, 0.95)


def _percentile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def locust_round(url: str, secret: str, users: int, seconds: int) -> Round:
    """A headless Locust run of ``seconds`` against ``url``; it stops by itself."""
    with tempfile.TemporaryDirectory(prefix="wedcache-locust-") as scratch:
        samples = Path(scratch) / "samples.json"
        env = {**os.environ, API_KEY_ENV: secret, SAMPLES_ENV: str(samples)}
        command = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--host", url,
                   "--users", str(users), "--spawn-rate", str(users * 10), "--run-time", f"{seconds}s",
                   "--only-summary", "--loglevel", "WARNING", "--exit-code-on-error", "0"]
        done = subprocess.run(command, env=env, cwd=scratch, capture_output=True, text=True, timeout=seconds + 60)
        if done.returncode != 0 or not samples.exists():
            raise RuntimeError(f"locust failed ({done.returncode}):\n{done.stderr[-3000:]}")
        return Round(**json.loads(samples.read_text()))


# --- the benchmark -------------------------------------------------------------------------

def server_env(redis_url: str, database_url: str) -> dict[str, str]:
    """The service's environment: the given servers, an instant simulated origin, and no
    inherited Prometheus multiprocess folder (``serve`` makes its own for several workers)."""
    from .metrics import MULTIPROC_DIR_ENV
    from .services import DATABASE_ENV, REDIS_ENV

    env = {**os.environ, REDIS_ENV: redis_url, DATABASE_ENV: database_url, "PYTHONUNBUFFERED": "1",
           "AI_CACHE_ORIGIN_LATENCY_MEDIAN_MS": "0", "AI_CACHE_ORIGIN_LATENCY_P95_MS": "0"}
    env.pop(MULTIPROC_DIR_ENV, None)
    return env


def run_service_bench(redis_url: str, database_url: str, *, workers: int = 2, users: int = 32, seconds: int = 10,
                      rounds: int = 3, latency_users: int = 2,
                      out: Path | None = Path("reports/bench/service.json")) -> dict[str, Any]:
    """Run the benchmark (see the module docstring) and write ``service.json``; returns the figures."""
    from .services import free_port

    key, secret = bench_key(database_url)
    env = server_env(redis_url, database_url)
    service = Server("service", list(SERVE_ARGV), free_port(), "/healthz")
    bare = Server("bare", [sys.executable, "-m", "wedcache.service.server", "loadtests.bare_app:create_app"],
                  free_port(), QUERY_PATH)
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="wedcache-bare-") as scratch:
        stack.enter_context(serving(service, workers, env))
        warmup, body = warm(service.url, secret, requests=4 * workers + 4)
        body_file = Path(scratch) / "hit.json"
        body_file.write_bytes(body)
        stack.enter_context(serving(bare, workers, {**env, "WEDCACHE_BARE_BODY_FILE": str(body_file)}))
        measured = [(locust_round(service.url, secret, users, seconds), locust_round(bare.url, secret, users, seconds),
                     locust_round(service.url, secret, latency_users, seconds)) for _ in range(rounds)]
    result = summarize(measured, warmup)
    result.update(workers=workers, users=users, latency_users=latency_users, rounds=rounds, seconds_per_round=seconds,
                  hot_query=HOT_QUERY["query"], organization_id=key.organization_id, response_bytes=len(body),
                  ports={"service": service.port, "bare": bare.port})
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
    return result


def summarize(measured: list[tuple[Round, Round, Round]], warmup: Counter) -> dict[str, Any]:
    """The figures of ``(service, bare, service at light load)`` rounds: medians, per-round
    lists, targets, verdict.

    Throughput comes from the saturating rounds (``users`` back to back), where latency is
    mostly queueing (Little's law: ``users / rps``); the hit latencies the target speaks of
    come from the light rounds (``latency_users``), where a request waits for nobody.
    """
    med = statistics.median
    per_round = {
        "service_rps": [s.rps for s, _, _ in measured], "bare_rps": [b.rps for _, b, _ in measured],
        "ratio": [s.rps / b.rps if b.rps else 0.0 for s, b, _ in measured],
        "hit_p50_ms": [light.percentiles(hits_only=True)[0] for _, _, light in measured],
        "hit_p95_ms": [light.percentiles(hits_only=True)[1] for _, _, light in measured],
        "hit_p95_ms_saturated": [s.percentiles(hits_only=True)[1] for s, _, _ in measured],
        "bare_p50_ms": [b.percentiles(hits_only=False)[0] for _, b, _ in measured],
        "bare_p95_ms": [b.percentiles(hits_only=False)[1] for _, b, _ in measured],
    }
    result: dict[str, Any] = {name: med(values) for name, values in per_round.items()}
    result["per_round"] = per_round
    rounds = [r for triple in measured for r in triple]
    result["x_cache"] = dict(sum((r.x_cache() for s, _, light in measured for r in (s, light)), Counter()))
    result["warmup_x_cache"] = dict(warmup)
    result["failures"] = {"service": sum(s.failures + light.failures for s, _, light in measured),
                          "bare": sum(b.failures for _, b, _ in measured)}
    result["locust_cpu_warning"] = any(r.cpu_warning for r in rounds)
    result["targets"] = TARGETS
    result["passed"] = meets_targets(result)
    return result


def meets_targets(result: dict[str, Any]) -> bool:
    return result["ratio"] >= TARGETS["ratio"] and result["hit_p95_ms"] < TARGETS["hit_p95_ms"]
