"""Load shapes for the wedcache locustfile: a compressed year, a peak Saturday, a stepped ramp.

The user counts come from plain functions of time that tests call without Locust running:

- :func:`seasonal_users`: ``base_users`` x the policy's seasonal x weekly multiplier on a
  day of the year (:mod:`simulations.profiles`, the same profiles as the SimPy model);
- :func:`peak_saturday_users`: ``base_users`` x the daily profile x the summer and Saturday
  multipliers at an hour of a June Saturday;
- :func:`step_users`: ``start + step * n`` during the n-th step of a ramp.

Each returns ``None`` once its run is over, so every :class:`~locust.LoadTestShape` here
(:class:`SeasonalShape`, :class:`PeakSaturdayShape`, :class:`StepShape`) stops by itself.
The shapes read their parameters from Locust's parsed options (the locustfile's custom
arguments, :data:`DEFAULTS` when absent); :func:`shape_class` maps a ``--shape`` name to
its class. This module holds the classes but is not a locustfile: Locust uses a shape only
when the locustfile's own namespace defines it, and the locustfile puts the chosen one there.
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from locust import LoadTestShape

from simulations.profiles import daily_multiplier, seasonal_multiplier, weekly_multiplier
from wedcache.policy import Policy, load_policy

YEAR_START = date(2026, 1, 1)
PEAK_SATURDAY = date(2026, 6, 6)
"""A Saturday in June (summer, the policy's peak season)."""
DEFAULTS: dict[str, Any] = {"base_users": 20, "seconds_per_day": 2.0, "days": 365, "peak_day_seconds": 288.0,
                            "step_start": 10, "step_users": 10, "step_seconds": 60.0, "steps": 10}
"""Shape parameters when the run gives none (the locustfile's options of the same names)."""


def _noon(day: date) -> datetime:
    return datetime.combine(day, time(12), tzinfo=timezone.utc)


def spawn_rate(users: int) -> float:
    """Users started (or stopped) per second: reach any target within about a second."""
    return float(max(users, 1))


def seasonal_users(day_index: int, base_users: int, policy: Policy, start: date = YEAR_START,
                   days: int = 365) -> int | None:
    """Users on day ``day_index`` of the year from ``start`` (``None`` after ``days`` days):
    ``base_users`` x seasonal x weekly multiplier at that day's noon, at least 1."""
    if not 0 <= day_index < days:
        return None
    when = _noon(start + timedelta(days=day_index))
    return max(1, round(base_users * seasonal_multiplier(when, policy) * weekly_multiplier(when)))


def peak_saturday_users(hour: float, base_users: int, policy: Policy, day: date = PEAK_SATURDAY) -> int | None:
    """Users at ``hour`` (0-24) of ``day``: ``base_users`` x the day's seasonal and weekday
    multipliers (read at noon) x the hour-of-day profile; ``None`` from hour 24 on."""
    if not 0 <= hour < 24:
        return None
    noon = _noon(day)
    when = noon + timedelta(hours=hour - 12)
    day_factor = seasonal_multiplier(noon, policy) * weekly_multiplier(noon)
    return max(1, round(base_users * day_factor * daily_multiplier(when)))


def step_users(seconds: float, start: int, step: int, step_seconds: float, steps: int) -> int | None:
    """Users ``seconds`` into a ramp of ``steps`` steps of ``step_seconds`` each (``None`` after it)."""
    index = int(seconds // step_seconds)
    if not 0 <= index < steps:
        return None
    return start + step * index


class _OptionShape(LoadTestShape):
    """A shape whose parameters come from the run's parsed options (or :data:`DEFAULTS`)."""

    abstract = True
    _policy: Policy | None = None

    def option(self, name: str) -> Any:
        options = getattr(getattr(self.runner, "environment", None), "parsed_options", None)
        value = getattr(options, name, None)
        return DEFAULTS[name] if value is None else value

    @property
    def policy(self) -> Policy:
        if self._policy is None:
            self._policy = load_policy()
        return self._policy

    def users(self, seconds: float) -> int | None:
        raise NotImplementedError

    def tick(self) -> tuple[int, float] | None:
        users = self.users(self.get_run_time())
        return None if users is None else (users, spawn_rate(users))


class SeasonalShape(_OptionShape):
    """A compressed year: each simulated day lasts ``--seconds-per-day`` real seconds."""

    def users(self, seconds: float) -> int | None:
        day = int(seconds // float(self.option("seconds_per_day")))
        return seasonal_users(day, int(self.option("base_users")), self.policy, days=int(self.option("days")))


class PeakSaturdayShape(_OptionShape):
    """A June Saturday compressed into ``--peak-day-seconds`` real seconds."""

    def users(self, seconds: float) -> int | None:
        hour = 24 * seconds / float(self.option("peak_day_seconds"))
        return peak_saturday_users(hour, int(self.option("base_users")), self.policy)


class StepShape(_OptionShape):
    """A stepped ramp for capacity finding: ``--step-start`` users plus ``--step-users`` per step."""

    def users(self, seconds: float) -> int | None:
        return step_users(seconds, int(self.option("step_start")), int(self.option("step_users")),
                          float(self.option("step_seconds")), int(self.option("steps")))


SHAPES: dict[str, type[LoadTestShape]] = {"seasonal": SeasonalShape, "peak-saturday": PeakSaturdayShape,
                                          "step": StepShape}


def shape_class(name: str | None) -> type[LoadTestShape] | None:
    """The shape named ``name`` (``None`` or ``""``/``"none"``: no shape, plain ``-u``/``-r``)."""
    if not name or name == "none":
        return None
    try:
        return SHAPES[name]
    except KeyError:
        raise ValueError(f"unknown load shape {name!r}; choose one of: none, {', '.join(SHAPES)}") from None
