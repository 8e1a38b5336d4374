"""Simulated time for the real cache: :class:`SimClock`.

The cache reads ``clock.now()``; in the simulation that is the calendar instant of the
simulated moment (``epoch + t``, with ``t`` in seconds from the scenario's start). The engine
moves ``t`` itself (:mod:`simulations.engine`): SimPy is the master of time, and the engine
only steps past a request without yielding to SimPy when no SimPy event is due before it.

``sleep`` does not move time: cache code is synchronous, so a modeled tier (or the origin)
that "waits" adds the wait to :attr:`SimClock.debt`, the latency of the request being
served. The engine reads and resets :attr:`SimClock.debt` after each request (inline: it is
the hot path; :meth:`SimClock.take_debt` does the same for other callers) and turns it into
the request's response time.
"""
from __future__ import annotations

from datetime import datetime, timezone


class SimClock:
    """A :class:`~wedcache.clock.Clock` whose time the simulation engine sets.

    :param start: calendar instant of simulated time 0 (a naive datetime is read as UTC).
    """

    __slots__ = ("epoch", "t", "debt")  # read and set once per simulated request

    def __init__(self, start: datetime | float):
        if isinstance(start, datetime):
            start = (start.replace(tzinfo=timezone.utc) if start.tzinfo is None else start).timestamp()
        self.epoch = float(start)
        self.t = 0.0  # seconds since the start; set by the engine, never decreased
        self.debt = 0.0  # seconds the current request has spent waiting on modeled backends

    def now(self) -> float:
        return self.epoch + self.t

    def sleep(self, seconds: float) -> None:
        """Charge ``seconds`` of waiting to the request being served (time does not move)."""
        if seconds > 0:
            self.debt += seconds

    def take_debt(self) -> float:
        """The waiting charged since the last call, reset to zero."""
        debt, self.debt = self.debt, 0.0
        return debt

    def advance_to(self, t: float) -> None:
        """Move simulated time to ``t`` seconds from the start (never backwards)."""
        if t < self.t:
            raise ValueError(f"simulated time cannot go backwards ({t} < {self.t})")
        self.t = t
