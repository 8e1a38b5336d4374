"""The arithmetic of a drill: figures of a time window and recovery times.

Pure functions over :class:`~wedcache.chaos.load.Sample` lists (monotonic times), so they are
unit-tested without servers.

:func:`window` counts one phase: requests, answers, 5xx, other errors and the hit rate
(``X-Cache: HIT-*`` over successful answers). :func:`hit_rate_recovered_at` is the first
moment after a restart from which a rolling window (``span`` seconds, at least
``min_samples`` answers) holds the prior hit rate again, within ``tolerance``.
:func:`recovery_seconds` is the later of that and of the moment every replica reported the
restarted tier up with a closed breaker (the service uses it again), measured from the
restart; ``None`` when either never happened.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

from .load import Sample

STEP_SECONDS = 0.1


@dataclass(frozen=True)
class Window:
    requests: int
    answered_ok: int
    hits: int
    errors_5xx: int
    errors_other: int
    slowest_s: float = 0.0
    """The longest a request of the window took (a request stuck on a down backend shows here)."""

    @property
    def hit_rate(self) -> float | None:
        return self.hits / self.answered_ok if self.answered_ok else None

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "hit_rate": self.hit_rate}


def window(samples: Sequence[Sample], start: float = float("-inf"), end: float = float("inf")) -> Window:
    """The figures of the samples sent in ``[start, end)``."""
    chosen = [s for s in samples if start <= s.at < end]
    return Window(requests=len(chosen), answered_ok=sum(s.ok for s in chosen), hits=sum(s.hit for s in chosen),
                  errors_5xx=sum(s.is_5xx for s in chosen),
                  errors_other=sum(not s.ok and not s.is_5xx for s in chosen),
                  slowest_s=max((s.seconds for s in chosen), default=0.0))


def hit_rate_recovered_at(samples: Sequence[Sample], restart: float, prior: float, *, span: float = 1.0,
                          tolerance: float = 0.05, min_samples: int = 5) -> float | None:
    """The first ``t >= restart`` whose window ``[t, t + span)`` has at least ``min_samples``
    successful answers and a hit rate of at least ``prior - tolerance``; ``None`` if none does."""
    last = max((s.at for s in samples), default=restart)
    t = restart
    while t + span <= last + STEP_SECONDS:
        figures = window(samples, t, t + span)
        if figures.answered_ok >= min_samples and figures.hit_rate >= prior - tolerance:
            return t
        t += STEP_SECONDS
    return None


def recovery_seconds(restart: float, hit_rate_at: float | None, ready_at: float | None) -> float | None:
    """Seconds from ``restart`` until both the hit rate and the tier were back (``None`` if one never was)."""
    if hit_rate_at is None or ready_at is None:
        return None
    return max(0.0, max(hit_rate_at, ready_at) - restart)
