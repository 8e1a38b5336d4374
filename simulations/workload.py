"""The workload model: wedding-planning cache requests that carry their own timestamps.

One generator feeds the SimPy model, trace replay and the Locust users. Like libCacheSim's
``request_t.clock_time``, every request carries its time (seconds from ``spec.start``), so no
reader needs a clock. Nothing here knows SimPy. Randomness comes from a
:class:`numpy.random.Generator` that the caller passes in; global numpy state is never seeded.

Classes:

- :class:`WorkloadSpec`: what to generate (calendar start, duration, rate, mixes, popularity).
- :class:`Catalogue`: the ``distinct`` queries with their vendor, market, organization and context.
- :class:`Request`: one request (time, query id, organization, query text, camelCase context).
- :class:`Workload`: requests in time order; :meth:`Workload.batches` yields numpy arrays.
- :class:`DataChanges`: when each vendor type's data changed, so a simulator can spot stale hits.

The load profile and arrivals live in :mod:`simulations.profiles`, spatial sampling in
:mod:`simulations.sampling`; both are re-exported here.

Weekly and daily profiles are read in UTC, which stands for the market's local time.
"""
from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator, Mapping

import numpy as np

from wedcache.policy import MARKET_TIERS, VENDOR_TYPES, Policy

from .profiles import (EPOCH_WEEKDAY, ARRIVAL_PROCESSES, DAY_SECONDS, PoissonArrivals, UniformArrivals,  # noqa: F401
                       arrival_times, daily_multiplier, iter_arrival_chunks, rate_at, rate_series,
                       season_midpoint, season_midpoints, seasonal_multiplier, weekly_multiplier)
from .sampling import sample_batches, sample_keys, splitmix64  # noqa: F401  (re-exported)
from .semantic_workload import MAX_PARAPHRASES, Variants



DEFAULT_MARKET_MIX = {"tier_1": 0.3, "tier_2": 0.3, "tier_3": 0.4}
DEFAULT_VENDOR_MIX = {
    "venue": 0.20, "photographer": 0.18, "caterer": 0.10, "florist": 0.09, "band_dj": 0.07,
    "videographer": 0.06, "wedding_planner": 0.06, "hair_makeup": 0.06, "baker": 0.05,
    "other": 0.05, "transportation": 0.04, "officiant": 0.04,
}

LOCATIONS: dict[str, tuple[str, ...]] = {
    "tier_1": ("New York, NY", "Los Angeles, CA", "San Francisco, CA"),
    "tier_2": ("Atlanta, GA", "Dallas, TX", "Chicago, IL", "Boston, MA", "Seattle, WA"),
    "tier_3": ("Asheville, NC", "Napa, CA", "Savannah, GA", "Sedona, AZ", "Charleston, SC",
               "Traverse City, MI", "Boise, ID", "Burlington, VT", "Santa Fe, NM", "Bozeman, MT",
               "Door County, WI", "Lake Tahoe, NV", "Hudson Valley, NY", "Fredericksburg, TX",
               "Kennebunkport, ME"),
}
# Budget per guest, in dollars, by market tier (before per-wedding noise).
BUDGET_PER_GUEST = {"tier_1": 320.0, "tier_2": 230.0, "tier_3": 160.0}
STYLES = ("rustic barn", "modern", "boho", "classic", "beach", "garden", "city loft", "vintage")
QUERY_TEMPLATES: dict[str, tuple[str, ...]] = {
    "venue": ("{style} venues near {location} for {guests} guests",
              "wedding venues in {location} under ${budget} for {guests} guests"),
    "photographer": ("{style} wedding photographers in {location}",
                     "how much does a wedding photographer cost in {location} in {month}"),
    "videographer": ("wedding videographers in {location} for a {month} wedding",
                     "{style} wedding film packages near {location}"),
    "caterer": ("caterers in {location} for {guests} guests",
                "{style} wedding menu ideas for {guests} guests in {location}"),
    "florist": ("{month} wedding flowers in {location}",
                "{style} bridal bouquet florists near {location}"),
    "band_dj": ("wedding DJs in {location} for a {month} reception",
                "live wedding bands near {location} for {guests} guests"),
    "wedding_planner": ("full-service wedding planners in {location} with a ${budget} budget",
                        "day-of coordinators near {location} for a {month} wedding"),
    "baker": ("wedding cake bakers in {location} for {guests} guests",
              "{style} wedding cake ideas near {location}"),
    "transportation": ("guest shuttle services in {location} for {guests} guests",
                       "vintage getaway cars near {location}"),
    "officiant": ("wedding officiants in {location} for a {month} ceremony",
                  "non-denominational officiants near {location}"),
    "hair_makeup": ("bridal hair and makeup artists in {location}",
                    "{style} bridal makeup trials near {location}"),
    "other": ("wedding planning checklist for a {month} wedding in {location}",
              "how to plan a {style} wedding in {location} on a ${budget} budget"),
}


def _require(ok: bool, name: str, message: str) -> None:
    if not ok:
        raise ValueError(f"WorkloadSpec.{name}: {message}")


def _check_mix(name: str, mix: Mapping[str, float], allowed: tuple[str, ...]) -> None:
    _require(isinstance(mix, Mapping) and len(mix) > 0, name, "must be a non-empty mapping")
    unknown = sorted(set(mix) - set(allowed))
    _require(not unknown, name, f"unknown keys {unknown}; allowed: {', '.join(allowed)}")
    _require(all(isinstance(v, (int, float)) and v >= 0 for v in mix.values()), name,
             "shares must be non-negative numbers")
    _require(sum(mix.values()) > 0, name, "shares must not all be zero")


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


@dataclass(frozen=True)
class WorkloadSpec:
    """What to generate. Shares in the mixes are normalised, so they need not sum to 1."""

    start: datetime = datetime(2026, 1, 1, tzinfo=timezone.utc)
    """Calendar instant of time 0 (UTC; a naive datetime is read as UTC)."""
    duration_seconds: float = DAY_SECONDS
    base_qps: float = 1.0
    """Requests per second before the seasonal, weekly and daily multipliers."""
    seasonal: bool = True
    weekly: bool = True
    daily: bool = True
    arrivals: str = "poisson"
    """``"poisson"`` (non-homogeneous Poisson) or ``"uniform"`` (evenly spaced at the rate)."""
    distinct: int = 10_000
    """Number of distinct queries in the catalogue."""
    zipf_alpha: float = 1.0
    organizations: int = 20
    market_mix: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_MARKET_MIX))
    vendor_mix: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_VENDOR_MIX))
    data_change_rate_per_hour: float | None = None
    """Changes per hour per vendor type; ``None``: volatilityFactor / (baseTtl / 3600)."""
    paraphrase_variants: int = 0
    """Paraphrases per query (:mod:`simulations.semantic_workload`; the simulation's source draws them)."""
    near_miss_share: float = 0.0
    """Share of requests that ask a near miss of their query (another city or guest range)."""

    def __post_init__(self) -> None:
        _require(isinstance(self.start, datetime), "start", "must be a datetime")
        utc = self.start.replace(tzinfo=timezone.utc) if self.start.tzinfo is None else self.start
        object.__setattr__(self, "start", utc.astimezone(timezone.utc))
        self._check_numbers()
        _check_mix("market_mix", self.market_mix, MARKET_TIERS)
        _check_mix("vendor_mix", self.vendor_mix, VENDOR_TYPES)

    def _check_numbers(self) -> None:
        _require(self.duration_seconds > 0, "duration_seconds", "must be positive")
        _require(self.base_qps > 0, "base_qps", "must be positive")
        _require(self.arrivals in ARRIVAL_PROCESSES, "arrivals", f"must be one of {', '.join(ARRIVAL_PROCESSES)}")
        _require(_is_int(self.distinct) and self.distinct >= 1, "distinct", "must be an integer >= 1")
        _require(self.zipf_alpha >= 0, "zipf_alpha", "must be >= 0")
        _require(_is_int(self.organizations) and self.organizations >= 1, "organizations",
                 "must be an integer >= 1")
        rate = self.data_change_rate_per_hour
        _require(rate is None or rate >= 0, "data_change_rate_per_hour", "must be None or >= 0")
        _require(_is_int(self.paraphrase_variants) and 0 <= self.paraphrase_variants <= MAX_PARAPHRASES,
                 "paraphrase_variants", f"must be an integer between 0 and {MAX_PARAPHRASES}")
        _require(0 <= self.near_miss_share < 1, "near_miss_share", "must be >= 0 and < 1")

    def at(self, seconds: float) -> datetime:
        """The calendar instant ``seconds`` after :attr:`start`."""
        return self.start + timedelta(seconds=float(seconds))


# --- catalogue -----------------------------------------------------------------------------

def zipf_probabilities(n: int, alpha: float) -> np.ndarray:
    """P(rank k) proportional to 1 / (k + 1) ** alpha for k in 0..n-1 (alpha 0 = uniform)."""
    weights = np.arange(1, n + 1, dtype=float) ** -float(alpha)
    return weights / weights.sum()


def _draw_mix(rng: np.random.Generator, mix: Mapping[str, float], n: int) -> tuple[tuple[str, ...], np.ndarray]:
    names = tuple(mix)
    shares = np.asarray([mix[name] for name in names], dtype=float)
    return names, rng.choice(len(names), size=n, p=shares / shares.sum())


def _pick_within(rng: np.random.Generator, sizes: np.ndarray) -> np.ndarray:
    """A uniform index below ``sizes[i]`` for each i."""
    return (rng.random(sizes.size) * sizes).astype(np.int64)


def _saturdays(start: datetime, rng: np.random.Generator, n: int) -> np.ndarray:
    """Wedding dates 2-18 months after ``start``, moved forward to a Saturday."""
    days = np.datetime64(start.date()) + rng.integers(60, 540, size=n)
    weekday = (days.astype(np.int64) + EPOCH_WEEKDAY) % 7
    return days + (5 - weekday) % 7


def org_name(index: int) -> str:
    return f"org-{index:03d}"


class Catalogue:
    """The ``distinct`` queries of a workload, by popularity rank (id 0 is the most popular).

    Per-query fields are numpy arrays indexed by query id (codes into :attr:`vendor_names`,
    :attr:`tier_names` …), so a simulator can look up a whole batch; :meth:`query`,
    :meth:`context`, :meth:`vendor_type` … render one query."""

    def __init__(self, spec: WorkloadSpec, rng: np.random.Generator):
        n = self.size = spec.distinct
        self.vendor_names, self.vendor_codes = _draw_mix(rng, spec.vendor_mix, n)
        self.tier_names, self.tier_codes = _draw_mix(rng, spec.market_mix, n)
        self.locations = tuple(loc for tier in self.tier_names for loc in LOCATIONS[tier])
        self.location_codes = self._locations(rng)
        sizes = np.array([len(QUERY_TEMPLATES[v]) for v in self.vendor_names])[self.vendor_codes]
        self.template_codes = _pick_within(rng, sizes)
        self.style_codes = rng.integers(len(STYLES), size=n)
        self.wedding_dates = _saturdays(spec.start, rng, n)
        self.guest_counts = np.clip(np.rint(rng.lognormal(math.log(120), 0.45, n)), 20, 400).astype(np.int64)
        self.budgets = self._budgets(rng)
        self.org_codes = rng.integers(spec.organizations, size=n)
        self.probabilities = zipf_probabilities(n, spec.zipf_alpha)
        self._cdf = np.cumsum(self.probabilities)

    def _locations(self, rng: np.random.Generator) -> np.ndarray:
        sizes = np.array([len(LOCATIONS[t]) for t in self.tier_names])
        offsets = np.concatenate(([0], np.cumsum(sizes)[:-1]))
        return offsets[self.tier_codes] + _pick_within(rng, sizes[self.tier_codes])

    def _budgets(self, rng: np.random.Generator) -> np.ndarray:
        per_guest = np.array([BUDGET_PER_GUEST[t] for t in self.tier_names])[self.tier_codes]
        noise = rng.lognormal(0.0, 0.35, self.size)
        return np.maximum(np.round(self.guest_counts * per_guest * noise, -2), 1000.0)

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """``size`` query ids drawn by Zipf popularity (inverse CDF)."""
        ids = np.searchsorted(self._cdf, rng.random(size) * self._cdf[-1], side="right")
        return np.minimum(ids, self.size - 1)

    def restricted(self, kept: np.ndarray) -> "Subset":
        """Popularity restricted to the ids ``kept`` (spatial sampling)."""
        return Subset(kept, self.probabilities[kept])


    def vendor_type(self, query_id: int) -> str:
        return self.vendor_names[self.vendor_codes[query_id]]

    def market_tier(self, query_id: int) -> str:
        return self.tier_names[self.tier_codes[query_id]]

    def location(self, query_id: int) -> str:
        return self.locations[self.location_codes[query_id]]

    def org_id(self, query_id: int) -> str:
        return org_name(int(self.org_codes[query_id]))

    def template(self, query_id: int) -> str:
        """The canonical template of the query (one of its vendor type's :data:`QUERY_TEMPLATES`)."""
        return QUERY_TEMPLATES[self.vendor_type(query_id)][self.template_codes[query_id]]

    def slots(self, query_id: int, location: str | None = None, guests: int | None = None) -> dict[str, Any]:
        """The values of the query's template slots (``location``/``guests``: replacements)."""
        return {"style": STYLES[self.style_codes[query_id]], "location": location or self.location(query_id),
                "guests": int(self.guest_counts[query_id]) if guests is None else guests,
                "budget": f"{self.budgets[query_id]:,.0f}",
                "month": self.wedding_dates[query_id].astype(datetime).strftime("%B")}

    def query(self, query_id: int, location: str | None = None, guests: int | None = None) -> str:
        """The query text, from its vendor type's template (with a replaced ``location`` or
        ``guests``: a near miss, see :mod:`simulations.semantic_workload`)."""
        return self.template(query_id).format(**self.slots(query_id, location, guests))

    def context(self, query_id: int, location: str | None = None, guests: int | None = None) -> dict[str, Any]:
        """The query's ``weddingContext`` (camelCase, as the HTTP API takes it)."""
        return {"weddingDate": str(self.wedding_dates[query_id]), "location": location or self.location(query_id),
                "vendorTypes": [self.vendor_type(query_id)],
                "guestCount": int(self.guest_counts[query_id]) if guests is None else guests,
                "budget": float(self.budgets[query_id])}

    def other_location(self, query_id: int) -> str:
        """Another location of the query's market tier (the next one, cyclically)."""
        places = LOCATIONS[self.market_tier(query_id)]
        return places[(places.index(self.location(query_id)) + 1) % len(places)]


class Subset:
    """Some of a catalogue's ids with their popularity: draws ids among them only."""

    def __init__(self, ids: np.ndarray, probabilities: np.ndarray):
        self.ids, self.mass = ids, float(probabilities.sum())
        """``mass``: the share of all requests that go to these ids."""
        self._cdf = np.cumsum(probabilities)

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        if not self.ids.size:
            return np.empty(0, np.int64)
        picks = np.searchsorted(self._cdf, rng.random(size) * self._cdf[-1], side="right")
        return self.ids[np.minimum(picks, self.ids.size - 1)]


# --- requests and the workload ---------------------------------------------------------------

@dataclass(slots=True)
class Request:
    """One cache request; ``time`` is seconds from ``spec.start`` (the request's own clock)."""

    time: float
    query_id: int
    org_id: str
    query: str
    context: dict[str, Any]
    vendor_type: str
    market_tier: str


def as_generator(rng: np.random.Generator | int | None) -> np.random.Generator:
    """``rng`` itself, or a new generator seeded with it."""
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


class Workload:
    """Requests in time order for ``spec`` under ``policy``.

    The catalogue, the request stream, the data changes and the variant draws use independent
    child generators (``rng.spawn``; the first three are those of a workload without variants).
    Iterating again replays the same requests. :attr:`variants` are applied by the simulation's
    source (:class:`~simulations.sources.WorkloadSource`); :meth:`batches` gives query ids."""

    def __init__(self, spec: WorkloadSpec, policy: Policy, rng: np.random.Generator | int | None = None):
        catalogue_rng, self._stream, changes_rng, self.variants_rng = as_generator(rng).spawn(4)
        self.spec, self.policy = spec, policy
        self.variants = Variants(spec.paraphrase_variants, spec.near_miss_share)
        self.catalogue = Catalogue(spec, catalogue_rng)
        self.changes = DataChanges(spec, policy, changes_rng)

    def batches(self, chunk_seconds: float = 3600.0) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``(times, query_ids)`` arrays per chunk, for simulation loops that skip :class:`Request`."""
        rng = copy.deepcopy(self._stream)
        for times in iter_arrival_chunks(self.spec, self.policy, rng, chunk_seconds):
            yield times, self.catalogue.sample(rng, times.size)

    def sampled_batches(self, rate: float, salt: int = 0,
                        chunk_seconds: float = 3600.0) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Only the requests for the ids :func:`sample_keys` keeps at ``rate``, generated directly.

        The requests for a set of ids with popularity mass ``m`` form a Poisson process of
        rate ``m`` times the total (Poisson splitting), each asking for id ``k`` with
        probability ``p_k / m``. So the sampled stream is drawn at that rate, not filtered
        from the full one: a year costs what its sample costs. (Exact for Poisson arrivals;
        for uniform arrivals the sampled stream is itself evenly spaced.)"""
        subset = self.sampled_subset(rate, salt)
        rng = copy.deepcopy(self._stream)
        spec = dataclasses.replace(self.spec, base_qps=self.spec.base_qps * subset.mass)
        for times in iter_arrival_chunks(spec, self.policy, rng, chunk_seconds):
            yield times, subset.sample(rng, times.size)

    def sampled_subset(self, rate: float, salt: int = 0) -> Subset:
        """The ids kept at ``rate`` and their share of the traffic."""
        ids = np.arange(self.catalogue.size)
        return self.catalogue.restricted(ids[sample_keys(ids, rate, salt)])

    def __iter__(self) -> Iterator[Request]:
        for times, ids in self.batches():
            for time, query_id in zip(times.tolist(), ids.tolist()):
                yield self.request(time, query_id)

    def request(self, time: float, query_id: int) -> Request:
        """The :class:`Request` for catalogue entry ``query_id`` at ``time``."""
        cat = self.catalogue
        return Request(time, query_id, cat.org_id(query_id), cat.query(query_id), cat.context(query_id),
                       cat.vendor_type(query_id), cat.market_tier(query_id))


# --- data changes --------------------------------------------------------------------------

def change_rate_per_hour(vendor_type: str, spec: WorkloadSpec, policy: Policy) -> float:
    """How often ``vendor_type``'s data changes, per hour.

    ``spec.data_change_rate_per_hour`` when set; otherwise
    ``volatilityFactor / (baseTtl / 3600)``: a vendor whose answers the policy keeps briefly
    and calls volatile changes often (florist 1.8 / 4 h = 0.45 per hour; venue 0.8 / 24 h)."""
    if spec.data_change_rate_per_hour is not None:
        return float(spec.data_change_rate_per_hour)
    vendor = policy.vendors[vendor_type]
    return vendor.volatilityFactor / (vendor.baseTtl / 3600)


class DataChanges:
    """Per vendor type, a Poisson process of change times over the run (seconds from start)."""

    def __init__(self, spec: WorkloadSpec, policy: Policy, rng: np.random.Generator):
        self.rates_per_hour = {v: change_rate_per_hour(v, spec, policy) for v in VENDOR_TYPES}
        self.times = {v: self._process(rng, rate, spec.duration_seconds)
                      for v, rate in self.rates_per_hour.items()}
        """Sorted change times per vendor type."""

    @staticmethod
    def _process(rng: np.random.Generator, rate_per_hour: float, duration: float) -> np.ndarray:
        count = rng.poisson(rate_per_hour * duration / 3600)
        return np.sort(rng.random(count) * duration)

    def changed_between(self, vendor_type: str, t0: Any, t1: Any) -> Any:
        """Whether ``vendor_type``'s data changed in ``(t0, t1]``: an entry stored at ``t0`` and
        served at ``t1`` is stale. Scalars give a bool; arrays give a boolean array."""
        times = self.times[vendor_type]
        changed = np.searchsorted(times, t0, side="right") < np.searchsorted(times, t1, side="right")
        return bool(changed) if np.ndim(changed) == 0 else changed
