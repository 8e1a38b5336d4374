"""The effective configuration, reviewed: :func:`review_config`.

Every ``AI_CACHE_*`` setting as the process reads it (URL passwords and secrets redacted),
the policy's figures per season, market tier and vendor type, and a warning for each risky
value. The memory check: a season *needs* the market tiers' combined ``cacheSize`` (the
policy's baseline) times its ``cache_size_multiplier``; its *budget* is
``AI_CACHE_MEMORY_SIZE_MB`` times that multiplier when seasonal scaling is on, else the
plain budget. Other checks: seasonal scaling off while seasons differ, TTL factors (a busy
season that lengthens TTLs, factors far from 1, no jitter, a grace longer than the TTL),
retention (beyond the source document's 7 years, or shorter than a month: audit rows gone
before the monthly compliance audit), security and monitoring switches. JSON shape::

    {"at", "currentSeason", "policyFile",
     "settings": {"AI_CACHE_<NAME>": value, ...},
     "seasons": [{"season", "current", "trafficMultiplier", "cacheSizeMultiplier", "ttlAdjustmentFactor",
                  "memoryBudgetBytes", "memoryNeedBytes", "short"}],
     "marketTiers": [{"marketTier", "cacheSizeBytes", "ttlMultiplier", "priority"}],
     "vendors": [{"vendorType", "baseTtlSeconds", "volatilityFactor", "staleWhileRevalidateSeconds",
                  "longestTtlSeconds"}],
     "warnings": [{"setting", "level", "message"}]}       # level: "warning" or "info"
"""
from __future__ import annotations

from typing import Any, Callable, Iterator

from ..clock import Clock, today
from ..config import ENV_PREFIX, Settings
from ..policy import Policy
from ..services import redact
from .db import iso

SECRETS = ("encryption_key", "origin_api_key")
"""Settings printed as ``***`` when set."""
URLS = ("redis_url", "database_url", "origin_url")
"""Settings printed with their password redacted."""
SEVEN_YEARS_DAYS = 2555
"""The source document's retention (``AI_CACHE_GDPR_RETENTION_DAYS=2555 # 7 years``)."""
AUDIT_PERIOD_DAYS = 31
"""The source document's compliance audit runs monthly."""
TTL_FACTOR_RANGE = (0.5, 2.0)

Warning_ = dict[str, str]


def review_config(settings: Settings, policy: Policy, clock: Clock) -> dict[str, Any]:
    """Settings, policy figures and warnings (see the module docstring)."""
    season = policy.season_of(today(clock))
    seasons = _seasons(settings, policy, season)
    return {"at": iso(clock.now()), "currentSeason": season,
            "policyFile": str(settings.policy_file) if settings.policy_file else None,
            "settings": effective_settings(settings), "seasons": seasons,
            "marketTiers": [{"marketTier": name, "cacheSizeBytes": conf.cache_size_bytes,
                             "ttlMultiplier": conf.ttlMultiplier, "priority": conf.priority}
                            for name, conf in policy.market_tiers.items()],
            "vendors": _vendors(policy),
            "warnings": [w for check in CHECKS for w in check(settings, policy, seasons)]}


def effective_settings(settings: Settings) -> dict[str, Any]:
    """``{"AI_CACHE_<NAME>": value}`` for every setting, secrets and URL passwords redacted."""
    out = {}
    for name, value in settings.model_dump(mode="json").items():
        if name in SECRETS and value:
            value = "***"
        elif name in URLS and value:
            value = redact(value)
        out[ENV_PREFIX + name.upper()] = value
    return out


# -- figures -------------------------------------------------------------------------------
def _seasons(settings: Settings, policy: Policy, current: str) -> list[dict[str, Any]]:
    baseline = sum(conf.cache_size_bytes for conf in policy.market_tiers.values())
    out = []
    for name, conf in policy.seasons.items():
        scale = conf.cache_size_multiplier
        budget = int(settings.memory_size_bytes * (scale if settings.seasonal_scaling_enabled else 1.0))
        need = int(baseline * scale)
        out.append({"season": name, "current": name == current, "trafficMultiplier": conf.traffic_multiplier,
                    "cacheSizeMultiplier": scale, "ttlAdjustmentFactor": conf.ttl_adjustment_factor,
                    "memoryBudgetBytes": budget, "memoryNeedBytes": need, "short": budget < need})
    return out


def _vendors(policy: Policy) -> list[dict[str, Any]]:
    longest_tier = max(conf.ttlMultiplier for conf in policy.market_tiers.values())
    longest_season = max(conf.ttl_adjustment_factor for conf in policy.seasons.values())
    return [{"vendorType": name, "baseTtlSeconds": conf.baseTtl, "volatilityFactor": conf.volatilityFactor,
             "staleWhileRevalidateSeconds": conf.stale_while_revalidate_seconds,
             "longestTtlSeconds": round(conf.baseTtl * longest_tier * longest_season, 1)}
            for name, conf in policy.vendors.items()]


# -- checks: each yields warnings ----------------------------------------------------------
def _warning(setting: str, message: str, level: str = "warning") -> Warning_:
    return {"setting": setting, "level": level, "message": message}


def _mib(size: int) -> str:
    return f"{size / 2**20:,.0f} MiB"


def _memory(settings: Settings, policy: Policy, seasons: list[dict]) -> Iterator[Warning_]:
    short = [s for s in seasons if s["short"]]
    if short:
        worst = next((s for s in short if s["current"]), short[0])
        yield _warning("AI_CACHE_MEMORY_SIZE_MB",
                       f"memory budget below the season's need in {', '.join(s['season'] for s in short)}: "
                       f"{worst['season']} gets {_mib(worst['memoryBudgetBytes'])} against "
                       f"{_mib(worst['memoryNeedBytes'])} (market tiers' cacheSize x{worst['cacheSizeMultiplier']})")
    if not settings.seasonal_scaling_enabled and any(s["cacheSizeMultiplier"] != 1.0 for s in seasons):
        yield _warning("AI_CACHE_SEASONAL_SCALING_ENABLED",
                       "seasonal scaling is off: the memory budget and TTLs stay the same while the policy's "
                       "seasons change traffic up to x" + str(max(s["trafficMultiplier"] for s in seasons)))


def _ttl(settings: Settings, policy: Policy, seasons: list[dict]) -> Iterator[Warning_]:
    low, high = TTL_FACTOR_RANGE
    for name, conf in policy.seasons.items():
        factor = conf.ttl_adjustment_factor
        if factor > 1.0 and conf.traffic_multiplier > 1.0:
            yield _warning(f"seasons.{name}.ttl_adjustment_factor",
                           f"{factor} lengthens TTLs in a busy season (traffic x{conf.traffic_multiplier}), "
                           "when vendor data changes fastest")
        if not low <= factor <= high:
            yield _warning(f"seasons.{name}.ttl_adjustment_factor", f"{factor} is outside {low}-{high}")
    for name, conf in policy.market_tiers.items():
        if not low <= conf.ttlMultiplier <= high:
            yield _warning(f"market_tiers.{name}.ttlMultiplier", f"{conf.ttlMultiplier} is outside {low}-{high}")
    if policy.jitter == 0:
        yield _warning("jitter", "0: entries written together expire together (a miss storm)")
    for name, conf in policy.vendors.items():
        if conf.stale_while_revalidate_seconds > conf.baseTtl:
            yield _warning(f"vendors.{name}.stale_while_revalidate_seconds",
                           f"{conf.stale_while_revalidate_seconds:g} s of grace exceeds the base TTL {conf.baseTtl} s")


def _retention(settings: Settings, policy: Policy, seasons: list[dict]) -> Iterator[Warning_]:
    days = settings.gdpr_retention_days
    if days > SEVEN_YEARS_DAYS:
        yield _warning("AI_CACHE_GDPR_RETENTION_DAYS",
                       f"{days} days keeps entries and audit rows beyond the {SEVEN_YEARS_DAYS} days (7 years) set")
    if days < AUDIT_PERIOD_DAYS:
        yield _warning("AI_CACHE_GDPR_RETENTION_DAYS",
                       f"{days} days purges audit rows before the monthly compliance audit reads them")


def _switches(settings: Settings, policy: Policy, seasons: list[dict]) -> Iterator[Warning_]:
    if not settings.enabled:
        yield _warning("AI_CACHE_ENABLED", "the cache is off: every query goes to the origin")
    if not settings.encryption_enabled:
        yield _warning("AI_CACHE_ENCRYPTION_ENABLED", "off: answers and personal context fields are stored in clear")
    elif not settings.encryption_key:
        yield _warning("AI_CACHE_ENCRYPTION_KEY", "unset: the key lives in the state folder's encryption.key; "
                       "back it up, or sealed entries become unreadable", "info")
    if not settings.audit_logging_enabled:
        yield _warning("AI_CACHE_AUDIT_LOGGING_ENABLED", "off: no audit trail for writes, deletions and violations")
    bound = policy.sla.response_time["end_to_end"].ms
    if settings.alert_threshold_ms > bound:
        yield _warning("AI_CACHE_ALERT_THRESHOLD_MS",
                       f"{settings.alert_threshold_ms:g} ms alerts only above the end-to-end SLA bound {bound:g} ms")
    if settings.hit_rate_alert_threshold > policy.sla.hit_rate:
        yield _warning("AI_CACHE_HIT_RATE_ALERT_THRESHOLD",
                       f"{settings.hit_rate_alert_threshold} alerts while the hit rate still meets the SLA "
                       f"({policy.sla.hit_rate})", "info")


CHECKS: tuple[Callable[[Settings, Policy, list[dict]], Iterator[Warning_]], ...] = (_memory, _ttl, _retention,
                                                                                   _switches)
