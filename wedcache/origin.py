"""Where answers come from on a miss: :class:`SimulatedOrigin`.

A stand-in for an LLM: the answer text is derived from the query and the context (same
question, same answer), latency is drawn from a log-normal distribution fixed by its median
and 95th percentile, each call costs ``cost_per_call_usd``, and waiting happens on the
injected clock — so the live service waits in wall time and the simulation in simulated
time, with the same code.
"""
from __future__ import annotations

import hashlib
import math
import threading
from typing import Any

import numpy as np

from .clock import Clock, SystemClock
from .context import WeddingContext

_Z95 = 1.6448536269514722


class SimulatedOrigin:
    """A deterministic fake LLM with realistic latency and cost.

    :param latency_median_ms: median latency (default 1200 ms).
    :param latency_p95_ms: 95th percentile latency (default 2500 ms).
    :param cost_per_call_usd: what one call costs.
    :param seed: seed of the latency generator.
    """

    model = "simulated-wedding-llm"

    def __init__(self, clock: Clock | None = None, *, latency_median_ms: float = 1200.0,
                 latency_p95_ms: float = 2500.0, cost_per_call_usd: float = 0.002, seed: int | None = 0):
        if latency_median_ms < 0 or latency_p95_ms < latency_median_ms:
            raise ValueError("latency_p95_ms must be >= latency_median_ms >= 0")
        self.clock = clock or SystemClock()
        self.cost_per_call_usd = cost_per_call_usd
        self._mu = math.log(max(latency_median_ms, 1e-6) / 1000)
        self._sigma = math.log(max(latency_p95_ms, 1e-6) / max(latency_median_ms, 1e-6)) / _Z95
        self._zero = latency_median_ms == 0
        self._rng = np.random.default_rng(seed)
        self._lock = threading.Lock()
        self.calls = 0
        self.cost_usd = 0.0

    @property
    def instant(self) -> bool:
        """Answers take no time (a zero median latency)."""
        return self._zero

    def latency_seconds(self) -> float:
        """One latency draw."""
        if self._zero:
            return 0.0
        with self._lock:
            return float(self._rng.lognormal(self._mu, self._sigma))

    def answer(self, query: str, context: WeddingContext) -> dict[str, Any]:
        """Wait one latency draw on the clock, then return the answer."""
        self.clock.sleep(self.latency_seconds())
        return self.respond(query, context)

    def respond(self, query: str, context: WeddingContext) -> dict[str, Any]:
        """The answer without waiting (the simulation schedules the wait itself); counts the call."""
        self.charge()
        return compose_answer(query, context, self.model)

    def charge(self) -> None:
        """Count one call and its cost."""
        with self._lock:
            self.calls += 1
            self.cost_usd += self.cost_per_call_usd

    def share_over(self, ms: float) -> float:
        """P(latency > ``ms``) under this origin's log-normal latency."""
        if self._zero:
            return 0.0 if ms >= 0 else 1.0
        if ms <= 0:
            return 1.0
        if self._sigma == 0:  # a fixed latency
            return 1.0 if math.exp(self._mu) * 1000 > ms else 0.0
        z = (math.log(ms / 1000) - self._mu) / self._sigma
        return 0.5 * math.erfc(z / math.sqrt(2))


def compose_answer(query: str, context: WeddingContext, model: str) -> dict[str, Any]:
    """The deterministic answer text for ``query`` in ``context``."""
    where = context.location or "your area"
    when = context.wedding_date.isoformat() if context.wedding_date else "your date"
    vendors = ", ".join(context.vendor_types) or "vendors"
    digest = hashlib.blake2b(f"{query}|{context.to_json()}".encode(), digest_size=4).hexdigest()
    text = (f"For '{query.strip()}' near {where} on {when}: shortlist three {vendors} with "
            f"availability, compare packages, and confirm quotes in writing (ref {digest}).")
    return {"answer": text, "model": model, "tokens": len(text.split())}
