"""The words the guard reads: vendor synonyms, places, polarity poles, styles, range edges.

Data only (no logic), so the vocabulary can grow without touching :mod:`.entities`.
Every word is written case-folded, as :func:`wedcache.keys.normalise_query` leaves it.
"""
from __future__ import annotations

VENDOR_WORDS: dict[str, tuple[str, ...]] = {
    "photographer": ("photographer", "photographers", "photography", "photos", "photo", "pictures", "portraits"),
    "videographer": ("videographer", "videographers", "videography", "video", "videos", "film", "filmmaker"),
    "venue": ("venue", "venues", "reception site", "reception sites", "ceremony site", "event space"),
    "caterer": ("caterer", "caterers", "catering", "catered", "menu", "menus", "food", "meal", "meals"),
    "florist": ("florist", "florists", "flowers", "floral", "bouquet", "bouquets", "centerpieces", "centrepieces"),
    "band_dj": ("band", "bands", "dj", "djs", "deejay", "musicians", "live music", "music"),
    "wedding_planner": ("planner", "planners", "coordinator", "coordinators", "planning service"),
    "baker": ("cake", "cakes", "baker", "bakers", "bakery", "cupcakes", "desserts", "dessert table"),
    "transportation": ("limo", "limos", "limousine", "shuttle", "shuttles", "transportation", "transport",
                       "party bus", "getaway car"),
    "officiant": ("officiant", "officiants", "minister", "celebrant", "justice of the peace"),
    "hair_makeup": ("hair", "makeup", "make-up", "hairstylist", "stylist", "stylists", "mua", "beauty team"),
}
"""Words naming a vendor type, by the policy's vendor type."""

REGIONAL_PLACES: tuple[str, ...] = (
    "austin", "houston", "san antonio", "nashville", "denver", "boulder", "miami", "orlando", "tampa",
    "key west", "charleston", "savannah", "asheville", "charlotte", "raleigh", "new orleans", "napa",
    "sonoma", "san diego", "santa barbara", "palm springs", "portland", "phoenix", "scottsdale", "sedona",
    "las vegas", "salt lake city", "minneapolis", "detroit", "kansas city", "st. louis", "philadelphia",
    "pittsburgh", "baltimore", "washington dc", "richmond", "honolulu", "maui", "lake tahoe", "cape cod",
    "hudson valley", "the hamptons", "newport", "jackson hole", "aspen", "big sur", "lake como", "tuscany",
)
"""Places outside the policy's named markets that wedding questions often name (the policy's
markets and aliases are read from the policy itself)."""

NEGATIONS: tuple[str, ...] = (
    "not", "no", "never", "without", "none", "nor", "cannot", "can't", "don't", "doesn't", "isn't", "aren't",
    "won't", "wasn't", "shouldn't", "non", "except", "excluding", "exclude", "avoid",
)
"""Words that turn a question around ("with" → "without", "allowed" → "not allowed")."""

POLES: dict[str, dict[str, tuple[str, ...]]] = {
    "permit": {"yes": ("allowed", "allow", "allows", "permitted", "permit", "permits", "ok", "okay"),
               "no": ("banned", "prohibited", "forbidden", "disallowed", "restricted", "illegal")},
    "setting": {"indoor": ("indoor", "indoors", "inside"), "outdoor": ("outdoor", "outdoors", "outside", "open-air")},
    "price": {"low": ("cheap", "cheapest", "affordable", "inexpensive", "budget-friendly", "low-cost", "economical"),
              "high": ("luxury", "expensive", "high-end", "upscale", "premium", "priciest", "lavish")},
    "bound": {"upper": ("under", "below", "less than", "at most", "maximum", "max", "up to", "no more than"),
              "lower": ("over", "above", "more than", "at least", "minimum", "min")},
    "time": {"before": ("before", "earlier", "earliest", "prior to"), "after": ("after", "later", "latest")},
    "refund": {"yes": ("refundable", "refund", "refunds"), "no": ("nonrefundable", "non-refundable")},
}
"""Opposed words per class: two questions whose poles differ ask opposite things. A negation
in the question flips the ``permit`` and ``refund`` poles ("not allowed" = "prohibited")."""

FLIPPED_BY_NEGATION: dict[str, dict[str, str]] = {"permit": {"yes": "no", "no": "yes"},
                                                  "refund": {"yes": "no", "no": "yes"}}

STYLES: tuple[str, ...] = (
    "barn", "rustic", "vineyard", "winery", "beach", "waterfront", "lakeside", "garden", "ballroom", "rooftop",
    "mountain", "historic", "industrial", "loft", "chapel", "church", "courthouse", "destination", "farm",
    "estate", "boho", "modern", "vintage", "elopement", "micro",
)
"""Style words: "barn venues" and "ballroom venues" are different searches."""

MONTHS: tuple[str, ...] = ("january", "february", "march", "april", "may", "june", "july", "august",
                           "september", "october", "november", "december")
MONTH_ABBREVIATIONS: dict[str, int] = {m[:3]: i + 1 for i, m in enumerate(MONTHS)} | {"sept": 9}
WEEKDAYS: tuple[str, ...] = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday",
                             "weekday", "weekend")
SEASON_WORDS: dict[str, str] = {"spring": "spring", "summer": "summer", "fall": "fall", "autumn": "fall",
                                "winter": "winter"}

GUEST_WORDS: tuple[str, ...] = ("guests", "guest", "people", "persons", "person", "attendees", "invitees",
                                "pax", "heads", "adults", "seats")
GUEST_EDGES: tuple[int, ...] = (25, 50, 75, 100, 150, 200, 250, 300, 400, 500, 750, 1000)
"""Guest-count ranges: 101–150 is one range, 151–200 the next (upper bounds, inclusive)."""

BUDGET_EDGES: tuple[float, ...] = (500, 1_000, 2_000, 3_000, 5_000, 7_500, 10_000, 15_000, 20_000, 25_000,
                                   30_000, 40_000, 50_000, 75_000, 100_000, 150_000, 250_000)
"""Budget ranges in dollars (upper bounds, inclusive): $20k and $25k are different budgets."""

PLACE_ALIASES: dict[str, str] = {
    "nyc": "nyc", "new york": "nyc", "new york city": "nyc", "manhattan": "nyc", "brooklyn": "nyc", "queens": "nyc",
    "la": "la", "los angeles": "la", "l.a.": "la", "hollywood": "la", "santa monica": "la",
    "sf": "sf", "san francisco": "sf", "s.f.": "sf", "bay area": "sf",
    "atlanta": "atlanta", "atl": "atlanta", "dallas": "dallas", "dallas-fort worth": "dallas", "dfw": "dallas",
    "chicago": "chicago", "chi-town": "chicago", "boston": "boston", "seattle": "seattle",
    "washington": "washington dc", "d.c.": "washington dc", "nola": "new orleans", "vegas": "las vegas",
}
"""Spellings of one place → its token (the policy's tier-1/tier-2 markets and their aliases)."""

ASKS: dict[str, tuple[str, ...]] = {
    "cost": ("cost", "costs", "price", "prices", "pricing", "priced", "charge", "charges", "rates", "fee", "fees",
             "how much", "quote", "quotes"),
    "availability": ("available", "availability", "still open", "free on", "free in", "free for", "booked", "open on"),
    "weather": ("weather", "forecast", "temperature", "too hot", "rain", "humid"),
    "schedule": ("timeline", "schedule", "run of show", "itinerary"),
}
"""What a question asks for: "what does a videographer charge" and "what to look for in a
videographer" share every entity but want different answers."""
