"""Reports: :class:`Report` builds one document and writes it as HTML and Markdown.

Every report of the lab (simulations, load tests, tuning) is built with this one builder.
Blocks are added in reading order; :meth:`Report.write` renders ``report.html`` (one file,
its own CSS, figures referenced by relative file name) and ``report.md`` next to the PNG
figures. Text is plain text: HTML is escaped, and ``**bold**`` is the only markup.

Helpers: :func:`fmt_number`, :func:`fmt_percent`, :func:`fmt_ms`, :func:`fmt_bytes` and
:func:`fmt_usd` turn values (``None`` and NaN included) into display strings; :func:`write_json`
writes the JSON that goes with a report.
"""
from __future__ import annotations

import html
import json
import math
import numbers
import re
import sys
from pathlib import Path
from typing import Any

import matplotlib

if "matplotlib.pyplot" not in sys.modules:  # never switch the backend of a running pyplot
    matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

MISSING = "—"
FIGURE_DPI = 100
_BOLD = re.compile(r"\*\*(.+?)\*\*")
_FIGURE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_RESERVED = {"html", "md", "report"}

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #222;
       max-width: 62rem; margin: 2rem auto; padding: 0 1rem; line-height: 1.5; }
h1 { margin-bottom: 0.2rem; }
.subtitle { color: #555; margin-top: 0; }
table { border-collapse: collapse; margin: 0.3rem 0 0.5rem; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.6rem; text-align: left; vertical-align: top; }
thead th { background: #f0f0f0; }
tbody tr:nth-child(even) { background: #fafafa; }
figure { margin: 1rem 0 1.5rem; }
figcaption { color: #555; font-size: 0.9rem; }
img { max-width: 100%; height: auto; }
.verdict { font-weight: 600; padding: 0.4rem 0.8rem; border-radius: 4px; }
.pass { color: #1b5e20; background: #e8f5e9; border-left: 4px solid #2e7d32; }
.fail { color: #b71c1c; background: #ffebee; border-left: 4px solid #c62828; }
""".strip()


# --- value formatting ------------------------------------------------------------------------

def _missing(x: Any) -> bool:
    return x is None or (pd.api.types.is_scalar(x) and not isinstance(x, str) and bool(pd.isna(x)))


def fmt_number(x: Any) -> str:
    """A number for display: ``1,234`` for integers, few decimals for the rest, ``—`` if missing.

    Strings pass through unchanged; booleans read ``yes``/``no``."""
    if _missing(x):
        return MISSING
    if isinstance(x, str):
        return x
    if isinstance(x, (bool, np.bool_)):
        return "yes" if x else "no"
    if isinstance(x, numbers.Integral):
        return f"{int(x):,}"
    x = float(x)
    if math.isinf(x):
        return "∞" if x > 0 else "-∞"
    if x.is_integer() or abs(x) >= 1000:
        return f"{x:,.0f}"
    if abs(x) >= 10:
        return f"{x:,.1f}"
    return f"{x:.2f}" if abs(x) >= 1 else f"{x:.3g}"


def fmt_percent(x: Any, digits: int = 1) -> str:
    """A fraction as a percentage: ``0.873`` -> ``87.3 %``."""
    return MISSING if _missing(x) else f"{float(x) * 100:.{digits}f} %"


def fmt_ms(x: Any) -> str:
    """Milliseconds: ``0.05 ms``, ``12.3 ms``, ``1,250 ms``."""
    if _missing(x):
        return MISSING
    x = float(x)
    if abs(x) >= 100:
        return f"{x:,.0f} ms"
    return f"{x:.1f} ms" if abs(x) >= 1 else f"{x:.2f} ms"


def fmt_bytes(x: Any) -> str:
    """Decimal units as the policy's ``cacheSize`` reads them: ``512 MB``, ``1.2 GB``."""
    if _missing(x):
        return MISSING
    x = float(x)
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if x >= scale:
            value = x / scale
            return f"{value:.3g} {unit}" if value < 100 else f"{value:,.0f} {unit}"
    return f"{x:.0f} B"


def fmt_usd(x: Any) -> str:
    """Dollars: ``$1,234.56``; amounts under a dollar keep four decimals (``$0.0042``)."""
    if _missing(x):
        return MISSING
    x = float(x)
    sign = "-" if x < 0 else ""
    return f"{sign}${abs(x):,.2f}" if abs(x) >= 1 or x == 0 else f"{sign}${abs(x):.4f}"


def write_json(path: Path, data: Any) -> Path:
    """``data`` as indented JSON at ``path`` (numpy scalars as numbers, anything else unknown as text):
    the machine-readable file every report has next to it."""
    path = Path(path)
    path.write_text(json.dumps(data, indent=2, default=_json_value) + "\n", encoding="utf-8")
    return path


def _json_value(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else str(value)


# --- rendering -------------------------------------------------------------------------------

def _inline_html(text: str) -> str:
    """Escaped text with ``**bold**`` as ``<strong>``."""
    return _BOLD.sub(r"<strong>\1</strong>", html.escape(str(text)))


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _html_table(columns: list[str], cells: list[list[str]], caption: str | None) -> str:
    table = pd.DataFrame(cells, columns=columns).to_html(index=False, border=0, escape=True,
                                                          classes="data")
    if caption is None:
        return table
    return f"<figure class=\"table\">\n<figcaption>{_inline_html(caption)}</figcaption>\n{table}\n</figure>"


def _md_table(columns: list[str], cells: list[list[str]], caption: str | None) -> str:
    lines = [f"_{caption}_", ""] if caption else []
    lines.append("| " + " | ".join(_md_cell(c) for c in columns) + " |")
    lines.append("|" + "---|" * len(columns))
    lines.extend("| " + " | ".join(_md_cell(c) for c in row) + " |" for row in cells)
    return "\n".join(lines)


class Report:
    """One document, built block by block and written by :meth:`write`.

    :param title: the ``<h1>``.
    :param subtitle: one line under the title (plain text).
    """

    def __init__(self, title: str, subtitle: str | None = None):
        self.title = str(title)
        self.subtitle = subtitle
        self._blocks: list[tuple[str, str]] = []
        """(html, markdown) per block, in reading order."""
        self._figures: dict[str, Figure] = {}

    def _add(self, html_text: str, md_text: str) -> None:
        self._blocks.append((html_text, md_text))

    def heading(self, text: str, level: int = 2) -> None:
        """A section heading; level 2 to 6 (level 1 is the title)."""
        if not 2 <= level <= 6:
            raise ValueError("level: must be between 2 and 6")
        self._add(f"<h{level}>{_inline_html(text)}</h{level}>", f"{'#' * level} {text}")

    def paragraph(self, text: str) -> None:
        """A paragraph of plain text; ``**bold**`` is kept."""
        self._add(f"<p>{_inline_html(text)}</p>", str(text))

    def bullets(self, items: list[str]) -> None:
        """An unordered list; each item like a paragraph."""
        if not items:
            return
        lis = "\n".join(f"<li>{_inline_html(item)}</li>" for item in items)
        self._add(f"<ul>\n{lis}\n</ul>", "\n".join(f"- {item}" for item in items))

    def table(self, columns: list[str], rows: list[list], caption: str | None = None) -> None:
        """A table; cells go through :func:`fmt_number` (strings are kept as they are)."""
        columns = [str(c) for c in columns]
        cells = [[fmt_number(v) for v in row] for row in rows]
        if any(len(row) != len(columns) for row in cells):
            raise ValueError(f"table: every row needs {len(columns)} cells")
        self._add(_html_table(columns, cells, caption), _md_table(columns, cells, caption))

    def verdict(self, passed: bool, text: str) -> None:
        """A PASS or FAIL line (green or red in HTML)."""
        word, css = ("PASS", "pass") if passed else ("FAIL", "fail")
        self._add(f"<p class=\"verdict {css}\">{word}: {_inline_html(text)}</p>", f"**{word}**: {text}")

    def figure(self, name: str, fig: Figure, caption: str) -> None:
        """A matplotlib figure, saved as ``<out_dir>/<name>.png`` by :meth:`write` and then closed."""
        name = name.removesuffix(".png")
        if not _FIGURE_NAME.fullmatch(name) or name in _RESERVED or name in self._figures:
            raise ValueError(f"figure: {name!r} is not a new plain file name")
        self._figures[name] = fig
        src, alt = html.escape(f"{name}.png"), html.escape(caption)
        img = f"<img src=\"{src}\" alt=\"{alt}\">"
        self._add(f"<figure>\n{img}\n<figcaption>{_inline_html(caption)}</figcaption>\n</figure>",
                  f"![{caption}]({name}.png)")

    def to_html(self) -> str:
        """The whole document as one HTML page."""
        head = [f"<h1>{_inline_html(self.title)}</h1>"]
        if self.subtitle:
            head.append(f"<p class=\"subtitle\">{_inline_html(self.subtitle)}</p>")
        body = "\n".join(head + [block for block, _ in self._blocks])
        return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
                f"<title>{html.escape(self.title)}</title>\n<style>\n{CSS}\n</style>\n</head>\n"
                f"<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n")

    def to_markdown(self) -> str:
        """The whole document as Markdown."""
        parts = [f"# {self.title}"] + ([self.subtitle] if self.subtitle else [])
        return "\n\n".join(parts + [md for _, md in self._blocks]) + "\n"

    def write(self, out_dir: Path) -> dict[str, Path]:
        """Write the figures, ``report.html`` and ``report.md`` into ``out_dir`` (created if needed).

        :returns: ``{"html": ..., "md": ..., "<figure name>": png path, ...}``."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        paths = {"html": out_dir / "report.html", "md": out_dir / "report.md"}
        for name, fig in self._figures.items():
            paths[name] = out_dir / f"{name}.png"
            fig.savefig(paths[name], dpi=FIGURE_DPI, bbox_inches="tight")
            plt.close(fig)
        paths["html"].write_text(self.to_html(), encoding="utf-8")
        paths["md"].write_text(self.to_markdown(), encoding="utf-8")
        return paths
