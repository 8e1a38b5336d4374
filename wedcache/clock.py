"""Injected time: :class:`Clock` and its :class:`SystemClock` and :class:`ManualClock`.

Every expiry, age, rate window and breaker cool-down in wedcache reads a ``Clock``, so the
same cache runs on wall time in the service, on a manual clock in tests (no sleeping to
wait for expiry) and on simulated time in the SimPy model (``simulations``).
"""
from __future__ import annotations

import threading
import time
from datetime import date, datetime, timezone
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    """What the cache needs to know about time."""

    def now(self) -> float:
        """Seconds since the Unix epoch."""

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time."""


class SystemClock:
    """Wall time: ``time.time`` and ``time.sleep``."""

    now = staticmethod(time.time)

    @staticmethod
    def sleep(seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class ManualClock:
    """A clock that moves only when told to; ``sleep`` advances it (thread-safe).

    :param start: initial time, seconds since the epoch (default 2026-06-06 12:00 UTC, a
        summer Saturday).
    """

    def __init__(self, start: float | datetime = datetime(2026, 6, 6, 12, tzinfo=timezone.utc)):
        self._now = start.timestamp() if isinstance(start, datetime) else float(start)
        self._lock = threading.Lock()

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> float:
        """Move time forward by ``seconds`` and return the new time."""
        if seconds < 0:
            raise ValueError("a clock cannot go backwards")
        with self._lock:
            self._now += seconds
            return self._now

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self.advance(seconds)


def today(clock: Clock) -> date:
    """The clock's current calendar date, in UTC."""
    return datetime.fromtimestamp(clock.now(), tz=timezone.utc).date()


def iso_utc(epoch: float, timespec: str = "milliseconds") -> str:
    """Epoch seconds as ISO 8601 UTC with a ``Z`` (``2026-06-06T12:00:00.000Z``), to ``timespec``."""
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec=timespec).replace("+00:00", "Z")
