"""Trace files: recorded requests for ``wedcache simulate --trace FILE.csv`` (:func:`load_trace`).

A trace is a CSV file with a header. ``timestamp`` (seconds, any origin: Unix time or
seconds from the start) and ``key`` (the cache key or query) are required; the other
columns are optional and describe the object::

    timestamp,key,size_bytes,org_id,vendor_type,market_tier
    1780000000.0,venues near Napa for 120 guests,2048,org-001,venue,tier_3
    1780000000.4,florists in Boise,1536,org-002,florist,tier_3

An empty cell of an optional column takes its default (``org_id`` ``"trace"``,
``vendor_type`` ``"other"``, ``market_tier`` ``"tier_3"``); blank lines are skipped. Rows
need not be in time order: :func:`load_trace` sorts them (stably). A bad file raises
:class:`TraceError` naming the column and the first bad line (the header is line 1).

:func:`write_trace` writes the same format, e.g. to export a synthetic workload.
"""
from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from wedcache.errors import WedcacheError
from wedcache.policy import MARKET_TIERS, VENDOR_TYPES

REQUIRED_COLUMNS = ("timestamp", "key")
OPTIONAL_COLUMNS = ("size_bytes", "org_id", "vendor_type", "market_tier")
DEFAULTS = {"org_id": "trace", "vendor_type": "other", "market_tier": "tier_3"}
"""What an absent column or an empty cell stands for."""
_ALLOWED = {"vendor_type": VENDOR_TYPES, "market_tier": MARKET_TIERS}


class TraceError(WedcacheError, ValueError):
    """A trace file is invalid; ``field`` names the column (``""`` for the file itself) and
    ``line`` the first bad line, when there is one."""

    def __init__(self, field: str, message: str, line: int | None = None, trace: str | None = None):
        where = ", ".join(part for part in (trace and f"trace {trace}", line and f"line {line}") if part)
        super().__init__(": ".join(part for part in (where, field, message) if part))
        self.field, self.reason, self.line, self.trace = field, message, line, trace


@dataclass
class Trace:
    """Requests in time order, with their objects numbered densely by first appearance."""

    times: np.ndarray
    """float64 seconds from the first request, sorted."""
    ids: np.ndarray
    """int64 object id per request, in ``0 .. n_objects - 1``."""
    keys: list[str]
    """The key of each object id."""
    sizes: np.ndarray | None
    """int64 size per object id (its last seen ``size_bytes``); ``None`` without that column."""
    org_ids: list[str]
    vendor_types: list[str]
    market_tiers: list[str]
    first_timestamp: float = 0.0
    """The first request's ``timestamp`` as written in the file (time 0)."""

    @property
    def n_objects(self) -> int:
        return len(self.keys)

    def __len__(self) -> int:
        return int(self.times.size)


# --- reading -----------------------------------------------------------------------------

def _read_csv(path: Path) -> pd.DataFrame:
    """Every cell as a string (no NA guessing); row ``i`` is line ``i + 2``."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)  # a longer first row
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False,
                                skip_blank_lines=False, index_col=False)
    except FileNotFoundError:
        raise TraceError("", f"no such file: {path}") from None
    except pd.errors.EmptyDataError:
        raise TraceError("", "empty file; expected a header such as 'timestamp,key'", trace=path.name) from None
    except pd.errors.ParserWarning:
        raise TraceError("", "more fields than the header names", line=2, trace=path.name) from None
    except pd.errors.ParserError as exc:
        line = re.search(r"line (\d+)", str(exc))
        reason = str(exc).strip().split("C error: ")[-1]
        raise TraceError("", f"not a valid CSV row: {reason}", int(line[1]) if line else None, path.name) from None
    except UnicodeDecodeError as exc:
        raise TraceError("", f"not UTF-8 text: {exc}", trace=path.name) from None
    frame.columns = [str(column).strip() for column in frame.columns]
    frame.index = np.arange(2, len(frame) + 2)
    return frame


def _check_columns(frame: pd.DataFrame) -> None:
    for column in REQUIRED_COLUMNS:
        if column not in frame.columns:
            raise TraceError(column, f"missing column; the header must name {' and '.join(REQUIRED_COLUMNS)}")
    allowed = REQUIRED_COLUMNS + OPTIONAL_COLUMNS
    for column in frame.columns:
        if column not in allowed:
            raise TraceError(column, f"unknown column; allowed: {', '.join(allowed)}")
    duplicates = frame.columns[frame.columns.duplicated()]
    if len(duplicates):
        raise TraceError(duplicates[0], "column given twice")


def _first_bad(frame: pd.DataFrame, column: str, bad: np.ndarray, message: str) -> None:
    """Raise for the first row where ``bad`` holds, quoting its value."""
    if bad.any():
        row = int(np.argmax(bad))
        value = frame[column].iloc[row]
        got = repr(value) if value != "" else "an empty cell"
        raise TraceError(column, f"{message}, got {got}", line=int(frame.index[row]))


def _numbers(frame: pd.DataFrame, column: str, integer: bool) -> np.ndarray:
    """The column as numbers: finite, >= 0 and, if ``integer``, whole."""
    values = pd.to_numeric(frame[column].str.strip(), errors="coerce").to_numpy(dtype=float)
    kind = "a whole number" if integer else "a number"
    _first_bad(frame, column, ~np.isfinite(values), f"expected {kind}")
    _first_bad(frame, column, values < 0, "must be >= 0")
    if integer:
        _first_bad(frame, column, values != np.floor(values), f"expected {kind}")
    return values


def _labels(frame: pd.DataFrame, column: str) -> np.ndarray:
    """An optional label column, empty cells replaced by the default, checked when listed."""
    if column not in frame.columns:
        return np.full(len(frame), DEFAULTS[column], dtype=object)
    values = frame[column].str.strip().replace("", DEFAULTS[column]).to_numpy(dtype=object)
    if column in _ALLOWED:
        allowed = _ALLOWED[column]
        _first_bad(frame, column, ~np.isin(values, allowed), f"expected one of {', '.join(allowed)}")
    return values


def _validated(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """The trace's columns as arrays, in file order, each checked."""
    _check_columns(frame)
    frame = frame[(frame != "").any(axis=1)]  # blank lines
    if frame.empty:
        raise TraceError("timestamp", "the trace has no requests")
    keys = frame["key"].to_numpy(dtype=object)
    _first_bad(frame, "key", keys == "", "expected a non-empty key")
    columns = {"timestamp": _numbers(frame, "timestamp", integer=False), "key": keys}
    if "size_bytes" in frame.columns:
        columns["size_bytes"] = _numbers(frame, "size_bytes", integer=True).astype(np.int64)
    columns.update({column: _labels(frame, column) for column in DEFAULTS})
    return columns


def _last_per_id(ids: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``values`` at each id's last request (``ids`` covers ``0 .. n - 1``)."""
    reversed_first = np.unique(ids[::-1], return_index=True)[1]
    return values[ids.size - 1 - reversed_first]


def load_trace(path: str | Path) -> Trace:
    """Read and check a trace file (see the module docstring).

    :raises TraceError: naming the column and the first bad line."""
    path = Path(path)
    frame = _read_csv(path)
    try:
        columns = _validated(frame)
    except TraceError as exc:
        raise TraceError(exc.field, exc.reason, exc.line, path.name) from None
    order = np.argsort(columns["timestamp"], kind="stable")
    stamps = columns["timestamp"][order]
    ids, uniques = pd.factorize(columns["key"][order])
    ids = ids.astype(np.int64)
    last = {name: _last_per_id(ids, values[order]) for name, values in columns.items()
            if name not in ("timestamp", "key")}
    return Trace(times=stamps - stamps[0], ids=ids, keys=[str(key) for key in uniques],
                 sizes=last.get("size_bytes"), org_ids=list(last["org_id"]),
                 vendor_types=list(last["vendor_type"]), market_tiers=list(last["market_tier"]),
                 first_timestamp=float(stamps[0]))


# --- writing -----------------------------------------------------------------------------

def write_trace(path: str | Path, times: Any, keys: Sequence[str], sizes: Any = None,
                org_ids: Sequence[str] | None = None, vendor_types: Sequence[str] | None = None,
                market_tiers: Sequence[str] | None = None) -> Path:
    """Write one row per request (every argument is per request); ``None`` leaves a column out.

    The inverse of :func:`load_trace`: times are written with full precision."""
    columns = {"timestamp": np.asarray(times, dtype=float), "key": list(keys), "size_bytes": sizes,
               "org_id": org_ids, "vendor_type": vendor_types, "market_tier": market_tiers}
    columns = {name: values for name, values in columns.items() if values is not None}
    for name, values in columns.items():
        if len(values) != len(columns["timestamp"]):
            raise TraceError(name, f"has {len(values)} values for {len(columns['timestamp'])} requests")
    if "size_bytes" in columns:
        columns["size_bytes"] = np.asarray(columns["size_bytes"], dtype=np.int64)
    path = Path(path)
    pd.DataFrame(columns).to_csv(path, index=False)
    return path
