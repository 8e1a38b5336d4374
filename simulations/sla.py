"""The seed's SLA targets checked against a run: :func:`sla_checks` and :func:`p95_analysis`.

Checks (each ``{name, target, actual, passed, why}``):

- ``response_time.<tier>.p<percentile>``: the latency percentile of the requests that tier
  answered, against its bound (memory 1 ms at p99.9, Redis 5 ms at p99.5, PostgreSQL 50 ms
  at p99);
- ``end_to_end.p95``: every request's latency at p95, against 100 ms;
- ``hit_rate``: against 0.85;
- ``seasonal.<season>.hit_rate`` / ``.response_time`` and ``market_tier.<tier>.hit_rate`` /
  ``.response_time``: the seed's SEASONAL_TARGETS and MARKET_TIER_TARGETS, where the
  response-time target is read as the *mean* response time (the dashboard's
  ``averageResponseTime``), for the seasons and tiers the run saw.

``why`` says in a sentence what drove a failure. :func:`p95_analysis` states the relation
between end-to-end p95 and hit rate: a miss waits for the origin, so when a share ``s`` of
origin calls take longer than the target, p95 below the target needs
``hit rate >= 1 - 0.05 / s``; it also estimates the stale-while-revalidate grace window that
would turn enough expired misses into (stale) hits.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from wedcache.policy import Policy

TIER_CODES = {"memory": 0, "redis": 1, "postgres": 2}


def _check(name: str, target: float, actual: float | None, passed: bool, why: str) -> dict[str, Any]:
    return {"name": name, "target": target, "actual": actual, "passed": bool(passed), "why": "" if passed else why}


def _at_most(name: str, target: float, actual: float | None, why: str) -> dict[str, Any]:
    return _check(name, target, actual, actual is None or actual <= target, why)


def _at_least(name: str, target: float, actual: float | None, why: str) -> dict[str, Any]:
    return _check(name, target, actual, actual is None or actual >= target, why)


def _miss_why(summary: dict[str, Any]) -> str:
    misses = summary["misses"]
    parts = ", ".join(f"{misses[k]:.1%} {k}" for k in ("cold", "expired", "evicted", "coalesced") if misses[k] > 0)
    return f"misses were {parts}" if parts else "no misses were recorded"


def tier_checks(rec: Any, policy: Policy) -> list[dict[str, Any]]:
    checks = []
    for tier, code in TIER_CODES.items():
        target = policy.sla.response_time[tier]
        latency = rec.latency_ms[rec.code == code]
        if not latency.size:
            continue
        actual = float(np.percentile(latency, target.percentile))
        why = (f"{tier} hits took {actual:.2f} ms at p{target.percentile:g}; the bound is {target.ms:g} ms "
               f"(tier latency comes from the calibration or, live, from the servers)")
        checks.append(_at_most(f"response_time.{tier}.p{target.percentile:g}", target.ms, actual, why))
    return checks


def overall_checks(summary: dict[str, Any], policy: Policy) -> list[dict[str, Any]]:
    e2e, analysis = policy.sla.response_time["end_to_end"], summary["p95_analysis"]
    p95 = summary["latency_ms"]["p95"]
    why_p95 = analysis["explanation"]
    why_hit = f"hit rate {summary['hit_rate']:.1%} is below {policy.sla.hit_rate:.0%}: {_miss_why(summary)}"
    return [_at_most(f"end_to_end.p{e2e.percentile:g}", e2e.ms, p95, why_p95),
            _at_least("hit_rate", policy.sla.hit_rate, summary["hit_rate"], why_hit)]


def group_checks(kind: str, groups: dict[str, Any], targets: dict[str, Any]) -> list[dict[str, Any]]:
    checks = []
    for name, stats in groups.items():
        target = targets.get(name)
        if target is None or not stats["requests"]:
            continue
        hit, mean = stats["hit_rate"], stats["mean_ms"]
        checks.append(_at_least(f"{kind}.{name}.hit_rate", target.hitRate, hit,
                                f"{name} hit rate {hit:.1%} is below {target.hitRate:.0%}"))
        checks.append(_at_most(f"{kind}.{name}.response_time", target.responseTime, mean,
                               f"{name} mean response time {mean:,.0f} ms is above {target.responseTime:g} ms: "
                               f"each miss waits for the origin, so the mean is about miss share x origin latency"))
    return checks


def sla_checks(rec: Any, summary: dict[str, Any], policy: Policy) -> dict[str, Any]:
    """``{passed, checks}`` for the run."""
    checks = (tier_checks(rec, policy) + overall_checks(summary, policy)
              + group_checks("seasonal", summary["by_season"], policy.sla.seasonal)
              + group_checks("market_tier", summary["by_market_tier"], policy.sla.market_tier))
    return {"passed": all(c["passed"] for c in checks), "checks": checks}


def grace_needed(overdue: np.ndarray, share_needed: float, expired_share: float) -> float | None:
    """The grace window covering enough expired misses to add ``share_needed`` of requests."""
    if share_needed <= 0:
        return 0.0
    if expired_share <= 0 or share_needed > expired_share or not overdue.size:
        return None
    return float(np.quantile(overdue, share_needed / expired_share))


def p95_analysis(rec: Any, summary: dict[str, Any], policy: Policy, origin: Any) -> dict[str, Any]:
    """What end-to-end p95 below its target would need, for this origin and this run."""
    e2e = policy.sla.response_time["end_to_end"]
    tail = 1 - e2e.percentile / 100
    share = origin.share_over(e2e.ms)
    required = max(0.0, 1 - tail / share) if share > 0 else 0.0
    actual, expired = summary["hit_rate"], summary["misses"]["expired"]
    grace = grace_needed(rec.overdue_seconds, required - actual, expired)
    explanation = (f"{share:.1%} of origin calls take longer than {e2e.ms:g} ms, so p{e2e.percentile:g} "
                   f"< {e2e.ms:g} ms needs a hit rate of at least {required:.1%}; this run reached {actual:.1%}. ")
    if actual >= required:
        explanation += "The hit rate is high enough; the percentile is decided by the hits' own latency."
    elif grace is None:
        explanation += (f"Expired entries explain only {expired:.1%} of requests, so no stale-while-revalidate "
                        "grace window closes the gap; the cache must be larger or the workload less cold.")
    else:
        explanation += (f"Expired entries explain {expired:.1%} of requests; serving them stale for up to "
                        f"{grace:,.0f} s after expiry (stale-while-revalidate) would close the gap.")
    return {"target_ms": e2e.ms, "percentile": e2e.percentile, "origin_share_over_target": share,
            "required_hit_rate": required, "actual_hit_rate": actual, "expired_miss_share": expired,
            "grace_seconds_needed": grace, "explanation": explanation}
