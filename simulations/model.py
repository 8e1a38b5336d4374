"""The system under test, assembled for a scenario: :func:`build_system` and :class:`System`.

The cache is the real :class:`~wedcache.cache.TieredCache` on a :class:`~simulations.clock.SimClock`:
the real memory tier (sized by the scenario and scaled by the sample rate, as SHARDS
requires), then Redis and PostgreSQL — modeled tiers calibrated from measurements
(``modeled``) or the real servers (``live``) — and a :class:`~wedcache.origin.SimulatedOrigin`.
A :class:`~wedcache.scaling.SeasonalScalingAutomator` applies the seasonal plan. With
``[cache] semantic`` a :class:`~wedcache.semantic.matcher.SemanticMatcher` is built as the
service builds one (:func:`~wedcache.assembly.build_semantic`), without pgvector: its memory
index stands for both vector stores, and the engine asks it after an exact miss.
"""
from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, time, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from wedcache.cache import TieredCache
from wedcache.origin import SimulatedOrigin
from wedcache.policy import Policy, merge, policy_to_dict
from wedcache.scaling import SeasonalScalingAutomator
from wedcache.tiers import Tier, tier_from_url
from wedcache.tiers.memory import MiB, MemoryTier
from wedcache.ttl import VendorCacheOptimizer

from . import tiers as _modeled  # noqa: F401  (registers modeled://)
from .clock import SimClock
from .latency import Calibration, LatencyModel, load_calibration
from .scenario import Scenario

if TYPE_CHECKING:
    from wedcache.semantic.matcher import SemanticMatcher

log = logging.getLogger(__name__)
BACKENDS = ("modeled", "live")


@dataclass
class System:
    """What the engine drives."""

    cache: TieredCache
    clock: SimClock
    memory: MemoryTier
    origin: SimulatedOrigin
    automator: SeasonalScalingAutomator
    memory_latency: LatencyModel | None
    """Modeled time of a memory lookup; ``None`` in a live run, where lookups are timed."""
    backends: str
    origin_concurrency: int | None = None
    """Computations the origin runs at once (``None``: unlimited)."""
    namespace: str = ""
    """Prefix of organization names; a live run isolates its entries with it."""
    semantic: "SemanticMatcher | None" = None
    """Near-match lookups after an exact miss (``[cache] semantic``); ``None``: exact keys only."""

    @property
    def live(self) -> bool:
        return self.backends == "live"

    def close(self) -> None:
        self.cache.close()


def start_of(scenario: Scenario) -> datetime:
    return datetime.combine(scenario.run.start_date, time(0), tzinfo=timezone.utc)


def build_system(scenario: Scenario, policy: Policy, *, backends: str = "modeled",
                 calibration: Calibration | Path | None = None) -> System:
    """The cache, origin and automator for ``scenario`` (``backends``: ``modeled`` or ``live``)."""
    if backends not in BACKENDS:
        raise ValueError(f"backends: must be one of {', '.join(BACKENDS)}, not {backends!r}")
    cal = calibration if isinstance(calibration, Calibration) else load_calibration(_calibration_path(scenario, calibration))
    clock, seed = SimClock(start_of(scenario)), scenario.run.seed
    memory = _memory_tier(scenario)
    ttl = VendorCacheOptimizer(policy, fixed_ttl=scenario.cache.ttl_seconds,
                               grace_seconds=scenario.cache.stale_while_revalidate_seconds)
    grace = max([ttl.grace_seconds((v,)) for v in policy.vendors], default=0.0)
    system_tiers, namespace = [memory], ""
    if backends == "live":
        namespace = f"sim-{uuid.uuid4().hex[:12]}-"
        system_tiers += _live_tiers(scenario, clock, grace)
    else:
        system_tiers += _modeled_tiers(scenario, clock, cal, seed, grace)
    cache = TieredCache(system_tiers, clock=clock, policy=policy, ttl=ttl)
    origin = SimulatedOrigin(clock, latency_median_ms=scenario.origin.latency_median_ms,
                             latency_p95_ms=scenario.origin.latency_p95_ms,
                             cost_per_call_usd=scenario.origin.cost_per_call_usd, seed=seed)
    sizes = memory.stats()
    automator = SeasonalScalingAutomator(policy, clock, memory, ttl, sizes["max_bytes"], sizes["max_entries"],
                                         enabled=scenario.cache.seasonal_scaling)
    memory_latency = None if backends == "live" else cal.model("memory", "get", seed)
    return System(cache, clock, memory, origin, automator, memory_latency, backends,
                  scenario.origin.concurrency, namespace, semantic_matcher(scenario, policy))


def semantic_matcher(scenario: Scenario, policy: Policy) -> "SemanticMatcher | None":
    """The matcher of ``policy``'s ``[semantic]`` table, enabled, at the scenario's threshold
    (when set), with no database (memory index only); ``None`` unless ``[cache] semantic``."""
    if not scenario.cache.semantic:
        return None
    from wedcache.assembly import build_semantic

    table = {"enabled": True}
    if scenario.cache.semantic_threshold is not None:
        table["threshold"] = scenario.cache.semantic_threshold
    return build_semantic(Policy.model_validate(merge(policy_to_dict(policy), {"semantic": table})))


def _calibration_path(scenario: Scenario, given: Path | None) -> Path | None:
    if given is not None:
        return Path(given)
    if scenario.cache.calibration is None:
        return None
    path = Path(scenario.cache.calibration)
    base = scenario.source.parent if scenario.source is not None else Path.cwd()
    return path if path.is_absolute() else base / path


def _memory_tier(scenario: Scenario) -> MemoryTier:
    """The memory budget scaled by the sample rate (a sampled cache sees the same miss ratio)."""
    rate = scenario.run.sample_rate
    return MemoryTier(max(1, int(scenario.cache.memory_mb * MiB * rate)),
                      max(1, int(scenario.cache.memory_entries * rate)), scenario.cache.eviction)


def _modeled_tiers(scenario: Scenario, clock: SimClock, cal: Calibration, seed: int, grace: float) -> list[Tier]:
    names = [name for name, on in (("redis", scenario.cache.redis), ("postgres", scenario.cache.postgres)) if on]
    return [tier_from_url(f"modeled://{name}?grace_seconds={grace}", clock=clock, calibration=cal,
                          seed=seed + 1 + index) for index, name in enumerate(names)]


def _live_tiers(scenario: Scenario, clock: SimClock, grace: float) -> list[Tier]:
    """The real Redis and PostgreSQL tiers (servers found or started as everywhere else)."""
    from wedcache.migrations import apply_migrations
    from wedcache.services import ensure_services
    from wedcache.tiers.postgres import PostgresTier
    from wedcache.tiers.redis import RedisTier

    found = ensure_services(progress=log.info)
    tiers: list[Tier] = []
    if scenario.cache.redis:
        tiers.append(RedisTier(found.redis_url, clock=clock, grace_seconds=grace))
    if scenario.cache.postgres:
        apply_migrations(found.database_url)
        tiers.append(PostgresTier(found.database_url, clock=clock))
    return tiers
