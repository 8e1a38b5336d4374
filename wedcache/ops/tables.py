"""Any operations result as terminal tables: :func:`render`.

Results are JSON-ready dicts (:mod:`wedcache.ops`), so one view draws them all: the
top-level scalars form a summary table; a dict of scalars becomes a two-column table
(``total``, ``plan``, ``settings``); a dict of dicts becomes one row per key (``tiers``);
a list of dicts becomes a table with a column per key (``groups``, ``hot``, ``warnings``).
Column headings are the JSON keys in words (``hitRate`` -> ``hit rate``), so a reader of
the table finds the field in ``--json``.
"""
from __future__ import annotations

import json
import re
from typing import Any

from rich.console import Console
from rich.table import Table

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def render(title: str, result: dict[str, Any], console: Console | None = None, *,
           skip: tuple[str, ...] = ()) -> None:
    """Print ``result`` as tables under ``title``; keys in ``skip`` are left out."""
    console = console or Console()
    shown = {k: v for k, v in result.items() if k not in skip}
    scalars = {k: v for k, v in shown.items() if not isinstance(v, (dict, list)) or _is_flat_list(v)}
    console.print(_pairs(title, scalars) if scalars else f"[bold]{title}[/]")
    for key, value in shown.items():
        if key in scalars:
            continue
        table = _table(words(key), value)
        if table is not None:
            console.print(table)


def words(key: str) -> str:
    """``hitRate`` -> ``hit rate``."""
    return _CAMEL.sub(" ", key).lower()


def cell(value: Any, key: str = "") -> str:
    """A value as table text: numbers with separators (sizes, for a ``…Bytes`` key, in KiB/MiB/GiB),
    booleans as yes/no, nested values as JSON."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and key.lower().endswith("bytes"):
        return size(value)
    if value is None:
        return ""
    if value == []:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.4f}".rstrip("0").rstrip(".") if value % 1 else f"{value:,.0f}"
    if isinstance(value, list) and _is_flat_list(value):
        return ", ".join(cell(v) for v in value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"), default=str)
    return str(value)


def size(value: float) -> str:
    """Bytes as ``512 B``, ``1.5 KiB``, ``512.0 MiB``, ``1.6 GiB``."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(value) >= scale:
            return f"{value / scale:,.1f} {unit}"
    return f"{value:,.0f} B"


def _is_flat_list(value: Any) -> bool:
    return isinstance(value, list) and all(not isinstance(v, (dict, list)) for v in value)


def _pairs(title: str, values: dict[str, Any]) -> Table:
    table = Table(title=title, show_header=False)
    table.add_column("figure")
    table.add_column("value", overflow="fold")
    for key, value in values.items():
        table.add_row(words(key) if not key.isupper() else key, cell(value, key))
    return table


def _table(title: str, value: Any) -> Table | None:
    if isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()):
        return _rows(title, [{"": name, **row} for name, row in value.items()])
    if isinstance(value, dict):
        return _pairs(title, value)
    if isinstance(value, list):
        return _rows(title, value) if value else _pairs(title, {"rows": "none"})
    return None


def _rows(title: str, rows: list[dict[str, Any]]) -> Table:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    table = Table(title=title)
    for column in columns:
        table.add_column(words(column), overflow="fold")
    for row in rows:
        table.add_row(*(cell(row.get(column), column) for column in columns))
    return table
