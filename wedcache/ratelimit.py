"""Per-plan API rate limits shared through Redis: :class:`RateLimiter` and :class:`RateDecision`.

GCRA (generic cell rate algorithm): a plan allows ``limit`` requests per ``window``, so one
request costs the emission interval ``T = window / limit``. Each subject keeps one number,
its theoretical arrival time (TAT): the moment its budget is fully replenished. A request at
``now`` moves the TAT to ``max(TAT, now) + T`` and is allowed when that is at most ``window``
ahead of ``now`` (burst tolerance ``window - T``): a fresh subject gets exactly ``limit``
requests at once, then one more every ``T``. Times are whole microseconds (``T`` rounded up,
so a window grows by less than ``limit`` microseconds), which keeps the arithmetic exact.

The TAT lives in Redis under ``prefix + plan + ":" + subject``, updated by one Lua script
(atomic across workers and replicas) with a ``PX`` equal to the time until replenishment;
``now`` comes from the injected clock. When Redis fails, the same algorithm runs in this
process (a per-process budget) and a circuit breaker spares the dead Redis every request.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping

import redis

from .breaker import CircuitBreaker
from .clock import Clock
from .redis_client import ERRORS as REDIS_ERRORS

if TYPE_CHECKING:
    from .policy import Policy

log = logging.getLogger(__name__)

MICROS = 1_000_000
LOCAL_PRUNE_AT = 10_000
"""Fallback entries kept before replenished ones are dropped (the bound then doubles)."""

_REDIS_ERRORS = REDIS_ERRORS  # RedisError, OSError and the cluster client's RedisClusterException

# KEYS[1]: the subject's TAT. ARGV: now, emission interval, window (integer microseconds).
# Returns {1 if allowed else 0, the TAT after the decision minus now}. Mirrors _Rate.step.
GCRA_SCRIPT = """
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local window = tonumber(ARGV[3])
local tat = math.max(tonumber(redis.call('GET', KEYS[1]) or now), now)
if tat + interval - now > window then
  return {0, tat - now}
end
tat = tat + interval
redis.call('SET', KEYS[1], string.format('%d', tat), 'PX', math.ceil((tat - now) / 1000))
return {1, tat - now}
"""


@dataclass(frozen=True, slots=True)
class RateDecision:
    """One request's verdict, and what the rate-limit headers say about it."""

    allowed: bool
    limit: int | None
    """Requests per window (``X-RateLimit-Limit``); ``None`` for an unlimited plan."""
    remaining: int | None
    """Requests left in the window after this one (``X-RateLimit-Remaining``); ``None`` when unlimited."""
    reset_seconds: float
    """Seconds until the budget is fully replenished (``X-RateLimit-Reset``)."""
    retry_after: float
    """Seconds until a request would be allowed (``Retry-After``); 0.0 when allowed."""


UNLIMITED = RateDecision(allowed=True, limit=None, remaining=None, reset_seconds=0.0, retry_after=0.0)


@dataclass(frozen=True, slots=True)
class _Rate:
    """A limited plan in whole microseconds."""

    limit: int
    interval: int

    @classmethod
    def of(cls, limit: int, window_seconds: float) -> _Rate:
        return cls(limit, -(-round(window_seconds * MICROS) // limit))

    @property
    def window(self) -> int:
        return self.limit * self.interval

    def step(self, tat: int | None, now: int) -> tuple[bool, int]:
        """One GCRA step from the stored TAT (``None``: none yet): (allowed, TAT afterwards)."""
        start = now if tat is None else max(tat, now)
        if start + self.interval - now > self.window:
            return False, start
        return True, start + self.interval

    def decide(self, allowed: bool, backlog: int) -> RateDecision:
        """The decision, given the subject's TAT minus now after the step."""
        if allowed:
            return RateDecision(True, self.limit, (self.window - backlog) // self.interval, backlog / MICROS, 0.0)
        retry_after = (backlog + self.interval - self.window) / MICROS
        return RateDecision(False, self.limit, 0, backlog / MICROS, retry_after)


class RateLimiter:
    """Per-plan request budgets per subject, shared through Redis when it answers.

    :param plans: requests allowed per window, by plan name; 0 means unlimited.
    :param window_seconds: the window the plans' limits are counted over.
    :param clock: the time source (``now()`` in seconds).
    :param redis_client: the shared store (a ``redis.Redis`` or a ``RedisCluster``: the one
        key the script touches decides its node); ``None`` counts in this process only.
    :param prefix: start of the Redis keys.
    :param breaker: guards Redis; default: open after 5 consecutive errors.
    """

    def __init__(self, plans: Mapping[str, int], window_seconds: float, *, clock: Clock,
                 redis_client: redis.Redis | None = None, prefix: str = "ai:rl:",
                 breaker: CircuitBreaker | None = None):
        if window_seconds <= 0:
            raise ValueError(f"rate-limit window must be positive, not {window_seconds}")
        self._rates = {plan: _plan_rate(plan, limit, window_seconds) for plan, limit in plans.items()}
        self.clock, self.prefix = clock, prefix
        self.breaker = breaker or CircuitBreaker("ratelimit-redis", clock)
        self._script = redis_client.register_script(GCRA_SCRIPT) if redis_client is not None else None
        self._local: dict[str, int] = {}
        self._local_lock = threading.Lock()
        self._prune_at = LOCAL_PRUNE_AT
        self._shared = False
        self._outage = False

    @classmethod
    def from_policy(cls, policy: Policy, *, clock: Clock, redis_client: redis.Redis | None = None) -> RateLimiter:
        """A limiter with the policy's ``rate_limits`` plans and window."""
        limits = policy.rate_limits
        return cls(limits.plans, limits.window_seconds, clock=clock, redis_client=redis_client)

    @property
    def shared(self) -> bool:
        """Whether the last limited decision came from Redis (False: the per-process fallback).

        Unlimited plans touch neither, so they leave it unchanged.
        """
        return self._shared

    def check(self, subject: str, plan: str) -> RateDecision:
        """Count one request of ``subject`` (e.g. an API key id or organization) under ``plan``.

        :raises ValueError: ``plan`` is not one of the limiter's plans.
        """
        rate = self._rate(plan)
        if rate is None:
            return UNLIMITED
        key = f"{self.prefix}{plan}:{subject}"
        now = round(self.clock.now() * MICROS)
        outcome = self._redis_step(key, rate, now)
        self._shared = outcome is not None
        if outcome is None:
            outcome = self._local_step(key, rate, now)
        return rate.decide(*outcome)

    def unlimited(self, plan: str) -> bool:
        """Whether ``plan`` has no limit (then :meth:`check` does no I/O)."""
        return self._rate(plan) is None

    def _rate(self, plan: str) -> _Rate | None:
        try:
            return self._rates[plan]
        except KeyError:
            known = ", ".join(sorted(self._rates))
            raise ValueError(f"unknown rate-limit plan {plan!r} (known: {known})") from None

    def _redis_step(self, key: str, rate: _Rate, now: int) -> tuple[bool, int] | None:
        """(allowed, backlog) from Redis; ``None`` without Redis, with its breaker open or on error."""
        if self._script is None or not self.breaker.allow():
            return None
        try:
            allowed, backlog = self._script(keys=[key], args=[now, rate.interval, rate.window])
        except _REDIS_ERRORS as exc:
            self._redis_failed(exc)
            return None
        self._redis_answered()
        return bool(allowed), int(backlog)

    def _local_step(self, key: str, rate: _Rate, now: int) -> tuple[bool, int]:
        with self._local_lock:
            allowed, tat = rate.step(self._local.get(key), now)
            self._local[key] = tat
            self._forget_replenished(now)
        return allowed, tat - now

    def _forget_replenished(self, now: int) -> None:
        """Drop fallback entries whose budget is full again (they equal no entry)."""
        if len(self._local) < self._prune_at:
            return
        self._local = {key: tat for key, tat in self._local.items() if tat > now}
        self._prune_at = max(LOCAL_PRUNE_AT, 2 * len(self._local))

    def _redis_failed(self, exc: Exception) -> None:
        self.breaker.failure()
        if not self._outage:
            self._outage = True
            log.warning("rate limits: Redis unavailable (%s); counting per process until it answers", exc)

    def _redis_answered(self) -> None:
        self.breaker.success()
        if self._outage:
            self._outage = False
            log.info("rate limits: Redis answers again; budgets are shared")


def _plan_rate(plan: str, limit: int, window_seconds: float) -> _Rate | None:
    """The plan's rate; ``None`` for an unlimited plan (limit 0)."""
    if limit < 0:
        raise ValueError(f"rate-limit plan {plan!r}: limit must be 0 (unlimited) or more, not {limit}")
    return _Rate.of(limit, window_seconds) if limit else None
