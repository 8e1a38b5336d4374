"""The wedding-aware guard: a near match counts only when what changes the answer agrees.

:meth:`Guard.verdict` compares the :class:`~.entities.Entities` of the new question with
those stored with the candidate and returns ``None`` (agree) or the first named reason they
do not. Every rejection is counted in ``ai_cache_semantic_rejections_total{reason}``.

Rules, in order (each a constant below): the dates (and months, weekdays, seasons; a day
without a year agrees with the same day of a given year), the
places, the vendor types, the guest-count ranges, the budget ranges and the polarity
(negations and opposed words) must be equal; style words must both be absent or share one
("barn" ≈ "rustic barn", not "ballroom"); what is asked (a cost, availability, weather,
a schedule) must be equal; any other figure in the text must be equal
("4 hours" ≠ "6 hours").
"""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

from .entities import Entities

DATE = "date"
LOCATION = "location"
VENDOR_TYPE = "vendor_type"
GUEST_COUNT = "guest_count"
BUDGET = "budget"
POLARITY = "polarity"
STYLE = "style"
ASK = "ask"
NUMBER = "number"
REASONS: tuple[str, ...] = (DATE, LOCATION, VENDOR_TYPE, GUEST_COUNT, BUDGET, POLARITY, STYLE, ASK, NUMBER)

_EQUAL_FIELDS: tuple[tuple[str, str], ...] = (
    ("places", LOCATION), ("vendors", VENDOR_TYPE), ("guests", GUEST_COUNT),
    ("budgets", BUDGET), ("poles", POLARITY),
)


def disagreement(query: Entities, stored: Entities) -> str | None:
    """The first reason ``query`` and ``stored`` need different answers, or ``None``."""
    if not dates_agree(query.dates, stored.dates):
        return DATE
    for name, reason in _EQUAL_FIELDS:
        if getattr(query, name) != getattr(stored, name):
            return reason
    if (query.styles or stored.styles) and not query.styles & stored.styles:
        return STYLE
    if query.asks != stored.asks:
        return ASK
    if query.numbers != stored.numbers:
        return NUMBER
    return None


def dates_agree(a: frozenset[str], b: frozenset[str]) -> bool:
    """Equal date tokens, where a day without a year ("June 6", ``06-06``) agrees with the
    same day in a given year (``2026-06-06``) on the other side."""
    return _with_years(a, b) == _with_years(b, a)


def _with_years(own: frozenset[str], other: frozenset[str]) -> frozenset[str]:
    full = {t[5:]: t for t in other if len(t) == 10 and t[4] == "-"}
    return frozenset(full.get(t, t) if len(t) == 5 and t[2] == "-" else t for t in own)


class Guard:
    """:func:`disagreement`, counted per reason in ``registry`` (default: a private one).

    Pass the service's registry (``ServiceMetrics.registry``) to expose the counter on
    ``/metrics``; every reason is pre-created at 0 so dashboards see the series at once.
    """

    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry if registry is not None else CollectorRegistry()
        self.rejections = Counter("ai_cache_semantic_rejections", "Near matches the semantic guard rejected, "
                                  "by the entity that disagreed.", ("reason",), registry=self.registry)
        for reason in REASONS:
            self.rejections.labels(reason)

    def verdict(self, query: Entities, stored: Entities) -> str | None:
        """``None`` when the match may answer, else the (counted) rejection reason."""
        reason = disagreement(query, stored)
        if reason is not None:
            self.rejections.labels(reason).inc()
        return reason

    def count(self, reason: str) -> float:
        """How many rejections ``reason`` has counted (for tests and reports)."""
        value = self.registry.get_sample_value("ai_cache_semantic_rejections_total", {"reason": reason})
        return value or 0.0
