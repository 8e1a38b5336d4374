"""Fail-open guards for backend tiers: :class:`Backoff` and :class:`CircuitBreaker`.

A breaker opens after ``failures`` consecutive errors, lets one probe through once its
cool-down has passed (half-open), closes on a successful probe and re-opens, with a longer
cool-down (:meth:`Backoff.compute`), on a failed one. Time comes from the injected clock.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable

from .clock import Clock

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential cool-down: ``base * 2**(reopens)``, at most ``cap`` seconds."""

    base: float = 5.0
    cap: float = 60.0

    def compute(self, reopens: int) -> float:
        return min(self.cap, self.base * (2 ** max(0, reopens)))


class CircuitBreaker:
    """Per-tier breaker; ``on_change(name, old, new)`` is called on every state change."""

    def __init__(self, name: str, clock: Clock, failures: int = 5, backoff: Backoff = Backoff(),
                 on_change: Callable[[str, str, str], None] | None = None):
        self.name, self.clock, self.threshold, self.backoff = name, clock, failures, backoff
        self.on_change = on_change
        self.state = CLOSED
        self.failures = 0
        self.reopens = 0
        self.opened_at = 0.0
        self._probing = False
        self._lock = threading.Lock()

    def allow(self) -> bool:
        """May a call go to the tier now?"""
        if self.state == CLOSED:
            return True
        with self._lock:
            if self.state == OPEN and self.clock.now() >= self.opened_at + self.backoff.compute(self.reopens):
                self._set(HALF_OPEN)
            if self.state == HALF_OPEN and not self._probing:
                self._probing = True
                return True
            return False

    def success(self) -> None:
        if self.state == CLOSED and not self.failures:
            return
        with self._lock:
            self.failures = 0
            self.reopens = 0
            self._probing = False
            self._set(CLOSED)

    def failure(self) -> None:
        with self._lock:
            self.failures += 1
            if self.state == HALF_OPEN:
                self.reopens += 1
                self._open()
            elif self.state == CLOSED and self.failures >= self.threshold:
                self._open()

    def snapshot(self) -> dict:
        return {"state": self.state, "failures": self.failures, "opened_at": self.opened_at or None}

    def _open(self) -> None:
        self._probing = False
        self.opened_at = self.clock.now()
        self._set(OPEN)

    def _set(self, state: str) -> None:
        old, self.state = self.state, state
        if old != state and self.on_change:
            self.on_change(self.name, old, state)
