"""Is a restarted tier in use again? :func:`tier_ready_at` polls every replica's ``/readyz``.

``/readyz`` reports, per backend tier, whether it answers and its circuit breaker's state. A
tier counts as back once every replica reports it up *and* its breaker closed: the breaker
closes only after a request really went through the tier again, so this is the moment the
service uses it again, not merely the moment the server answers.
"""
from __future__ import annotations

import time
from typing import Sequence

import httpx

POLL_SECONDS = 0.1


def tier_back(url: str, tier: str) -> bool:
    """Whether the replica at ``url`` reports ``tier`` up with a closed breaker."""
    try:
        state = httpx.get(url + "/readyz", timeout=2.0).json()["tiers"][tier]
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return False
    return bool(state.get("up")) and state.get("breaker") in (None, "closed")


def tier_ready_at(urls: Sequence[str], tier: str, timeout: float) -> float | None:
    """The monotonic time at which every replica reported ``tier`` back; ``None`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    pending = list(urls)
    while time.monotonic() < deadline:
        pending = [url for url in pending if not tier_back(url, tier)]
        if not pending:
            return time.monotonic()
        time.sleep(POLL_SECONDS)
    return None
