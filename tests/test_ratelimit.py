"""Rate limits (GCRA): the per-process fallback, then the real shared Redis and its outages.

Plan "basic" allows 10 requests per 60 s, so its emission interval is 6 s. Each test counts
a fresh subject, so tests share nothing in Redis.
"""
from __future__ import annotations

import logging
import threading
import uuid

import pytest
import redis

from wedcache.breaker import OPEN, Backoff, CircuitBreaker
from wedcache.ratelimit import RateLimiter

PLANS = {"basic": 10, "unlimited": 0}
WINDOW = 60.0
INTERVAL = WINDOW / PLANS["basic"]
DEAD_REDIS_URL = "redis://127.0.0.1:1/0"


@pytest.fixture
def subject() -> str:
    return f"key-{uuid.uuid4()}"


@pytest.fixture
def make_client():
    """``make_client(url)``: a real redis-py client with short timeouts; closed after the test."""
    clients = []

    def make(url: str) -> redis.Redis:
        clients.append(redis.Redis.from_url(url, socket_connect_timeout=0.2, socket_timeout=1))
        return clients[-1]

    yield make
    for client in clients:
        client.close()


def limiter(clock, client=None, **kwargs) -> RateLimiter:
    return RateLimiter(PLANS, WINDOW, clock=clock, redis_client=client, **kwargs)


def burst(rl: RateLimiter, subject: str, count: int, plan: str = "basic") -> list:
    return [rl.check(subject, plan) for _ in range(count)]


def assert_burst_then_refused(rl: RateLimiter, subject: str) -> None:
    decisions = burst(rl, subject, 10)
    assert all(d.allowed and d.limit == 10 and d.retry_after == 0.0 for d in decisions)
    assert [d.remaining for d in decisions] == list(range(9, -1, -1))
    refused = rl.check(subject, "basic")
    assert (refused.allowed, refused.limit, refused.remaining) == (False, 10, 0)
    assert refused.retry_after == pytest.approx(INTERVAL)
    assert refused.reset_seconds == pytest.approx(WINDOW)


def assert_one_more_per_interval(rl: RateLimiter, subject: str, clock) -> None:
    burst(rl, subject, 11)
    clock.advance(INTERVAL - 1)
    assert rl.check(subject, "basic").retry_after == pytest.approx(1.0)
    clock.advance(1)
    assert rl.check(subject, "basic").allowed
    assert not rl.check(subject, "basic").allowed


# --- the per-process fallback -----------------------------------------------------------

def test_exactly_limit_requests_in_a_burst_then_refused(clock, subject):
    rl = limiter(clock)
    assert_burst_then_refused(rl, subject)
    assert not rl.shared


def test_one_more_request_per_emission_interval(clock, subject):
    assert_one_more_per_interval(limiter(clock), subject, clock)


def test_full_budget_again_after_the_window(clock, subject):
    rl = limiter(clock)
    burst(rl, subject, 11)
    clock.advance(WINDOW)
    assert all(d.allowed for d in burst(rl, subject, 10))
    assert not rl.check(subject, "basic").allowed


def test_reset_counts_down_to_full_replenishment(clock, subject):
    rl = limiter(clock)
    assert rl.check(subject, "basic").reset_seconds == pytest.approx(INTERVAL)
    clock.advance(2)
    decision = rl.check(subject, "basic")
    assert decision.reset_seconds == pytest.approx(2 * INTERVAL - 2)
    assert decision.remaining == 8


def test_subjects_and_plans_have_separate_budgets(clock, subject):
    rl = RateLimiter({"basic": 2, "pro": 2}, WINDOW, clock=clock)
    burst(rl, subject, 3)
    assert rl.check(subject + "-other", "basic").allowed
    assert rl.check(subject, "pro").allowed


def test_unlimited_plan_is_always_allowed(clock, subject):
    decisions = burst(limiter(clock), subject, 100, plan="unlimited")
    assert {(d.allowed, d.limit, d.remaining, d.retry_after) for d in decisions} == {(True, None, None, 0.0)}


def test_unknown_plan_is_an_error_naming_it(clock, subject):
    with pytest.raises(ValueError, match="'platinum'"):
        limiter(clock).check(subject, "platinum")


@pytest.mark.parametrize("plans, window", [({"basic": -1}, 60), ({"basic": 10}, 0)])
def test_invalid_limits_are_rejected(clock, plans, window):
    with pytest.raises(ValueError):
        RateLimiter(plans, window, clock=clock)


def test_from_policy_uses_the_policy_plans_and_window(clock, policy, subject):
    rl = RateLimiter.from_policy(policy, clock=clock)
    window = policy.rate_limits.window_seconds
    authenticated = policy.rate_limits.plans["authenticated"]
    assert all(d.allowed for d in burst(rl, subject, authenticated, plan="authenticated"))
    refused = rl.check(subject, "authenticated")
    assert not refused.allowed and refused.limit == authenticated
    assert refused.retry_after == pytest.approx(window / authenticated)
    assert rl.check(subject, "premium").limit == policy.rate_limits.plans["premium"]
    assert rl.check(subject, "enterprise").limit is None


def test_fallback_counts_exactly_under_concurrency(clock, subject):
    rl = RateLimiter({"basic": 100}, WINDOW, clock=clock)
    assert count_allowed_concurrently([rl], subject, threads=8, each=25) == 100


def count_allowed_concurrently(limiters: list[RateLimiter], subject: str, threads: int, each: int) -> int:
    allowed = []

    def work(rl: RateLimiter) -> None:
        allowed.append(sum(rl.check(subject, "basic").allowed for _ in range(each)))

    workers = [threading.Thread(target=work, args=(limiters[i % len(limiters)],)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return sum(allowed)


# --- Redis down: the fallback decides ----------------------------------------------------

def test_redis_down_falls_back_to_the_local_budget(clock, subject, make_client, caplog):
    rl = limiter(clock, make_client(DEAD_REDIS_URL))
    with caplog.at_level(logging.WARNING, logger="wedcache.ratelimit"):
        assert_burst_then_refused(rl, subject)
    assert not rl.shared
    assert rl.breaker.state == OPEN
    assert len(caplog.records) == 1 and "Redis unavailable" in caplog.records[0].getMessage()


# --- the real shared Redis ---------------------------------------------------------------

@pytest.mark.integration
def test_redis_exactly_limit_requests_in_a_burst_then_refused(clock, subject, redis_url, make_client):
    rl = limiter(clock, make_client(redis_url))
    assert_burst_then_refused(rl, subject)
    assert rl.shared


@pytest.mark.integration
def test_redis_one_more_request_per_emission_interval(clock, subject, redis_url, make_client):
    rl = limiter(clock, make_client(redis_url))
    assert_one_more_per_interval(rl, subject, clock)
    assert rl.shared


@pytest.mark.integration
def test_redis_stores_the_tat_until_replenished(clock, subject, redis_url, make_client):
    client = make_client(redis_url)
    burst(limiter(clock, client, prefix="test:rl:"), subject, 3)
    pttl = client.pttl(f"test:rl:basic:{subject}")
    assert 0 < pttl <= 3 * INTERVAL * 1000


@pytest.mark.integration
def test_unlimited_plan_does_not_touch_redis(clock, subject, redis_url, make_client):
    client = make_client(redis_url)
    assert limiter(clock, client).check(subject, "unlimited").allowed
    assert not client.exists(f"ai:rl:unlimited:{subject}")


@pytest.mark.integration
def test_two_workers_share_one_budget(clock, subject, redis_url, make_client):
    first, second = limiter(clock, make_client(redis_url)), limiter(clock, make_client(redis_url))
    assert all(d.allowed for d in burst(first, subject, 6))
    assert [d.remaining for d in burst(second, subject, 4)] == [3, 2, 1, 0]
    assert not first.check(subject, "basic").allowed
    assert not second.check(subject, "basic").allowed
    assert first.shared and second.shared


@pytest.mark.integration
def test_concurrent_workers_never_exceed_the_limit(clock, subject, redis_url, make_client):
    workers = [RateLimiter({"basic": 50}, WINDOW, clock=clock, redis_client=make_client(redis_url))
               for _ in range(2)]
    assert count_allowed_concurrently(workers, subject, threads=8, each=20) == 50


@pytest.mark.integration
def test_shared_again_when_redis_comes_back(clock, subject, local_redis, make_client, caplog):
    server = local_redis()
    breaker = CircuitBreaker("ratelimit-redis", clock, failures=1, backoff=Backoff(base=5))
    rl = limiter(clock, make_client(server.url), breaker=breaker)
    assert rl.check(subject, "basic").allowed and rl.shared

    server.stop()
    with caplog.at_level(logging.WARNING, logger="wedcache.ratelimit"):
        assert rl.check(subject, "basic").remaining == 9  # the local budget starts afresh
        assert not rl.shared and breaker.state == OPEN
        assert rl.check(subject, "basic").allowed and not rl.shared
    assert len(caplog.records) == 1

    server.start()
    assert rl.check(subject, "basic").allowed and not rl.shared  # the breaker is still cooling down
    clock.advance(5)
    assert rl.check(subject, "basic").allowed and rl.shared
    assert rl.check(subject, "basic").allowed and rl.shared
