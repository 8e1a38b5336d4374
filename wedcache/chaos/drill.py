"""The fault drill (``wedcache chaos run``): :func:`run_drill` and its :class:`DrillPlan`.

The drill brings everything it breaks: its own Redis and PostgreSQL
(:func:`~wedcache.chaos.faults.private_backends`), migrated, with an API key
(:func:`~wedcache.service_bench.bench_key`); an origin that counts its calls
(:class:`~wedcache.chaos.origin.CountingOrigin`); and a fleet of two ``wedcache serve``
replicas behind the loopback balancer (:func:`~wedcache.fleet.fleet`). It warms the
catalogue through every replica, notes the entries PostgreSQL holds, then under steady
bounded load (:class:`~wedcache.chaos.load.SteadyLoad`):

1. ``before_s`` of normal service (the prior hit rate);
2. Redis stopped for ``outage_s`` and restarted, then load until every replica uses it again;
3. the same for PostgreSQL;
4. replica 0 SIGKILLed for ``replica_down_s``, then restarted.

After the load, the PostgreSQL entries are compared with those before, and a stampede of
``stampede`` concurrent requests for one new query goes through the balancer; the origin's
counter says how many calls it cost. :mod:`~wedcache.chaos.recovery` turns the samples into
the figures, :mod:`~wedcache.chaos.checks` into the verdict.
"""
from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import httpx
import psycopg

from ..errors import WedcacheError
from ..gate.checks import Check, Checked
from .checks import drill_checks
from .faults import Backends, Outage, outage, private_backends
from .load import Sample, SteadyLoad, Workload, stampede
from .origin import CountingOrigin
from .probe import tier_ready_at
from .recovery import hit_rate_recovered_at, recovery_seconds, window

SETTLE_SECONDS = 2.0
"""Load kept up after a tier is back or a replica restarted, so the windows after it have samples."""


class DrillError(WedcacheError):
    """The drill could not be done (a server did not start, the warm-up failed…)."""


@dataclass(frozen=True)
class DrillPlan:
    name: str
    before_s: float
    outage_s: float
    after_s: float
    """Load after each restart (longer when the tier takes longer to come back)."""
    replica_down_s: float
    rate: float
    concurrency: int
    catalogue: int
    fresh_every: int
    stampede: int
    origin_latency_s: float
    """Each origin call's latency: long enough that a stampede's requests meet a computation in flight."""
    replicas: int = 2
    workers: int = 1
    ready_timeout_s: float = 30.0


PLANS = {
    "full": DrillPlan("full", before_s=10, outage_s=10, after_s=12, replica_down_s=5, rate=100, concurrency=8,
                      catalogue=200, fresh_every=10, stampede=1000, origin_latency_s=0.2),
    "short": DrillPlan("short", before_s=3, outage_s=2, after_s=6, replica_down_s=2, rate=40, concurrency=4,
                       catalogue=40, fresh_every=10, stampede=100, origin_latency_s=0.2),
}


def resolve_plan(name: str, **overrides: Any) -> DrillPlan:
    """The named plan with the given fields replaced (``None`` values are ignored)."""
    if name not in PLANS:
        raise DrillError(f"plan {name!r}: choose one of {', '.join(PLANS)}")
    return replace(PLANS[name], **{k: v for k, v in overrides.items() if v is not None})


@dataclass
class TierOutage:
    """One backend outage and what the load saw around it."""

    outage: Outage
    origin_calls: int
    ready_at: float | None
    hit_rate_at: float | None = None
    recovery_seconds: float | None = None


@dataclass
class DrillResult(Checked):
    plan: DrillPlan
    samples: list[Sample]
    started_at: float
    outages: dict[str, TierOutage]
    replica_kill: dict[str, float]
    rows_before: int
    rows_after: int
    rows_lost: int
    stampede_samples: list[Sample]
    stampede_origin_calls: int
    stampede_spread: dict[int, int]
    origin_calls_total: int
    hit_rate_before: float | None = None
    checks: list[Check] = field(default_factory=list)

    def figures(self) -> dict[str, Any]:
        """The ``chaos.json`` fields (without ``checks``)."""
        every = window(self.samples + self.stampede_samples)
        redis, postgres = self.outages["redis"], self.outages["postgres"]
        return {"requests": every.requests, "errors_5xx": every.errors_5xx, "errors_other": every.errors_other,
                "hit_rate_before": self.hit_rate_before,
                "hit_rate_during_redis_outage": window(self.samples, redis.outage.down_at,
                                                       redis.outage.up_at).hit_rate,
                "recovery_seconds_redis": redis.recovery_seconds,
                "recovery_seconds_postgres": postgres.recovery_seconds,
                "origin_calls_during_outage": redis.origin_calls + postgres.origin_calls,
                "rows_before": self.rows_before, "rows_after": self.rows_after,
                "stampede_origin_calls": self.stampede_origin_calls}

    def phases(self) -> dict[str, dict[str, Any]]:
        """Per phase: its seconds on the load's clock and its :class:`~wedcache.chaos.recovery.Window`."""
        marks = [("before", self.started_at, self.outages["redis"].outage.stop_at)]
        for tier, next_at in (("redis", self.outages["postgres"].outage.stop_at),
                              ("postgres", self.replica_kill["killed_at"])):
            o = self.outages[tier].outage
            marks += [(f"{tier} down", o.stop_at, o.up_at), (f"after {tier}", o.up_at, next_at)]
        kill = self.replica_kill
        marks += [("replica down", kill["killed_at"], kill["back_at"]),
                  ("after replica", kill["back_at"], kill["load_end"])]
        return {name: {"from_s": start - self.started_at, "to_s": end - self.started_at,
                       **window(self.samples, start, end).as_dict()} for name, start, end in marks}


def stored_keys(database_url: str) -> set[str]:
    """Every cache key the PostgreSQL tier holds."""
    with psycopg.connect(database_url, autocommit=True, connect_timeout=5) as conn:
        return {row[0] for row in conn.execute("SELECT cache_key FROM ai_cache_entries")}


def warm(replica_urls: list[str], secret: str, workload: Workload) -> None:
    """Ask every catalogue query through every replica (the first computes, the others promote)."""
    for url in replica_urls:
        with httpx.Client(base_url=url, headers={"X-API-Key": secret}, timeout=30.0) as client:
            for body in workload.catalogue():
                client.post("/api/ai-cache/query", json=body).raise_for_status()


def run_drill(plan: DrillPlan, progress: Callable[[str], None] = lambda message: None) -> DrillResult:
    """Run the whole drill (see the module docstring); raises :class:`DrillError` when it cannot."""
    from ..fleet import fleet
    from ..service_bench import bench_key

    try:
        with private_backends() as backends:
            progress(f"drill servers: redis {backends.redis_url}, postgres {backends.database_url}")
            _, secret = bench_key(backends.database_url)
            with CountingOrigin(plan.origin_latency_s).running() as origin, \
                    fleet(backends.redis_url, backends.database_url, plan.replicas, plan.workers,
                          env=origin.env()) as running:
                progress(f"fleet: {', '.join(running.replica_urls)} behind {running.url}")
                return _drill(plan, backends, origin, running, secret, progress)
    except (WedcacheError, RuntimeError, OSError, httpx.HTTPError, psycopg.Error) as error:
        if isinstance(error, DrillError):
            raise
        raise DrillError(f"the drill could not be done: {error}") from error


def _drill(plan: DrillPlan, backends: Backends, origin: CountingOrigin, running: Any, secret: str,
           progress: Callable[[str], None]) -> DrillResult:
    workload = Workload(plan.catalogue, plan.fresh_every)
    origin.latency_seconds = 0.0  # the warm-up measures nothing: no need to wait for the origin
    warm(running.replica_urls, secret, workload)
    origin.latency_seconds = plan.origin_latency_s
    before_keys = stored_keys(backends.database_url)
    progress(f"warmed {plan.catalogue} queries; PostgreSQL holds {len(before_keys)} entries")
    load = SteadyLoad(running.url, secret, workload, rate=plan.rate, concurrency=plan.concurrency).start()
    started_at = time.monotonic()
    try:
        time.sleep(plan.before_s)
        outages = {}
        for tier, server in (("redis", backends.redis), ("postgres", backends.postgres)):
            progress(f"stopping {tier} for {plan.outage_s:g} s")
            outages[tier] = _tier_outage(plan, tier, server, origin, running.replica_urls)
            progress(f"{tier} back; every replica used it again "
                     + (f"{outages[tier].ready_at - outages[tier].outage.up_at:.1f} s after the restart"
                        if outages[tier].ready_at else f"not within {plan.ready_timeout_s:g} s"))
        replica_kill = _replica_kill(plan, running, progress)
    finally:
        samples = load.stop()
    replica_kill["load_end"] = time.monotonic()
    after_keys = stored_keys(backends.database_url)
    result = _stampede_and_result(plan, running, secret, workload, origin, samples, started_at, outages,
                                  replica_kill, before_keys, after_keys)
    progress(f"stampede: {plan.stampede} concurrent requests, {result.stampede_origin_calls} origin call(s)")
    return result


def _tier_outage(plan: DrillPlan, tier: str, server: Any, origin: CountingOrigin, urls: list[str]) -> TierOutage:
    calls = origin.calls
    done = outage(server, plan.outage_s)
    during = origin.calls - calls
    ready_at = tier_ready_at(urls, tier, plan.ready_timeout_s)
    settle_until = max(done.up_at + plan.after_s, (ready_at or time.monotonic()) + SETTLE_SECONDS)
    time.sleep(max(0.0, settle_until - time.monotonic()))
    return TierOutage(done, during, ready_at)


def _replica_kill(plan: DrillPlan, running: Any, progress: Callable[[str], None]) -> dict[str, float]:
    progress(f"killing replica 0 for {plan.replica_down_s:g} s")
    killed_at = time.monotonic()
    running.kill(0)
    time.sleep(plan.replica_down_s)
    running.restart(0)
    back_at = time.monotonic()
    progress(f"replica 0 answers again ({back_at - killed_at:.1f} s after the kill)")
    time.sleep(SETTLE_SECONDS)
    return {"killed_at": killed_at, "back_at": back_at}


def _stampede_and_result(plan: DrillPlan, running: Any, secret: str, workload: Workload, origin: CountingOrigin,
                         samples: list[Sample], started_at: float, outages: dict[str, TierOutage],
                         replica_kill: dict[str, float], before_keys: set[str], after_keys: set[str]) -> DrillResult:
    connections, calls = Counter(running.balancer.connections), origin.calls
    hits = stampede(running.url, secret, workload.fresh("stampede"), plan.stampede)
    spread = dict(Counter(running.balancer.connections) - connections)
    result = DrillResult(plan, samples, started_at, outages, replica_kill, len(before_keys), len(after_keys),
                         len(before_keys - after_keys), hits, origin.calls - calls, spread, origin.calls)
    result.hit_rate_before = window(samples, started_at, outages["redis"].outage.stop_at).hit_rate
    for tier_outage in outages.values():
        restart = tier_outage.outage.up_at
        tier_outage.hit_rate_at = hit_rate_recovered_at(samples, restart, result.hit_rate_before or 0.0)
        tier_outage.recovery_seconds = recovery_seconds(restart, tier_outage.hit_rate_at, tier_outage.ready_at)
    result.checks = drill_checks({**result.figures(), "rows_lost": result.rows_lost})
    return result
