"""Write ``semantic_pairs.csv``: labelled wedding question pairs for ``wedcache tune semantic``.

Reproducible (templates + a seeded generator): ``python simulations/data/make_semantic_pairs.py``
(with the project installed: the spellings of dates and amounts come from
:mod:`simulations.semantic_workload`, which the simulation's paraphrases use too).

Columns: ``kind``, ``label`` (``same`` or ``different``), ``query_a``, ``context_a``,
``query_b``, ``context_b`` (contexts as ``weddingContext`` JSON). Kinds:

* ``paraphrase`` (same): two wordings of one question with the same entities, spelled
  differently ("150 guests" / "150 people", "$20,000" / "$20k", "New York" / "NYC", the
  location in the text or in the context).
* near misses (different), each changing one thing that changes the answer, usually in the
  *same* wording (the hardest case for an embedding): ``city``, ``date``, ``guests``
  (another range), ``budget`` (another range), ``vendor`` (another vendor type),
  ``negation`` (allowed/not allowed, with/without, indoor/outdoor), and ``topic`` (another
  question about the same wedding, which only the threshold can tell apart).
"""
from __future__ import annotations

import csv
import json
import random
from pathlib import Path

from simulations.semantic_workload import budget_text, date_text  # shared with the simulation's paraphrases

SEED = 20260606
OUT = Path(__file__).with_name("semantic_pairs.csv")
PARAPHRASES = 200
PER_KIND = 40
TOPICS = 80

CITIES = {  # spellings of one place
    "Austin": ["Austin", "Austin, TX"], "Nashville": ["Nashville", "Nashville, TN"],
    "Denver": ["Denver"], "Charleston": ["Charleston"], "Savannah": ["Savannah"], "Napa": ["Napa"],
    "New York": ["New York", "NYC", "Manhattan"], "Dallas": ["Dallas", "DFW"],
    "San Francisco": ["San Francisco", "SF", "the Bay Area"], "Chicago": ["Chicago", "Chicago, IL"],
    "Asheville": ["Asheville"], "San Diego": ["San Diego"], "Miami": ["Miami"], "Seattle": ["Seattle"],
}
DATES = [(2026, 6, 6), (2026, 6, 13), (2026, 9, 19), (2026, 10, 10), (2027, 5, 22), (2026, 12, 5)]
GUESTS = [30, 50, 80, 120, 150, 180, 220, 300]
BUDGETS = [3000, 5000, 8000, 12000, 20000, 30000, 45000, 60000]
VENDORS = {  # vendor type: (singular, plural)
    "photographer": ("photographer", "photographers"), "videographer": ("videographer", "videographers"),
    "florist": ("florist", "florists"), "caterer": ("caterer", "caterers"), "band_dj": ("DJ", "DJs"),
    "baker": ("cake baker", "cake bakers"), "officiant": ("officiant", "officiants"),
    "hair_makeup": ("makeup artist", "makeup artists"),
}

# Each family: wordings of one question. Slots: {city} {guests} {date} {budget} {v} {vs}.
FAMILIES = {
    "barn_venues": ["barn venues near {city} for {guests} guests", "rustic barn wedding venues around {city}, {guests} people",
                    "where can I find a barn venue in {city} that holds {guests} guests?",
                    "{city} barn wedding venues with room for {guests} guests"],
    "vendor_cost": ["how much does a wedding {v} cost in {city}?", "what do wedding {vs} charge in {city}?",
                    "average price of a wedding {v} in {city}", "typical rates for a wedding {v} in {city}"],
    "catering_guests": ["catering cost for {guests} guests in {city}", "how much is wedding catering for {guests} people in {city}?",
                        "price of catering a wedding of {guests} guests in {city}", "{city} wedding catering prices for {guests} guests"],
    "vendor_budget": ["wedding {vs} in {city} for a {budget} budget", "{vs} in {city} that work with a {budget} budget",
                      "can I get a good wedding {v} in {city} for {budget}?", "{city} {vs} for a budget of {budget}"],
    "venue_date": ["which venues in {city} are available on {date}?", "wedding venues in {city} still open on {date}",
                   "is there a venue free in {city} on {date}?", "{city} venues with availability on {date}"],
    "weather": ["what is the weather like in {city} on {date} for an outdoor wedding?",
                "will it be too hot for an outdoor wedding in {city} on {date}?",
                "{city} weather for an outdoor wedding on {date}", "expected weather in {city} on {date} for an outdoor wedding"],
    "timeline": ["wedding day timeline for a {date} ceremony in {city}", "how should we schedule our {date} wedding day in {city}?",
                 "sample wedding day schedule for {date} in {city}", "timeline for our wedding day on {date} in {city}"],
    "budget_split": ["how to split a {budget} wedding budget in {city}", "budget breakdown for a {budget} wedding in {city}",
                     "how should we allocate {budget} for our wedding in {city}?", "{budget} wedding budget breakdown for {city}"],
    "cake_guests": ["how much does a wedding cake for {guests} guests cost?", "price of a wedding cake that serves {guests} people",
                    "cost of a {guests}-guest wedding cake", "what does a cake for {guests} wedding guests cost?"],
    "vendor_find": ["how do I find a good wedding {v} in {city}?", "tips for hiring a wedding {v} in {city}",
                    "what should I look for in a wedding {v} in {city}?", "how to choose a wedding {v} in {city}"],
    "hotel_block": ["hotel room blocks in {city} for {guests} wedding guests", "how do I book a hotel block for {guests} guests in {city}?",
                    "{city} hotels with room blocks for {guests} wedding guests", "reserving hotel rooms in {city} for {guests} guests"],
}
# Polar families: (yes wordings, the opposite's wordings), same slots.
POLAR = {
    "outdoor_catering": (["is outdoor catering allowed in {city} parks?", "are outdoor caterers permitted in {city} parks?",
                          "is it ok to have outdoor catering in a {city} park?"],
                         ["is outdoor catering not allowed in {city} parks?", "is outdoor catering prohibited in {city} parks?",
                          "are outdoor caterers banned in {city} parks?"]),
    "in_house": (["venues with in-house catering in {city}", "{city} wedding venues that have in-house catering"],
                 ["venues without in-house catering in {city}", "{city} wedding venues that have no in-house catering"]),
    "indoor": (["indoor wedding venues in {city} for {guests} guests", "indoor venues in {city} that fit {guests} guests"],
               ["outdoor wedding venues in {city} for {guests} guests", "outdoor venues in {city} that fit {guests} guests"]),
    "sparklers": (["are sparkler send-offs allowed at {city} venues?", "do {city} venues permit sparkler send-offs?"],
                  ["are sparkler send-offs banned at {city} venues?", "do {city} venues not allow sparkler send-offs?"]),
    "refund": (["is the venue deposit refundable in {city}?", "can we get a refund of our venue deposit in {city}?"],
               ["is the venue deposit non-refundable in {city}?", "is a {city} venue deposit usually nonrefundable?"]),
}


class Slots:
    """One draw of slot values, rendered as text (with a random spelling) or into a context."""

    def __init__(self, rng: random.Random, **fixed):
        self.rng = rng
        self.city = fixed.get("city") or rng.choice(list(CITIES))
        self.date = fixed.get("date") or rng.choice(DATES)
        self.guests = fixed.get("guests") or rng.choice(GUESTS)
        self.budget = fixed.get("budget") or rng.choice(BUDGETS)
        self.vendor = fixed.get("vendor") or rng.choice(list(VENDORS))

    def changed(self, slot: str, value) -> "Slots":
        values = {k: getattr(self, k) for k in ("city", "date", "guests", "budget", "vendor")} | {slot: value}
        return Slots(self.rng, **values)

    def render(self, template: str, city_in_context: bool = False) -> tuple[str, dict]:
        rng = self.rng
        v, vs = VENDORS[self.vendor]
        context: dict = {}
        city = rng.choice(CITIES[self.city])
        if city_in_context and "{city}" in template:
            template = template.replace(" in {city}", "").replace("{city} ", "").replace(" near {city}", "")
            context["location"] = city
        text = template.format(city=city, guests=self.guests, date=date_text(rng, *self.date),
                               budget=budget_text(rng, self.budget), v=v, vs=vs)
        if "{v" in template:
            context["vendorTypes"] = [self.vendor]
        return text[0].upper() + text[1:], context


def pair(kind: str, label: str, a: tuple[str, dict], b: tuple[str, dict]) -> dict:
    return {"kind": kind, "label": label, "query_a": a[0], "context_a": json.dumps(a[1], sort_keys=True),
            "query_b": b[0], "context_b": json.dumps(b[1], sort_keys=True)}


def paraphrases(rng: random.Random, count: int) -> list[dict]:
    rows = []
    families = list(FAMILIES.values()) + [w for yes, no in POLAR.values() for w in (yes, no)]
    while len(rows) < count:
        wordings = rng.choice(families)
        first, second = rng.sample(wordings, 2)
        slots = Slots(rng)
        in_context = "{city}" in second and "{date}" not in second and rng.random() < 0.25
        rows.append(pair("paraphrase", "same", slots.render(first), slots.render(second, in_context)))
    return rows


def _other(rng: random.Random, choices, current):
    return rng.choice([c for c in choices if c != current])


def _guest_range(n: int) -> int:
    edges = (25, 50, 75, 100, 150, 200, 250, 300, 400)
    return next((i for i, e in enumerate(edges) if n <= e), len(edges))


def _budget_range(n: int) -> int:
    edges = (500, 1000, 2000, 3000, 5000, 7500, 10000, 15000, 20000, 25000, 30000, 40000, 50000, 75000)
    return next((i for i, e in enumerate(edges) if n <= e), len(edges))


def near_misses(rng: random.Random, kind: str, count: int) -> list[dict]:
    """Pairs that differ in one answer-changing thing, mostly in the same wording."""
    slot, needs = {"city": ("city", "{city}"), "date": ("date", "{date}"), "guests": ("guests", "{guests}"),
                   "budget": ("budget", "{budget}"), "vendor": ("vendor", "{v")}[kind]
    families = [w for w in FAMILIES.values() if any(needs in t for t in w)]
    rows = []
    while len(rows) < count:
        wordings = rng.choice(families)
        first = rng.choice([t for t in wordings if needs in t])
        second = first if rng.random() < 0.7 else rng.choice([t for t in wordings if needs in t])
        slots = Slots(rng)
        value = {"city": lambda: _other(rng, list(CITIES), slots.city),
                 "date": lambda: _other(rng, DATES + [(2026, 6, 7)], slots.date),
                 "guests": lambda: rng.choice([g for g in GUESTS if _guest_range(g) != _guest_range(slots.guests)]),
                 "budget": lambda: rng.choice([b for b in BUDGETS if _budget_range(b) != _budget_range(slots.budget)]),
                 "vendor": lambda: _other(rng, list(VENDORS), slots.vendor)}[kind]()
        rows.append(pair(kind, "different", slots.render(first), slots.changed(slot, value).render(second)))
    return rows


def negations(rng: random.Random, count: int) -> list[dict]:
    rows = []
    while len(rows) < count:
        yes, no = rng.choice(list(POLAR.values()))
        slots = Slots(rng)
        i = rng.randrange(min(len(yes), len(no)))
        a, b = (yes[i], no[i]) if rng.random() < 0.7 else (rng.choice(yes), rng.choice(no))
        rows.append(pair("negation", "different", slots.render(a), slots.render(b)))
    return rows


def topics(rng: random.Random, count: int) -> list[dict]:
    """Two different questions with the same slot values (same wedding, other intent)."""
    rows = []
    names = list(FAMILIES)
    while len(rows) < count:
        first, second = rng.sample(names, 2)
        slots = Slots(rng)
        rows.append(pair("topic", "different", slots.render(rng.choice(FAMILIES[first])),
                         slots.render(rng.choice(FAMILIES[second]))))
    return rows


def make_pairs(seed: int = SEED) -> list[dict]:
    rng = random.Random(seed)
    rows = paraphrases(rng, PARAPHRASES)
    for kind in ("city", "date", "guests", "budget", "vendor"):
        rows += near_misses(rng, kind, PER_KIND)
    rows += negations(rng, PER_KIND) + topics(rng, TOPICS)
    return rows


def main() -> None:
    rows = make_pairs()
    with OUT.open("w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"{len(rows)} pairs written to {OUT}")


if __name__ == "__main__":
    main()
