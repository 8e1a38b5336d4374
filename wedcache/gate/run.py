"""``wedcache gate run``: one bounded load test of the real service, evaluated against thresholds.

:func:`run_gate` reuses :mod:`wedcache.service_bench`'s :class:`~wedcache.service_bench.Server`,
:func:`~wedcache.service_bench.serving` and :func:`~wedcache.service_bench.bench_key`: the
service runs as ``python -m wedcache serve`` in its own process group on a free loopback port
and is always stopped. The cache is warmed with the locustfile's own workload generator
(:class:`loadtests.locustfile.Traffic`, same ``--distinct`` and seed), then headless Locust runs
``loadtests/locustfile.py`` for ``duration_s`` with ``--csv``. ``/api/metrics`` is scraped
after the warm-up and after the load, so the per-tier histogram counts only the load.

A :class:`Profile` fixes workers, users, duration, think time, catalogue size, the origin's
simulated latency (passed to the server through ``AI_CACHE_ORIGIN_LATENCY_*``) and its own
thresholds. With a ``rate`` (``--rate``) the users run at constant throughput (the
locustfile's ``--target-rps``: each user paced at ``rate / users`` requests/s) and a
``throughput`` check asks for at least :data:`THROUGHPUT_SHARE` of it; without one they run
at the profile's think time, as fast as they go.

:func:`gate_session` serves and warms once; :meth:`Session.measure` is one Locust run and its
checks, so :func:`run_gate` is a session with one measurement and
:func:`~wedcache.gate.capacity.run_capacity` a session with a stepped series of them.
"""
from __future__ import annotations

import importlib
import os
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator

import httpx

from ..service_bench import Server, bench_key, serving
from .checks import Check, evaluate, histogram_quantile, policy_thresholds
from .errors import GateError
from .measure import Buckets, LocustStats, bucket_delta, read_locust_stats, tier_buckets

REPO_ROOT = Path(__file__).resolve().parents[2]
LOCUSTFILE = REPO_ROOT / "loadtests" / "locustfile.py"
SERVE_ARGV = (sys.executable, "-m", "wedcache", "serve")
THROUGHPUT_SHARE = 0.95
"""The ``throughput`` check's target is this share of the requested rate (ramp-up and pacing
jitter keep a run just under it)."""


@dataclass(frozen=True)
class Profile:
    name: str
    workers: int
    users: int
    duration_s: int
    think_time: tuple[float, float]
    distinct: int
    warm_queries: int
    origin_ms: tuple[float, float]
    """The simulated origin's median and p95 latency."""
    thresholds: dict[str, float] = field(default_factory=dict)
    rate: float | None = None


CI_THRESHOLDS = {"hit_rate": 0.5, "end_to_end.p95": 250.0, "end_to_end.p99": 500.0,
                 "response_time.memory.p95": 25.0, "response_time.redis.p95": 50.0,
                 "response_time.postgres.p95": 250.0, "error_rate": 0.01}
"""Loose on purpose: a noisy 2-core box running the server, Locust and both databases meets them."""
FULL_THRESHOLDS = {**policy_thresholds(), "end_to_end.p95": 10.0}
"""The policy's ``[sla]``, with the seed's end-to-end p95 < 10 ms for the (mostly hit) query endpoint."""
PROFILES = {
    "ci": Profile("ci", workers=2, users=8, duration_s=15, think_time=(0.02, 0.08), distinct=1000,
                  warm_queries=300, origin_ms=(0.0, 0.0), thresholds=CI_THRESHOLDS),
    "full": Profile("full", workers=4, users=100, duration_s=120, think_time=(0.0, 0.0), distinct=10_000,
                    warm_queries=2000, origin_ms=(20.0, 80.0), thresholds=FULL_THRESHOLDS, rate=1000.0),
}


@dataclass
class GateResult:
    profile: Profile
    stats: LocustStats
    tier_ms: dict[str, float | None]
    checks: list[Check]
    server_statistics: dict[str, Any]
    port: int
    server_cpu_seconds: float | None = None
    """CPU the server's processes (every worker) used during the load: the load tests'
    service-time figure (:meth:`~wedcache.tuning.replicas.ServiceCalibration.from_gate`)."""

    @property
    def cpu_ms_per_request(self) -> float | None:
        if self.server_cpu_seconds is None or not self.stats.requests:
            return None
        return self.server_cpu_seconds * 1000 / self.stats.requests

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    def failed(self) -> list[Check]:
        return [check for check in self.checks if not check.passed]

    def as_json(self) -> dict[str, Any]:
        p = self.profile
        return {"passed": self.passed, "profile": p.name, "rps": self.stats.rps, "users": p.users,
                "duration_s": p.duration_s, "requests": self.stats.requests, "failures": self.stats.failures,
                "hit_rate": self.stats.hit_rate, "latency_ms": self.stats.latency_ms,
                "checks": [c.as_dict() for c in self.checks], "error_rate": self.stats.error_rate,
                "tier_p95_ms": self.tier_ms, "x_cache": self.stats.x_cache, "workers": p.workers,
                "rate": {"requested": p.rate, "achieved": self.stats.rps},
                "think_time_s": list(p.think_time), "distinct_queries": p.distinct, "origin_ms": list(p.origin_ms),
                "server_cpu_ms_per_request": self.cpu_ms_per_request, "server_statistics": self.server_statistics}


def resolve_profile(name: str, **overrides: Any) -> Profile:
    """The named profile with the given fields replaced (``None`` values are ignored)."""
    if name not in PROFILES:
        raise GateError(f"--profile {name!r}: choose one of {', '.join(PROFILES)}")
    return replace(PROFILES[name], **{k: v for k, v in overrides.items() if v is not None})


def server_env(profile: Profile, redis_url: str, database_url: str) -> dict[str, str]:
    from ..metrics import MULTIPROC_DIR_ENV
    from ..services import DATABASE_ENV, REDIS_ENV

    env = {**os.environ, REDIS_ENV: redis_url, DATABASE_ENV: database_url, "PYTHONUNBUFFERED": "1",
           "AI_CACHE_ORIGIN_LATENCY_MEDIAN_MS": str(profile.origin_ms[0]),
           "AI_CACHE_ORIGIN_LATENCY_P95_MS": str(profile.origin_ms[1])}
    env.pop(MULTIPROC_DIR_ENV, None)  # `serve` makes its own for several workers
    return env


def with_rate_check(thresholds: dict[str, float], profile: Profile) -> dict[str, float]:
    """``thresholds`` plus ``throughput >= THROUGHPUT_SHARE * rate`` when the profile asks for a rate
    (a ``throughput`` the caller set wins)."""
    if profile.rate is None:
        return thresholds
    return {"throughput": round(THROUGHPUT_SHARE * profile.rate, 3), **thresholds}


@dataclass
class Session:
    """A served, warmed service that Locust runs are measured against."""

    server: Server
    secret: str

    def measure(self, profile: Profile, thresholds: dict[str, float]) -> GateResult:
        """One headless Locust run of ``profile`` and its checks (the histogram counts only this run)."""
        url = self.server.url
        before, cpu_before = scrape_buckets(url), process_tree_cpu_seconds(self.server.process.pid)
        stats = run_locust(url, self.secret, profile)
        cpu = process_tree_cpu_seconds(self.server.process.pid) - cpu_before
        tier_ms = tier_p95(bucket_delta(scrape_buckets(url), before))
        statistics = fetch_statistics(url, self.secret)
        actuals = {"hit_rate": stats.hit_rate, "end_to_end.p95": stats.latency_ms["p95"],
                   "end_to_end.p99": stats.latency_ms["p99"], "error_rate": stats.error_rate, "throughput": stats.rps,
                   **{f"response_time.{tier}.p95": ms for tier, ms in tier_ms.items()}}
        checks = evaluate(with_rate_check(thresholds, profile), actuals)
        return GateResult(profile, stats, tier_ms, checks, statistics, self.server.port, cpu)


@contextmanager
def gate_session(redis_url: str, database_url: str, profile: Profile,
                 serve_argv: tuple[str, ...] = SERVE_ARGV) -> Iterator[Session]:
    """Serve with ``profile``'s workers and origin, warm the cache, and stop it all afterwards;
    a server that does not start (or stops answering) is a :class:`GateError`."""
    from ..services import free_port

    _, secret = bench_key(database_url)
    server = Server("service", list(serve_argv), free_port(), "/healthz")
    try:
        with serving(server, profile.workers, server_env(profile, redis_url, database_url)):
            warm(server.url, secret, profile)
            yield Session(server, secret)
    except (RuntimeError, httpx.HTTPError) as error:
        raise GateError(f"the gate run could not be done: {error}") from None


def run_gate(redis_url: str, database_url: str, profile: Profile, thresholds: dict[str, float],
             serve_argv: tuple[str, ...] = SERVE_ARGV) -> GateResult:
    """Serve, warm, load, measure and evaluate (see the module docstring); raises :class:`GateError`."""
    with gate_session(redis_url, database_url, profile, serve_argv) as session:
        return session.measure(profile, thresholds)


def process_tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` and its live descendants (psutil)."""
    import psutil

    root = psutil.Process(pid)
    total = 0.0
    for process in (root, *root.children(recursive=True)):
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def tier_p95(tiers: Buckets) -> dict[str, float | None]:
    return {tier: histogram_quantile(0.95, list(bounds.items())) for tier, bounds in sorted(tiers.items())}


# --- steps -----------------------------------------------------------------------------------

def workload(profile: Profile) -> Any:
    """The locustfile's :class:`Traffic`, imported without gevent's monkey patching."""
    previous = os.environ.get("LOCUST_SKIP_MONKEY_PATCH")
    os.environ["LOCUST_SKIP_MONKEY_PATCH"] = "1"
    try:
        module = importlib.import_module("loadtests.locustfile")
    finally:
        if previous is None:
            os.environ.pop("LOCUST_SKIP_MONKEY_PATCH", None)
    return module.Traffic(profile.distinct, seed=7)


def warm(url: str, secret: str, profile: Profile) -> None:
    """``warm_queries`` queries drawn by popularity, as the users will draw them."""
    traffic = workload(profile)
    rng = traffic.user_rng()
    with httpx.Client(base_url=url, headers={"X-API-Key": secret}, timeout=30.0) as client:
        for _ in range(profile.warm_queries):
            client.post("/api/ai-cache/query", json=traffic.query_body(rng)).raise_for_status()


def scrape_buckets(url: str) -> Buckets:
    response = httpx.get(url + "/api/metrics", timeout=10.0)
    response.raise_for_status()
    return tier_buckets(response.text)


def fetch_statistics(url: str, secret: str) -> dict[str, Any]:
    response = httpx.get(url + "/api/ai-cache/statistics", params={"timeRange": "1h"},
                         headers={"X-API-Key": secret}, timeout=10.0)
    response.raise_for_status()
    return response.json()


def locust_command(url: str, profile: Profile, csv_prefix: Path) -> list[str]:
    return [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--host", url,
            "--users", str(profile.users), "--spawn-rate", str(profile.users), "--run-time", f"{profile.duration_s}s",
            "--csv", str(csv_prefix), "--only-summary", "--loglevel", "WARNING", "--exit-code-on-error", "0",
            "--think-time", *(str(t) for t in profile.think_time), "--distinct", str(profile.distinct),
            "--target-rps", str(profile.rate or 0)]


def run_locust(url: str, secret: str, profile: Profile) -> LocustStats:
    """Headless Locust for ``duration_s``; it stops by itself (and is killed after a grace)."""
    with tempfile.TemporaryDirectory(prefix="wedcache-gate-") as scratch:
        prefix = Path(scratch) / "gate"
        env = {**os.environ, "WEDCACHE_API_KEY": secret}
        for name in ("WEDCACHE_LOAD_SHAPE", "WEDCACHE_TARGET_RPS"):
            env.pop(name, None)
        try:
            done = subprocess.run(locust_command(url, profile, prefix), env=env, cwd=scratch, capture_output=True,
                                  text=True, timeout=profile.duration_s + 60)
        except subprocess.TimeoutExpired:
            raise GateError(f"Locust did not stop within {profile.duration_s + 60} s") from None
        if done.returncode != 0:
            raise GateError(f"Locust failed ({done.returncode}):\n{done.stderr[-3000:]}")
        stats = read_locust_stats(Path(f"{prefix}_stats.csv"))
        stats.csv_files = {path.name: path.read_text(encoding="utf-8") for path in sorted(Path(scratch).glob("*.csv"))}
        return stats
