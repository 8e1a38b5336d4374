"""``wedcache gate run``: one bounded load test of the real service, evaluated against thresholds.

:func:`run_gate` serves through :func:`~wedcache.fleet.fleet` (one replica without a balancer,
or several behind one) and makes its key with :func:`~wedcache.service_bench.bench_key`: each
replica runs as ``python -m wedcache serve`` in its own process group on a free loopback port
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

**Distributed** (``Profile.replicas`` > 1 and/or ``Profile.locust_workers`` > 0). With
several replicas the session serves a :func:`~wedcache.fleet.fleet` (shared Redis and
PostgreSQL, each replica with the profile's workers), Locust's host is its loopback
balancer and each replica is warmed on its own; a session over one server is the same
:class:`Session` over a fleet of one. Every replica's ``/api/metrics`` is scraped and the deltas
summed (:func:`~wedcache.gate.measure.merge_buckets`), the CPU is summed over the replicas'
process trees, and the statistics come from the first replica (the database is shared).
With ``locust_workers`` N, Locust runs as one ``--master --headless --expect-workers N`` and N
``--worker`` processes on loopback (:func:`run_locust`), each in its own process group and
all killed afterwards; the master's CSV is read as a single run's, and its per-worker CSV
says what each worker sent.
"""
from __future__ import annotations

import importlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlsplit

import httpx

from ..fleet import Fleet, fleet
from ..service_bench import SERVE_ARGV, bench_key
from .checks import Check, Checked, evaluate, histogram_quantile, policy_thresholds
from .errors import GateError
from .measure import (WORKERS_CSV_SUFFIX, Buckets, LocustStats, answered, bucket_delta, merge_buckets,
                      read_locust_stats, read_worker_requests, tier_buckets)

REPO_ROOT = Path(__file__).resolve().parents[2]
LOCUSTFILE = REPO_ROOT / "loadtests" / "locustfile.py"
THROUGHPUT_SHARE = 0.95
"""The ``throughput`` check's target is this share of the requested rate (ramp-up and pacing
jitter keep a run just under it)."""
WORKERS_CONNECT_S = 30
"""How long a Locust master waits for its workers before it gives up (``--expect-workers-max-wait``)."""
LOCUST_GRACE_S = 60
"""How long past ``duration_s`` (and the workers' connecting) Locust may take before it is killed."""


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
    replicas: int = 1
    """Service replicas (``wedcache serve --workers workers`` each); above 1 a fleet behind a balancer."""
    locust_workers: int = 0
    """Locust worker processes under one master; 0: one local Locust process."""


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
class GateResult(Checked):
    profile: Profile
    stats: LocustStats
    tier_ms: dict[str, float | None]
    checks: list[Check]
    server_statistics: dict[str, Any]
    port: int
    server_cpu_seconds: float | None = None
    """CPU the server's processes (every worker of every replica) used during the load: the load
    tests' service-time figure (:meth:`~wedcache.tuning.replicas.ServiceCalibration.from_gate`)."""
    replica_queries: list[int] = field(default_factory=list)
    """Queries each replica answered during the load (its histogram's count)."""

    @property
    def cpu_ms_per_request(self) -> float | None:
        if self.server_cpu_seconds is None or not self.stats.requests:
            return None
        return self.server_cpu_seconds * 1000 / self.stats.requests

    def as_json(self) -> dict[str, Any]:
        p = self.profile
        return {"passed": self.passed, "profile": p.name, "rps": self.stats.rps, "users": p.users,
                "duration_s": p.duration_s, "requests": self.stats.requests, "failures": self.stats.failures,
                "hit_rate": self.stats.hit_rate, "latency_ms": self.stats.latency_ms,
                "checks": [c.as_dict() for c in self.checks], "error_rate": self.stats.error_rate,
                "tier_p95_ms": self.tier_ms, "x_cache": self.stats.x_cache, "workers": p.workers,
                "rate": {"requested": p.rate, "achieved": self.stats.rps},
                "think_time_s": list(p.think_time), "distinct_queries": p.distinct, "origin_ms": list(p.origin_ms),
                "server_cpu_ms_per_request": self.cpu_ms_per_request, "server_statistics": self.server_statistics,
                "distributed": {"locust_workers": p.locust_workers, "replicas": p.replicas,
                                "replica_queries": self.replica_queries,
                                "worker_requests": self.stats.worker_requests}}


def resolve_profile(name: str, **overrides: Any) -> Profile:
    """The named profile with the given fields replaced (``None`` values are ignored)."""
    if name not in PROFILES:
        raise GateError(f"--profile {name!r}: choose one of {', '.join(PROFILES)}")
    return replace(PROFILES[name], **{k: v for k, v in overrides.items() if v is not None})


def origin_env(profile: Profile) -> dict[str, str]:
    """The simulated origin's latency, for the server's environment."""
    return {"AI_CACHE_ORIGIN_LATENCY_MEDIAN_MS": str(profile.origin_ms[0]),
            "AI_CACHE_ORIGIN_LATENCY_P95_MS": str(profile.origin_ms[1])}


def with_rate_check(thresholds: dict[str, float], profile: Profile) -> dict[str, float]:
    """``thresholds`` plus ``throughput >= THROUGHPUT_SHARE * rate`` when the profile asks for a rate
    (a ``throughput`` the caller set wins)."""
    if profile.rate is None:
        return thresholds
    return {"throughput": round(THROUGHPUT_SHARE * profile.rate, 3), **thresholds}


@dataclass
class Session:
    """A served, warmed service (one server or a fleet) that Locust runs are measured against."""

    target: Fleet
    secret: str

    def measure(self, profile: Profile, thresholds: dict[str, float]) -> GateResult:
        """One headless Locust run of ``profile`` and its checks (the histograms count only this run)."""
        replicas = self.target.replica_urls
        before, cpu_before = [scrape_buckets(url) for url in replicas], self.cpu_seconds()
        stats = run_locust(self.target.url, self.secret, profile)
        cpu = self.cpu_seconds() - cpu_before
        deltas = [bucket_delta(scrape_buckets(url), b) for url, b in zip(replicas, before)]
        tier_ms = tier_p95(merge_buckets(deltas))
        statistics = fetch_statistics(replicas[0], self.secret)
        actuals = {"hit_rate": stats.hit_rate, "end_to_end.p95": stats.latency_ms["p95"],
                   "end_to_end.p99": stats.latency_ms["p99"], "error_rate": stats.error_rate, "throughput": stats.rps,
                   **{f"response_time.{tier}.p95": ms for tier, ms in tier_ms.items()}}
        checks = evaluate(with_rate_check(thresholds, profile), actuals)
        return GateResult(profile, stats, tier_ms, checks, statistics, urlsplit(self.target.url).port, cpu,
                          replica_queries=[answered(d) for d in deltas])

    def cpu_seconds(self) -> float:
        return sum(process_tree_cpu_seconds(pid) for pid in self.target.pids)


@contextmanager
def served(redis_url: str, database_url: str, profile: Profile, serve_argv: tuple[str, ...]) -> Iterator[Fleet]:
    """``profile.replicas`` replicas; above one, behind the fleet's balancer."""
    with fleet(redis_url, database_url, profile.replicas, profile.workers, origin_env(profile),
               balancer=profile.replicas > 1, serve_argv=serve_argv) as running:
        yield running


@contextmanager
def gate_session(redis_url: str, database_url: str, profile: Profile,
                 serve_argv: tuple[str, ...] = SERVE_ARGV) -> Iterator[Session]:
    """Serve with ``profile``'s replicas, workers and origin, warm the cache, and stop it all
    afterwards; a server that does not start (or stops answering) is a :class:`GateError`."""
    _, secret = bench_key(database_url)
    try:
        with served(redis_url, database_url, profile, serve_argv) as target:
            for url in target.replica_urls:  # each replica's memory tier, as one server's
                warm(url, secret, profile)
            yield Session(target, secret)
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


def workload_args(profile: Profile) -> list[str]:
    """The locustfile's arguments; workers take them too (they build the catalogue before the master
    sends its options) and ``--users``, which their pacing divides by and Locust does not send."""
    return ["--users", str(profile.users), "--think-time", *(str(t) for t in profile.think_time),
            "--distinct", str(profile.distinct), "--target-rps", str(profile.rate or 0)]


def locust_command(url: str, profile: Profile, csv_prefix: Path, master_port: int | None = None) -> list[str]:
    """The headless local runner, or with ``master_port`` the headless master expecting
    ``profile.locust_workers`` workers on it."""
    master = [] if master_port is None else [
        "--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(master_port),
        "--expect-workers", str(profile.locust_workers), "--expect-workers-max-wait", str(WORKERS_CONNECT_S)]
    return [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--host", url, *master,
            "--spawn-rate", str(profile.users), "--run-time", f"{profile.duration_s}s",
            "--csv", str(csv_prefix), "--only-summary", "--loglevel", "WARNING", "--exit-code-on-error", "0",
            *workload_args(profile)]


def worker_command(profile: Profile, master_port: int) -> list[str]:
    return [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--worker", "--master-host", "127.0.0.1",
            "--master-port", str(master_port), "--loglevel", "WARNING", *workload_args(profile)]


def locust_env(secret: str) -> dict[str, str]:
    env = {**os.environ, "WEDCACHE_API_KEY": secret}
    for name in ("WEDCACHE_LOAD_SHAPE", "WEDCACHE_TARGET_RPS"):
        env.pop(name, None)
    return env


def run_locust(url: str, secret: str, profile: Profile) -> LocustStats:
    """Headless Locust for ``duration_s`` (one process, or a master and ``locust_workers`` workers);
    it stops by itself (and is killed after a grace)."""
    with tempfile.TemporaryDirectory(prefix="wedcache-gate-") as scratch:
        prefix = Path(scratch) / "gate"
        if profile.locust_workers:
            run_distributed(url, profile, prefix, locust_env(secret))
        else:
            run_processes([locust_command(url, profile, prefix)], locust_env(secret), Path(scratch),
                          profile.duration_s + LOCUST_GRACE_S)
        stats = read_locust_stats(Path(f"{prefix}_stats.csv"))
        if profile.locust_workers:
            stats.worker_requests = read_worker_requests(Path(f"{prefix}{WORKERS_CSV_SUFFIX}"))
        stats.csv_files = {path.name: path.read_text(encoding="utf-8") for path in sorted(Path(scratch).glob("*.csv"))}
        return stats


def run_distributed(url: str, profile: Profile, prefix: Path, env: dict[str, str]) -> None:
    """A headless master and ``locust_workers`` workers on a free loopback port; the master
    quits its workers when the run time is up."""
    from ..services import free_port

    port = free_port()
    commands = [locust_command(url, profile, prefix, master_port=port),
                *(worker_command(profile, port) for _ in range(profile.locust_workers))]
    run_processes(commands, env, prefix.parent, profile.duration_s + WORKERS_CONNECT_S + LOCUST_GRACE_S)


def run_processes(commands: list[list[str]], env: dict[str, str], cwd: Path, timeout_s: float) -> None:
    """Run ``commands`` at once, each in its own process group, until the first one exits (the
    others follow it); :class:`GateError` when any fails or they take over ``timeout_s``. Every
    process group is killed afterwards, whatever happened."""
    logs = [tempfile.TemporaryFile(dir=cwd) for _ in commands]
    processes: list[subprocess.Popen] = []
    try:
        for command, log in zip(commands, logs):
            processes.append(subprocess.Popen(command, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                                              stdout=subprocess.DEVNULL, stderr=log, start_new_session=True))
        deadline = time.monotonic() + timeout_s
        for process, log in zip(processes, logs):
            try:
                code = process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                raise GateError(f"Locust did not stop within {timeout_s:g} s") from None
            if code != 0:
                log.seek(0)
                raise GateError(f"Locust failed ({code}):\n{log.read().decode(errors='replace')[-3000:]}")
    finally:
        for process in processes:
            kill_group(process)
        for log in logs:
            log.close()


def kill_group(process: subprocess.Popen) -> None:
    """SIGKILL ``process``'s process group (a no-op once it is gone) and reap it."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    process.wait()
