"""Paraphrases and near misses of the catalogue's queries, for simulating semantic matching.

Users ask one question in many words; exact keys miss those, semantic matching should hit
them, and must not answer a question that differs in what matters. So, when a scenario asks
for it (``[queries] paraphrase_variants``, ``near_miss_share``), each catalogue query has
*variants*, each its own object (its own cache key) with a ground-truth answer id:

* variant 0 is the canonical wording (:data:`~simulations.workload.QUERY_TEMPLATES`);
* variants ``1..k`` are paraphrases (:data:`PARAPHRASES`): other wordings and spellings
  ("near" / "around", "guests" / "people", "$20,000" / "$20k", "Dallas, TX" / "Dallas") with
  the same entities and context, so the same true answer as variant 0;
* with a near-miss share, two more: the canonical wording in *another city* of the same
  market tier, and with a guest count in *another range* (:data:`NEAR_MISSES`); each has
  its own true answer, so serving it another variant's entry is a false hit.

Object ``q * per_query + v`` is variant ``v`` of query ``q`` (:class:`Variants`); with no
paraphrases and no near misses ``per_query`` is 1 and object ids are query ids, unchanged.
The spellings (:func:`budget_text`, :func:`date_text`) are shared with the labelled pairs'
generator, ``simulations/data/make_semantic_pairs.py``.
"""
from __future__ import annotations

import copy
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np

if TYPE_CHECKING:
    from .workload import Catalogue

MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December"]

PARAPHRASES: dict[str, tuple[str, ...]] = {
    "{style} venues near {location} for {guests} guests": (
        "{style} wedding venues around {location}, {guests} people",
        "where can I find a {style} venue in {location} that holds {guests} guests?",
        "{location} {style} wedding venues with room for {guests} guests"),
    "wedding venues in {location} under ${budget} for {guests} guests": (
        "venues in {location} for a wedding of {guests} people under {budget}",
        "{location} wedding venues under {budget} for {guests} guests",
        "{location} wedding venues under {budget} that fit {guests} guests"),
    "{style} wedding photographers in {location}": (
        "{style} photographers for weddings around {location}",
        "{location} {style} wedding photographers",
        "find {style} wedding photographers near {location}"),
    "how much does a wedding photographer cost in {location} in {month}": (
        "what do wedding photographers charge in {location} in {month}?",
        "average price of a wedding photographer in {location} in {month}",
        "{month} wedding photographer prices in {location}"),
    "wedding videographers in {location} for a {month} wedding": (
        "videographers near {location} for a {month} wedding",
        "{location} wedding videographers for a wedding in {month}",
        "{month} wedding videographers around {location}"),
    "{style} wedding film packages near {location}": (
        "{style} wedding videography packages around {location}",
        "{location} {style} wedding film packages",
        "{style} wedding video packages in {location}"),
    "caterers in {location} for {guests} guests": (
        "wedding caterers around {location} for {guests} people",
        "{location} caterers for {guests} guests",
        "catering companies in {location} that serve {guests} guests"),
    "{style} wedding menu ideas for {guests} guests in {location}": (
        "{style} wedding menu ideas in {location} for {guests} people",
        "{location} {style} wedding menus for {guests} guests",
        "ideas for a {style} wedding menu for {guests} guests near {location}"),
    "{month} wedding flowers in {location}": (
        "wedding flowers for {month} around {location}",
        "{location} wedding flowers in {month}",
        "flowers for a {month} wedding near {location}"),
    "{style} bridal bouquet florists near {location}": (
        "{style} bridal bouquet florists around {location}",
        "{location} florists for {style} bridal bouquets",
        "florists in {location} for a {style} bridal bouquet"),
    "wedding DJs in {location} for a {month} reception": (
        "DJs near {location} for a {month} wedding reception",
        "{location} wedding DJs for a reception in {month}",
        "{month} reception DJs around {location}"),
    "live wedding bands near {location} for {guests} guests": (
        "live bands for a wedding around {location} with {guests} people",
        "{location} live wedding bands for {guests} guests",
        "live wedding bands in {location} for {guests} guests"),
    "full-service wedding planners in {location} with a ${budget} budget": (
        "full-service wedding planners around {location} for a {budget} budget",
        "{location} full-service wedding planners with a budget of {budget}",
        "full-service planners for a wedding in {location} on a {budget} budget"),
    "day-of coordinators near {location} for a {month} wedding": (
        "day-of wedding coordinators around {location} for {month}",
        "{location} day-of coordinators for a {month} wedding",
        "day-of coordinators in {location} for a wedding in {month}"),
    "wedding cake bakers in {location} for {guests} guests": (
        "cake bakers around {location} for a wedding of {guests} people",
        "{location} wedding cake bakers for {guests} guests",
        "bakers in {location} who make wedding cakes for {guests} guests"),
    "{style} wedding cake ideas near {location}": (
        "{style} wedding cake ideas around {location}",
        "{location} {style} wedding cake ideas",
        "ideas for a {style} wedding cake in {location}"),
    "guest shuttle services in {location} for {guests} guests": (
        "shuttle services for {guests} wedding guests around {location}",
        "{location} guest shuttles for {guests} people",
        "guest shuttle services near {location} for {guests} guests"),
    "vintage getaway cars near {location}": (
        "vintage getaway cars around {location}",
        "{location} vintage getaway cars",
        "vintage wedding getaway cars in {location}"),
    "wedding officiants in {location} for a {month} ceremony": (
        "officiants near {location} for a {month} wedding ceremony",
        "{location} wedding officiants for a ceremony in {month}",
        "{month} ceremony officiants around {location}"),
    "non-denominational officiants near {location}": (
        "non-denominational officiants around {location}",
        "{location} non-denominational wedding officiants",
        "non-denominational officiants in {location}"),
    "bridal hair and makeup artists in {location}": (
        "bridal hair and makeup artists around {location}",
        "{location} bridal hair and makeup artists",
        "hair and makeup artists for brides near {location}"),
    "{style} bridal makeup trials near {location}": (
        "{style} bridal makeup trials around {location}",
        "{location} {style} bridal makeup trials",
        "bridal makeup trials for a {style} look in {location}"),
    "wedding planning checklist for a {month} wedding in {location}": (
        "checklist for planning a {month} wedding in {location}",
        "{location} wedding planning checklist for {month}",
        "{month} wedding planning checklist near {location}"),
    "how to plan a {style} wedding in {location} on a ${budget} budget": (
        "how do I plan a {style} wedding in {location} with a {budget} budget?",
        "planning a {style} wedding around {location} on a {budget} budget",
        "how to plan a {style} wedding near {location} on a budget of {budget}"),
}
"""Other wordings of each canonical template, with the same slots (a paraphrase's budget
slot is spelled with its dollar sign: :func:`budget_text`)."""

MAX_PARAPHRASES = min(len(wordings) for wordings in PARAPHRASES.values())
NEAR_MISSES = ("city", "guests")
"""The near-miss variants, in order after the paraphrases: what each one changes."""


def budget_text(rng: random.Random, amount: int) -> str:
    """``amount`` dollars in one of the ways people write it (``$20,000``, ``$20k``, ``20 grand`` …);
    the short forms only for whole thousands, so every spelling means the same amount."""
    amount = int(amount)
    if amount % 1000:
        return rng.choice([f"${amount:,}", f"${amount}"])
    k = amount // 1000
    return rng.choice([f"${amount:,}", f"${k}k", f"{k}k", f"${amount}", f"{k} grand"])


def date_text(rng: random.Random, y: int, m: int, d: int) -> str:
    """A date in one of the ways people write it (``June 6``, ``6 June``, ``6/6/2026`` …)."""
    month = MONTHS[m - 1]
    return rng.choice([f"{month} {d}", f"{d} {month}", f"{month} {d}{'th' if d not in (1, 2, 3, 21, 22, 23) else ''}",
                       f"{month} {d}, {y}", f"{m}/{d}/{y}"])


def location_text(rng: random.Random, location: str) -> str:
    """``"Dallas, TX"`` as written, or without its state."""
    return rng.choice([location, location.split(",")[0]])


def other_guest_range(guests: int) -> int:
    """A guest count in another range (double, or half above 200): a near miss."""
    return guests * 2 if guests <= 200 else guests // 2


@dataclass(frozen=True)
class Variants:
    """Variants of each catalogue query (see the module docstring): ids, draws and texts.

    :param paraphrases: paraphrase variants per query (``0..MAX_PARAPHRASES``).
    :param near_miss_share: share of requests that ask a near miss, in ``[0, 1)``.
    """

    paraphrases: int = 0
    near_miss_share: float = 0.0

    def __post_init__(self) -> None:
        if not 0 <= self.paraphrases <= MAX_PARAPHRASES:
            raise ValueError(f"paraphrase_variants: must be between 0 and {MAX_PARAPHRASES}")
        if not 0 <= self.near_miss_share < 1:
            raise ValueError("near_miss_share: must be >= 0 and < 1")

    @property
    def per_query(self) -> int:
        """Objects per catalogue query."""
        return 1 + self.paraphrases + (len(NEAR_MISSES) if self.near_miss_share > 0 else 0)

    @property
    def enabled(self) -> bool:
        return self.per_query > 1

    def object_ids(self, query_ids: np.ndarray) -> np.ndarray:
        """Every variant's object id of each of ``query_ids``."""
        n = self.per_query
        return (np.asarray(query_ids, np.int64)[:, None] * n + np.arange(n)).ravel()

    def draw(self, rng: np.random.Generator, query_ids: np.ndarray) -> np.ndarray:
        """One object per request of ``query_ids``: canonical and paraphrases alike, a near
        miss with probability ``near_miss_share``."""
        size = query_ids.size
        variant = rng.integers(0, self.paraphrases + 1, size)
        if self.near_miss_share > 0:
            near = rng.random(size) < self.near_miss_share
            variant[near] = self.paraphrases + 1 + rng.integers(0, len(NEAR_MISSES), int(near.sum()))
        return query_ids * self.per_query + variant

    def apply(self, batches: Iterator[tuple[np.ndarray, np.ndarray]],
              rng: np.random.Generator) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``(times, query ids)`` batches as ``(times, object ids)`` (``rng`` is copied: replayable)."""
        rng = copy.deepcopy(rng)
        for times, ids in batches:
            yield times, self.draw(rng, ids)

    def answer_ids(self, n_queries: int) -> np.ndarray:
        """Per object id, its ground-truth answer: a paraphrase's is its canonical object's,
        a near miss's is its own."""
        n = self.per_query
        ids = np.arange(n_queries * n, dtype=np.int64)
        return np.where(ids % n <= self.paraphrases, ids - ids % n, ids)

    def near_misses(self, object_ids: np.ndarray) -> np.ndarray:
        """Which of ``object_ids`` are near-miss variants."""
        return np.asarray(object_ids) % self.per_query > self.paraphrases

    def describe(self, catalogue: "Catalogue", object_id: int) -> tuple[int, str, dict[str, Any]]:
        """``(query id, query text, weddingContext)`` of one object."""
        query_id, variant = divmod(int(object_id), self.per_query)
        if variant == 0:
            return query_id, catalogue.query(query_id), catalogue.context(query_id)
        if variant > self.paraphrases:
            return (query_id, *self._near_miss(catalogue, query_id, NEAR_MISSES[variant - self.paraphrases - 1]))
        rng = random.Random(int(object_id))  # the spelling is a function of the object
        template = catalogue.template(query_id)
        slots = catalogue.slots(query_id)
        slots["location"] = location_text(rng, slots["location"])
        slots["budget"] = budget_text(rng, int(catalogue.budgets[query_id]))
        return query_id, PARAPHRASES[template][variant - 1].format(**slots), catalogue.context(query_id)

    @staticmethod
    def _near_miss(catalogue: "Catalogue", query_id: int, kind: str) -> tuple[str, dict[str, Any]]:
        """The canonical wording with one answer-changing thing changed (text and context)."""
        if kind == "city":
            location = catalogue.other_location(query_id)
            return catalogue.query(query_id, location=location), catalogue.context(query_id, location=location)
        guests = other_guest_range(int(catalogue.guest_counts[query_id]))
        return catalogue.query(query_id, guests=guests), catalogue.context(query_id, guests=guests)
