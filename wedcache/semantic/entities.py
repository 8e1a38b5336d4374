"""What changes a wedding answer, read from a question and its ``weddingContext``: :class:`Entities`.

Two questions may read alike to an embedding and still need different answers: "barn venues
in Austin for 150 guests" and "… in Dallas for 50 guests". :class:`EntityExtractor` reads the
entities that decide an answer — what is asked (a cost, availability, weather, a schedule), dates (and months, weekdays, seasons), places, vendor types,
guest-count and budget *ranges*, other figures, style words and polarity (negations and
opposed words: allowed/prohibited, indoor/outdoor, under/over …) — from the text and the
context, and merges them, so a question that says "in Austin" and one whose context says
``location: "Austin, TX"`` agree. Text that only restates the context (the month of the
context's wedding date) adds nothing.

Spans are consumed as they are read (a date's day is not also "a figure"; "no more than"
is a bound, not a negation). Matching is on case-folded text (:func:`~wedcache.keys.normalise_query`).
"""
from __future__ import annotations

import bisect
import re
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from datetime import date
from typing import Any, Iterable

from ..context import WeddingContext
from ..keys import normalise_query
from ..policy import Policy
from . import lexicon as lx

_DIGIT_COMMA = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_NUMBER = r"(\d+(?:\.\d+)?)"
_ORDINAL = r"(?:st|nd|rd|th)?"
_MONTH = "(" + "|".join(sorted((*lx.MONTHS, *lx.MONTH_ABBREVIATIONS), key=len, reverse=True)) + r")\.?"
_STATE_SUFFIX = re.compile(r",?\s+(?:[a-z]{2}|usa|us)$")


def _words(words: Iterable[str]) -> str:
    """An alternation of ``words`` (longest first) that matches whole words only."""
    alternatives = "|".join(re.escape(w) for w in sorted(set(words), key=len, reverse=True))
    return rf"(?<![\w$])(?:{alternatives})(?![\w])"


@dataclass(frozen=True)
class Entities:
    """The answer-changing entities of one question in its context, as sets of tokens."""

    dates: frozenset[str] = field(default_factory=frozenset)
    places: frozenset[str] = field(default_factory=frozenset)
    vendors: frozenset[str] = field(default_factory=frozenset)
    guests: frozenset[str] = field(default_factory=frozenset)
    budgets: frozenset[str] = field(default_factory=frozenset)
    poles: frozenset[str] = field(default_factory=frozenset)
    styles: frozenset[str] = field(default_factory=frozenset)
    asks: frozenset[str] = field(default_factory=frozenset)
    numbers: frozenset[str] = field(default_factory=frozenset)

    def to_json(self) -> dict[str, list[str]]:
        """Sorted lists per field (what PostgreSQL stores beside the vector)."""
        return {name: sorted(values) for name, values in asdict(self).items() if values}

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> "Entities":
        return cls(**{name: frozenset(values) for name, values in (data or {}).items()})


def range_label(value: float, edges: tuple[float, ...]) -> str:
    """The range of ``edges`` that holds ``value``: ``"100-150"`` (upper bound inclusive) or ``">1000"``."""
    i = bisect.bisect_left(edges, value)
    if i == len(edges):
        return f">{edges[-1]:g}"
    return f"{(edges[i - 1] if i else 0):g}-{edges[i]:g}"


class EntityExtractor:
    """Reads :class:`Entities` from a question and its context; built once per policy."""

    def __init__(self, policy: Policy):
        self.policy = policy
        self._places = self._gazetteer(policy)
        self._place_re = Vocabulary(self._places)
        self._vendor_of = {w: v for v, words in lx.VENDOR_WORDS.items() for w in words}
        self._vendor_re = Vocabulary(self._vendor_of)
        self._style_re = Vocabulary(lx.STYLES)
        self._ask_of = {w: ask for ask, words in lx.ASKS.items() for w in words}
        self._ask_re = Vocabulary(self._ask_of)
        self._pole_of = {w: (cls, pole) for cls, poles in lx.POLES.items() for pole, ws in poles.items() for w in ws}
        self._pole_re = Vocabulary(self._pole_of)
        self._negation_re = Vocabulary(lx.NEGATIONS, also=r"\w+n't(?![\w])")
        self._weekday_re = Vocabulary(lx.WEEKDAYS)
        self._season_re = Vocabulary(lx.SEASON_WORDS)

    @staticmethod
    def _gazetteer(policy: Policy) -> dict[str, str]:
        """Spelling → place token: :data:`~.lexicon.PLACE_ALIASES` and the regional places,
        then the policy's own markets and aliases (an alias not in the lexicon is its own place)."""
        names = {p: p for p in lx.REGIONAL_PLACES} | dict(lx.PLACE_ALIASES)
        for conf in policy.market_tiers.values():
            for name in (*conf.markets, *conf.aliases):
                spelled = _STATE_SUFFIX.sub("", name.casefold())
                if name != "Regional Markets" and spelled not in names:
                    names[spelled] = lx.PLACE_ALIASES.get(spelled, spelled)
        return names

    def extract(self, query: str, context: WeddingContext | None = None) -> Entities:
        """The entities of ``query`` merged with those of ``context``."""
        context = context or WeddingContext()
        text = [_DIGIT_COMMA.sub("", normalise_query(query))]
        digits = _HAS_DIGIT.search(text[0]) is not None  # figures need one; most questions have none
        words = frozenset(_TOKEN.findall(text[0]))
        dates = self._dates(text, words, context.wedding_date, digits)
        budgets = _amounts(text, _BUDGETS, lx.BUDGET_EDGES, digits) | _labels([context.budget], lx.BUDGET_EDGES)
        guests = _amounts(text, _GUESTS, lx.GUEST_EDGES, digits) | _labels([context.guest_count], lx.GUEST_EDGES)
        asks = self._found(self._ask_re, text, words, self._ask_of)
        numbers = frozenset(m[1] for m in _FIGURE.finditer(text[0])) if digits else frozenset()
        return Entities(
            dates=dates,
            places=self._found(self._place_re, text, words, self._places) | self._context_place(context.location),
            vendors=self._found(self._vendor_re, text, words, self._vendor_of) | frozenset(context.vendor_types),
            guests=guests, budgets=budgets, poles=self._poles(text, words),
            styles=self._found(self._style_re, text, words), asks=asks, numbers=numbers)

    # -- one reader per entity; each consumes what it read from text[0] ---------------------

    def _dates(self, text: list[str], words: frozenset[str], wedding_date: date | None,
               digits: bool) -> frozenset[str]:
        found: set[str] = set()
        for regex, token, needs_digit in _DATES:
            if digits or not needs_digit:
                found.update(t for piece in _consume(text, regex, token) for t in piece.split())
        found.update(f"D:{w}" for w in _consume(text, self._weekday_re.within(words), _matched))
        found.update(f"S:{lx.SEASON_WORDS[w]}" for w in _consume(text, self._season_re.within(words), _matched))
        if wedding_date is None:
            return frozenset(found)
        return frozenset(found - self._implied(wedding_date)) | {wedding_date.isoformat()}

    def _implied(self, day: date) -> set[str]:
        """Tokens that only restate ``day``: its month-day, month, year, weekday and season."""
        weekday = lx.WEEKDAYS[day.weekday()]
        implied = {f"{day.month:02d}-{day.day:02d}", day.isoformat(), f"M{day.month:02d}", f"Y{day.year}",
                   f"D:{weekday}", f"S:{self.policy.season_of(day)}"}
        return implied | ({"D:weekend"} if day.weekday() >= 5 else {"D:weekday"})

    def _poles(self, text: list[str], words: frozenset[str]) -> frozenset[str]:
        poles = set(_consume(text, self._pole_re.within(words), lambda m: self._pole_of[m[0]]))
        negated = bool(_consume(text, self._negation_re.within(words), _matched))
        flippable = {(c, p) for c, p in poles if c in lx.FLIPPED_BY_NEGATION}
        if negated and flippable:
            poles = (poles - flippable) | {(c, lx.FLIPPED_BY_NEGATION[c][p]) for c, p in flippable}
        tokens = {f"{c}:{p}" for c, p in poles}
        return frozenset(tokens | ({"negation"} if negated and not flippable else set()))

    @staticmethod
    def _found(vocabulary: "Vocabulary", text: list[str], words: frozenset[str],
               mapping: dict[str, str] | None = None) -> frozenset[str]:
        hits = _consume(text, vocabulary.within(words), _matched)
        return frozenset(mapping[h] for h in hits) if mapping is not None else frozenset(hits)

    def _context_place(self, location: str | None) -> frozenset[str]:
        if not location:
            return frozenset()
        text = normalise_query(location)
        found = [self._places[m[0]] for m in self._place_re.within(frozenset(_TOKEN.findall(text))).finditer(text)]
        return frozenset(found[:1] or [_STATE_SUFFIX.sub("", text)])


_HAS_DIGIT = re.compile(r"\d")
_TOKEN = re.compile(r"[\w']+")
_NEVER = re.compile(r"(?!)")


class Vocabulary:
    """Whole-word matching of many phrases, fast: :meth:`within` compiles (once, cached) a
    regex of only the phrases whose first word the text holds — a question names two or
    three of the hundreds of places and vendor words, and one alternation of all of them
    would be tried at every character."""

    def __init__(self, phrases: Iterable[str], also: str = ""):
        self._by_first: dict[str, list[str]] = {}
        for phrase in phrases:
            self._by_first.setdefault(_TOKEN.findall(phrase)[0], []).append(phrase)
        self._also = also
        self._compile = lru_cache(maxsize=4096)(self._compile_uncached)

    def within(self, words: frozenset[str]) -> re.Pattern:
        """The regex of the phrases that can occur in a text made of ``words``."""
        chosen = tuple(sorted(p for w in words & self._by_first.keys() for p in self._by_first[w]))
        return self._compile(chosen)

    def _compile_uncached(self, phrases: tuple[str, ...]) -> re.Pattern:
        parts = ([_words(phrases)] if phrases else []) + ([self._also] if self._also else [])
        return re.compile("|".join(parts)) if parts else _NEVER
_FIGURE = re.compile(_NUMBER + _ORDINAL + r"(?![\w])")
_SCALE = {"k": 1e3, "grand": 1e3, "thousand": 1e3, "m": 1e6, "million": 1e6}
_GUEST_WORD = _words(lx.GUEST_WORDS)

_DATES: tuple[tuple[re.Pattern, object, bool], ...] = tuple((re.compile(p), token, needs_digit) for p, token, needs_digit in (
    (r"(?<!\d)(\d{4})-(\d{1,2})-(\d{1,2})(?!\d)", lambda m: _ymd(m[1], m[2], m[3]), True),
    (r"(?<![\d/])(\d{1,2})/(\d{1,2})(?:/(\d{2,4}))?(?![\d/])", lambda m: _ymd(m[3], m[1], m[2]), True),
    (rf"(?<![\w]){_MONTH}\s+(\d{{1,2}}){_ORDINAL}(?:,?\s+(\d{{4}}))?(?![\w])",
     lambda m: _ymd(m[3], _month(m[1]), m[2]), True),
    (rf"(?<![\w])(\d{{1,2}}){_ORDINAL}\s+(?:of\s+)?{_MONTH}(?:,?\s+(\d{{4}}))?(?![\w])",
     lambda m: _ymd(m[3], _month(m[2]), m[1]), True),
    (rf"(?<![\w]){_MONTH}(?:\s+(\d{{4}}))?(?![\w])",
     lambda m: f"M{_month(m[1]):02d}" + (f" Y{m[2]}" if m[2] else ""), False),
    (r"(?<![\w$])(20\d\d)(?![\w])", lambda m: f"Y{m[1]}", True),
))
"""Date spellings, most specific first: ISO, US numeric, "June 6th, 2026", "6 June", "June", a year."""

_BUDGETS: tuple[tuple[re.Pattern, object], ...] = tuple((re.compile(p), lambda m: (float(m[1]) * _SCALE.get(m[2] or "", 1.0),))
                                                        for p in (
    rf"\$\s*{_NUMBER}\s*(k|m|thousand|million|grand)?(?![\w])",
    rf"(?<![\w.]){_NUMBER}\s*(k|thousand|grand)(?![\w])",
    rf"(?<![\w.]){_NUMBER}\s*(?:dollars|usd|bucks)()(?![\w])",
    rf"(?<=budget of )\s*{_NUMBER}()(?![\w])",
))
"""Money: "$20,000", "$20k", "20k", "20 grand", "20000 dollars", "budget of 20000"."""

_GUESTS: tuple[tuple[re.Pattern, object], ...] = tuple((re.compile(p), read) for p, read in (
    (rf"(?<![\w.]){_NUMBER}\s*(?:-|to|–)\s*{_NUMBER}\s+(?:\w+\s+)?{_GUEST_WORD}", lambda m: (float(m[1]), float(m[2]))),
    (rf"(?<![\w.]){_NUMBER}(?:\s+|-)(?:\w+\s+)?{_GUEST_WORD}", lambda m: (float(m[1]),)),
    (rf"(?:guest count|headcount|guest list|party|group) of\s+{_NUMBER}(?![\w])", lambda m: (float(m[1]),)),
))
"""Guest counts: "100-120 guests", "150 people", "a 150-person", "guest count of 150"."""


def _matched(match: re.Match) -> str:
    return match[0]


def _amounts(text: list[str], patterns, edges: tuple[float, ...], digits: bool) -> frozenset[str]:
    """The ranges (``edges``) of the figures ``patterns`` read (money or guest counts); none without a digit."""
    if not digits:
        return frozenset()
    return _labels([v for regex, read in patterns for found in _consume(text, regex, read) for v in found], edges)


def _consume(text: list[str], regex: re.Pattern, read) -> list:
    """``read(match)`` for every match of ``regex`` in ``text[0]``, blanking what matched."""
    found = []

    def take(match: re.Match) -> str:
        value = read(match)
        if value is not None:
            found.append(value)
        return " " * len(match[0])

    text[0] = regex.sub(take, text[0])
    return found


def _labels(values: Iterable[float | None], edges: tuple[float, ...]) -> frozenset[str]:
    return frozenset(range_label(v, edges) for v in values if v is not None)


def _month(name: str) -> int:
    name = name.rstrip(".")
    return lx.MONTHS.index(name) + 1 if name in lx.MONTHS else lx.MONTH_ABBREVIATIONS[name]


def _ymd(year: str | None, month: str | int, day: str) -> str | None:
    """``YYYY-MM-DD`` or ``MM-DD`` (no year given); ``None`` when it is no calendar date."""
    month, day = int(month), int(day)
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return None
    if year is None:
        return f"{month:02d}-{day:02d}"
    year = int(year) + (2000 if len(year) == 2 else 0)
    return f"{year:04d}-{month:02d}-{day:02d}"
