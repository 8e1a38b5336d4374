"""Pre-loading popular queries: :func:`read_warm_file`, :class:`Warmer`.

A warm file is JSON lines (``.jsonl``, ``.ndjson``, ``.json``) or CSV (``.csv``; any other
name is recognised by its first character, ``{`` for JSON lines). Each line or row is
``{query, weddingContext, organizationId?, cacheType?}``; in CSV, ``weddingContext`` is a
JSON object in its cell (empty: no context). A line without ``organizationId`` uses the
default organization (``--organization``); without ``cacheType`` the service infers one,
as it does for an API query. A bad line becomes a :class:`LineError` naming its line number
and field (``weddingContext.guestCount``) and the other lines go on; a line whose key an
earlier line already has is a duplicate.

:class:`Warmer` answers each query through the cache the service uses — memory-less
:func:`~wedcache.assembly.build_cache` over Redis and PostgreSQL, sealed as the service
seals entries, with the service's origin (the simulated one unless ``AI_CACHE_ORIGIN_URL``
is set) — so a warmed answer lands in Redis and PostgreSQL exactly as a served one would.
Warming records no metric rows (it is not traffic). Report shape::

    {"file", "lines", "warmed", "alreadyCached", "duplicates", "failed",
     "errors":  [{"line", "field", "message"}],
     "results": [{"line", "status", "organizationId", "cacheType", "key", "tier"}]}

``status`` is ``warmed`` (computed now), ``cached`` (already stored; ``tier`` says where),
``duplicate`` or ``failed``.
"""
from __future__ import annotations

import csv
import io
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from ..answering import WeddingAICacheService, infer_cache_type
from ..assembly import build_cache, build_origin, build_sealer
from ..clock import Clock
from ..config import Settings
from ..context import WeddingContext, check_query, parse_context
from ..errors import InvalidInput, WedcacheError
from ..keys import cache_key, check_cache_type, organization_uuid

FIELDS = ("query", "weddingContext", "organizationId", "cacheType")
JSON_SUFFIXES = (".jsonl", ".ndjson", ".json")


@dataclass(frozen=True)
class WarmItem:
    """One valid line: what to ask, for whom, under which key."""

    line: int
    query: str
    context: WeddingContext
    organization_id: str
    cache_type: str
    key: str


@dataclass(frozen=True)
class LineError:
    line: int
    field: str | None
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"line": self.line, "field": self.field, "message": self.message}


def read_warm_file(path: Path, default_organization: str | None = None) -> tuple[list[WarmItem], list[LineError]]:
    """The valid items of ``path`` and an error per bad line.

    :raises InvalidInput: naming ``--from`` when the file cannot be read or its CSV header is wrong.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise InvalidInput("--from", f"cannot read {path}: {error}") from None
    items, errors = [], []
    for line, record in _records(Path(path), text):
        if isinstance(record, LineError):
            errors.append(record)
            continue
        try:
            items.append(_item(line, record, default_organization))
        except InvalidInput as error:
            errors.append(LineError(line, error.field, error.reason))
    return items, errors


class Warmer:
    """Answers warm items through the service's cache and origin (see the module docstring)."""

    def __init__(self, settings: Settings, clock: Clock, *, redis_url: str, database_url: str):
        self.cache = build_cache(settings, clock=clock, redis_url=redis_url, database_url=database_url,
                                 memory=False, codec=build_sealer(settings))
        self.origin = build_origin(settings, clock)
        self.service = WeddingAICacheService(self.cache, self.origin.answer)

    def run(self, items: list[WarmItem], errors: list[LineError], *, file: str = "",
            concurrency: int = 4) -> dict[str, Any]:
        """Warm every item (``concurrency`` at a time); report every line, in file order."""
        if concurrency < 1:
            raise InvalidInput("--concurrency", f"must be at least 1 (got {concurrency})")
        unique, duplicates = _split_duplicates(items)
        with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="wedcache-warm") as pool:
            warmed = list(pool.map(self._warm_one, unique))
        unparsed = [_unparsed(error.line) for error in errors]  # the lines that never became items
        errors = sorted([*errors, *(error for _, error in warmed if error is not None)], key=lambda e: e.line)
        results = sorted([*(result for result, _ in warmed), *(_result(item, "duplicate") for item in duplicates),
                          *unparsed], key=lambda r: r["line"])
        return {"file": file, "lines": len(results), "warmed": _count(results, "warmed"),
                "alreadyCached": _count(results, "cached"), "duplicates": len(duplicates),
                "failed": _count(results, "failed"), "errors": [e.to_json() for e in errors], "results": results}

    def close(self) -> None:
        self.cache.close()
        getattr(self.origin, "close", lambda: None)()

    def _warm_one(self, item: WarmItem) -> tuple[dict[str, Any], LineError | None]:
        try:
            answered = self.service.answer(item.organization_id, item.query, item.context,
                                           cache_type=item.cache_type)
        except WedcacheError as error:  # the origin failed: this line only
            return _result(item, "failed"), LineError(item.line, None, str(error))
        result = answered.result
        return _result(item, "cached" if result.cached else "warmed", result.tier), None


# -- reading -------------------------------------------------------------------------------
def _records(path: Path, text: str) -> Iterator[tuple[int, dict | LineError]]:
    """``(line number, record)`` per non-blank line; a line that does not parse is a :class:`LineError`."""
    is_json = path.suffix.lower() in JSON_SUFFIXES or (
        path.suffix.lower() != ".csv" and text.lstrip().startswith("{"))
    yield from (_json_lines(text) if is_json else _csv_rows(text))


def _json_lines(text: str) -> Iterator[tuple[int, dict | LineError]]:
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as error:
            yield number, LineError(number, None, f"not valid JSON: {error}")
            continue
        yield number, record if isinstance(record, dict) else LineError(number, None, "must be a JSON object")


def _csv_rows(text: str) -> Iterator[tuple[int, dict | LineError]]:
    reader = csv.DictReader(io.StringIO(text))
    header = reader.fieldnames or []
    unknown = [name for name in header if name not in FIELDS]
    if "query" not in header or unknown:
        raise InvalidInput("--from", f"line 1: the CSV header must name query and may name "
                                     f"{', '.join(FIELDS[1:])}; got {', '.join(header) or 'nothing'}")
    for row in reader:
        if not any((value or "").strip() for value in row.values()):
            continue
        yield reader.line_num, _csv_record(reader.line_num, row)


def _csv_record(line: int, row: dict[str, str | None]) -> dict | LineError:
    if None in row:
        return LineError(line, None, "has more cells than the header names")
    record: dict[str, Any] = {name: value for name, value in row.items() if value not in (None, "")}
    if "weddingContext" in record:
        try:
            record["weddingContext"] = json.loads(record["weddingContext"])
        except ValueError as error:
            return LineError(line, "weddingContext", f"not valid JSON: {error}")
    return record


def _item(line: int, record: dict, default_organization: str | None) -> WarmItem:
    """Validate one record; raises :class:`InvalidInput` naming the field."""
    unknown = [name for name in record if name not in FIELDS]
    if unknown:
        raise InvalidInput(unknown[0], f"unknown field; expected {', '.join(FIELDS)}")
    query = check_query(record.get("query"))
    context = parse_context(record.get("weddingContext"))
    org = record.get("organizationId") or default_organization
    if org is None:
        raise InvalidInput("organizationId", "is required (or pass --organization)")
    org = organization_uuid(org, "organizationId")
    cache_type = record.get("cacheType") or infer_cache_type(context)
    if not isinstance(cache_type, str):
        raise InvalidInput("cacheType", "must be a string")
    try:
        check_cache_type(cache_type)
    except InvalidInput as error:
        raise InvalidInput("cacheType", error.reason) from None
    return WarmItem(line, query, context, org, cache_type, cache_key(org, query, context, cache_type))


# -- reporting -----------------------------------------------------------------------------
def _split_duplicates(items: list[WarmItem]) -> tuple[list[WarmItem], list[WarmItem]]:
    seen, unique, duplicates = set(), [], []
    for item in items:
        (duplicates if item.key in seen else unique).append(item)
        seen.add(item.key)
    return unique, duplicates


def _result(item: WarmItem, status: str, tier: str | None = None) -> dict[str, Any]:
    return {"line": item.line, "status": status, "organizationId": item.organization_id,
            "cacheType": item.cache_type, "key": item.key, "tier": tier}


def _unparsed(line: int) -> dict[str, Any]:
    """The result of a line that never became an item."""
    return {"line": line, "status": "failed", "organizationId": None, "cacheType": None, "key": None, "tier": None}


def _count(results: list[dict], status: str) -> int:
    return sum(1 for r in results if r["status"] == status)
