"""Load over the calendar and arrivals: the seasonal, weekly and daily profiles, and Poisson or uniform arrivals.

Pure functions of time: :func:`seasonal_multiplier` (the policy's season multipliers,
interpolated linearly between season midpoints, continuous across New Year),
:func:`weekly_multiplier` and :func:`daily_multiplier` (each averaging 1.0), :func:`rate_at`
and the vectorised :func:`rate_series`. Arrivals: :class:`PoissonArrivals`,
:class:`UniformArrivals`, :func:`iter_arrival_chunks` and :func:`arrival_times`.
"""
from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np

from wedcache.policy import Policy

if TYPE_CHECKING:
    from .workload import WorkloadSpec

DAY_SECONDS = 86_400.0
BUCKET_SECONDS = 60.0
EPOCH_WEEKDAY = 3  # 1970-01-01 was a Thursday (Monday = 0).

# Relative traffic by weekday, Monday first (Saturday highest, then Sunday and Friday).
WEEKDAY_SHAPE = (0.80, 0.75, 0.80, 0.90, 1.15, 1.60, 1.30)
# Relative traffic by hour of day from 00:00: night trough, lunch bump, evening peak at 20:00.
HOUR_SHAPE = (0.45, 0.30, 0.22, 0.20, 0.22, 0.30, 0.45, 0.65, 0.85, 1.00, 1.05, 1.10,
              1.20, 1.15, 1.05, 1.05, 1.10, 1.25, 1.45, 1.70, 1.85, 1.80, 1.40, 0.85)


# --- load profile ------------------------------------------------------------------------

def _epoch(when: datetime) -> float:
    return (when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when).timestamp()


def _cyclic(position: np.ndarray, shape: tuple[float, ...]) -> np.ndarray:
    """``shape`` (one value per slot, normalised to mean 1) interpolated linearly between slot
    centres, wrapping around. The mean over a whole period is exactly 1."""
    values = np.asarray(shape) / np.mean(shape)
    return np.interp(position, np.arange(len(values)) + 0.5, values, period=len(values))


def _month_position(epoch: np.ndarray) -> np.ndarray:
    """Months since 1 January of each instant's year, in [0, 12); days scaled by month length."""
    moment = np.floor(np.asarray(epoch, dtype=float) * 1000).astype(np.int64).astype("datetime64[ms]")
    month = moment.astype("datetime64[M]")
    begin = month.astype("datetime64[ms]")
    length = (month + 1).astype("datetime64[ms]") - begin
    return month.astype(np.int64) % 12 + (moment - begin) / length


def season_midpoints(policy: Policy) -> dict[str, float]:
    """Each season's middle in months since 1 January (circular mean of its months' centres;
    spring Mar-May: 3.5 = mid-April, winter Dec-Feb: 0.5 = mid-January)."""
    out = {}
    for name, season in policy.seasons.items():
        angles = 2 * np.pi * (np.asarray(season.months) - 0.5) / 12
        mean = math.atan2(np.sin(angles).mean(), np.cos(angles).mean())
        out[name] = (mean * 12 / (2 * np.pi)) % 12
    return out


def season_midpoint(season: str, year: int, policy: Policy) -> datetime:
    """The UTC instant in ``year`` where ``season``'s multiplier equals the policy's value."""
    position = season_midpoints(policy)[season]
    month = int(position)
    begin = datetime(year, month + 1, 1, tzinfo=timezone.utc)
    end = (begin + timedelta(days=32)).replace(day=1)
    return begin + (position - month) * (end - begin)


def _seasonal(epoch: np.ndarray, policy: Policy) -> np.ndarray:
    """Linear interpolation between the seasons' midpoints, continuous across New Year."""
    mids = season_midpoints(policy)
    values = [policy.seasons[name].traffic_multiplier for name in mids]
    return np.interp(_month_position(epoch), list(mids.values()), values, period=12)


def _weekly(epoch: np.ndarray) -> np.ndarray:
    return _cyclic((np.asarray(epoch) / DAY_SECONDS + EPOCH_WEEKDAY) % 7, WEEKDAY_SHAPE)


def _daily(epoch: np.ndarray) -> np.ndarray:
    return _cyclic((np.asarray(epoch) % DAY_SECONDS) / 3600, HOUR_SHAPE)


def seasonal_multiplier(when: datetime, policy: Policy) -> float:
    """The policy's ``traffic_multiplier`` at ``when``, exact at each season's middle and
    interpolated linearly (by calendar month) in between."""
    return float(_seasonal(np.array([_epoch(when)]), policy)[0])


def weekly_multiplier(when: datetime) -> float:
    """Weekday profile (Saturday peak, then Sunday and Friday); mean over a week is 1."""
    return float(_weekly(np.array([_epoch(when)]))[0])


def daily_multiplier(when: datetime) -> float:
    """Hour-of-day profile (evening peak, night trough); mean over a day is 1."""
    return float(_daily(np.array([_epoch(when)]))[0])


def rate_series(seconds: Any, spec: WorkloadSpec, policy: Policy) -> np.ndarray:
    """Requests per second at ``seconds`` (array) after ``spec.start``."""
    epoch = spec.start.timestamp() + np.asarray(seconds, dtype=float)
    rate = np.full(epoch.shape, float(spec.base_qps))
    for enabled, profile in ((spec.seasonal, lambda e: _seasonal(e, policy)),
                             (spec.weekly, _weekly), (spec.daily, _daily)):
        if enabled:
            rate *= profile(epoch)
    return rate


def rate_at(when: datetime, spec: WorkloadSpec, policy: Policy) -> float:
    """``base_qps`` times the enabled multipliers at ``when``."""
    return float(rate_series(_epoch(when) - spec.start.timestamp(), spec, policy))


# --- arrivals ------------------------------------------------------------------------------

class PoissonArrivals:
    """Non-homogeneous Poisson arrivals: a Poisson count per bucket, uniform times inside it."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng

    def __call__(self, edges: np.ndarray, mass: np.ndarray) -> np.ndarray:
        counts = self.rng.poisson(mass)
        starts = np.repeat(edges[:-1], counts)
        widths = np.repeat(np.diff(edges), counts)
        return np.sort(starts + self.rng.random(starts.size) * widths)


class UniformArrivals:
    """Evenly spaced arrivals: the n-th request comes when the integrated rate reaches n."""

    def __init__(self, rng: np.random.Generator | None = None):
        self.carry = 0.0
        """Expected arrivals accumulated since the last request (carried across chunks)."""

    def __call__(self, edges: np.ndarray, mass: np.ndarray) -> np.ndarray:
        cumulative = self.carry + np.concatenate(([0.0], np.cumsum(mass)))
        whole = math.floor(cumulative[-1])
        self.carry = cumulative[-1] - whole
        return np.interp(np.arange(1.0, whole + 1), cumulative, edges)


ARRIVAL_PROCESSES = {"poisson": PoissonArrivals, "uniform": UniformArrivals}


def _bucket_edges(begin: float, end: float) -> np.ndarray:
    return np.append(np.arange(begin, end, BUCKET_SECONDS), end)


def iter_arrival_chunks(spec: WorkloadSpec, policy: Policy, rng: np.random.Generator,
                        chunk_seconds: float = 3600.0) -> Iterator[np.ndarray]:
    """Sorted arrival times (seconds from start), one array per ``chunk_seconds`` of the run.

    The rate is integrated per minute bucket (rate at the bucket's middle times its width).
    The same seed and ``chunk_seconds`` give the same arrivals."""
    if chunk_seconds <= 0:
        raise ValueError("chunk_seconds: must be positive")
    process = ARRIVAL_PROCESSES[spec.arrivals](rng)
    for begin in np.arange(0.0, spec.duration_seconds, chunk_seconds):
        edges = _bucket_edges(begin, min(begin + chunk_seconds, spec.duration_seconds))
        mass = rate_series((edges[:-1] + edges[1:]) / 2, spec, policy) * np.diff(edges)
        yield process(edges, mass)


def arrival_times(spec: WorkloadSpec, policy: Policy, rng: np.random.Generator) -> np.ndarray:
    """All arrival times at once (a year of traffic may not fit: use :func:`iter_arrival_chunks`)."""
    return np.concatenate([np.empty(0), *iter_arrival_chunks(spec, policy, rng)])
