"""The wedding context of a query: :class:`WeddingContext`, :class:`SeasonalFactors`, :func:`parse_context`.

camelCase in JSON (``weddingDate``, ``vendorTypes``, ``guestCount`` …), snake_case in
Python. Validation is strict about what changes an answer: an ISO date, known vendor types,
a positive guest count, a non-negative budget and bounded strings. Invalid input raises
:class:`~wedcache.errors.ContextError` naming the JSON field, e.g. ``weddingContext.guestCount``.
"""
from __future__ import annotations

from datetime import date
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from .errors import ContextError
from .policy import Season, VendorType

MAX_QUERY_CHARS = 4000


class _Camel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid",
                              frozen=True, str_strip_whitespace=True)


class SeasonalFactors(_Camel):
    season: Season
    market_demand: str = Field(max_length=50)
    weather_considerations: tuple[str, ...] = Field(default=(), max_length=20)


class WeddingContext(_Camel):
    """The source document's ``weddingContext``; every field optional."""

    wedding_id: str | None = Field(None, min_length=1, max_length=100)
    wedding_date: date | None = None
    location: str | None = Field(None, min_length=1, max_length=200)
    vendor_types: tuple[VendorType, ...] = Field(default=(), max_length=12)
    guest_count: int | None = Field(None, gt=0, le=100_000)
    budget: float | None = Field(None, ge=0, le=1e9)
    seasonal_factors: SeasonalFactors | None = None

    def to_json(self) -> dict[str, Any]:
        """camelCase mapping without unset fields (what the HTTP API and PostgreSQL store)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True, exclude_defaults=True)


def parse_context(data: WeddingContext | dict[str, Any] | None, prefix: str = "weddingContext") -> WeddingContext:
    """Validate ``data`` into a :class:`WeddingContext` or raise :class:`ContextError`."""
    if isinstance(data, WeddingContext):
        return data
    if data is None:
        return WeddingContext()
    if not isinstance(data, dict):
        raise ContextError(prefix, "must be an object")
    try:
        return WeddingContext.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join([prefix, *(str(p) for p in err["loc"])])
        raise ContextError(field, err["msg"]) from None


def check_query(query: Any, field: str = "query") -> str:
    """A non-empty query string of at most :data:`MAX_QUERY_CHARS` characters."""
    if not isinstance(query, str):
        raise ContextError(field, "must be a string")
    if not query.strip():
        raise ContextError(field, "must not be empty")
    if len(query) > MAX_QUERY_CHARS:
        raise ContextError(field, f"must be at most {MAX_QUERY_CHARS} characters")
    return query
