"""A report as blocks (headings, text, tables, figures), written as Markdown and as one
self-contained HTML page: numbers formatted for people (accuracies in percent to the precision
their spread justifies, small values in scientific notation), sortable tables, a contents list,
links from a row to its run folder."""

from __future__ import annotations

import base64
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import pandas as pd

TEMPLATE = Path(__file__).with_name("report.html.j2")
P_COLUMNS = ("p", "p_holm", "p_equiv", "p_equiv_holm")
SHORT = 16  # a cell of at most this many characters never wraps ("paired t", "1e-4")
URL_SAFE = "/=,.-_~:#?&%"  # kept as they are in a link (a run folder's name, a query)


def is_fraction(name: str) -> bool:
    """Whether a metric (or a column of one) is a fraction, shown in percent: every accuracy."""
    return "accuracy" in name


def _decimals(spread: float, default: int) -> int:
    """Decimals that show `spread` to two significant digits (at most 4); `default` when
    there is no spread to go by."""
    if not spread or not math.isfinite(spread):
        return default
    return min(4, max(0, 1 - math.floor(math.log10(abs(spread)))))


@dataclass(frozen=True)
class Estimate:
    """A mean ± std over n runs: `89.12 ± 0.31 % (3)`, to the precision the std justifies."""

    mean: float
    std: float
    n: int
    percent: bool = False

    def __str__(self) -> str:
        if self.n == 0 or math.isnan(self.mean):
            return "-"
        scale, unit = (100, " %") if self.percent else (1, "")
        default = 2 if self.percent else 4
        if self.n == 1 or math.isnan(self.std):
            return f"{self.mean * scale:.{default}f}{unit} (1)"
        places = _decimals(self.std * scale, default)
        return f"{self.mean * scale:.{places}f} ± {self.std * scale:.{places}f}{unit} ({self.n})"

    def sort_key(self) -> float:
        return self.mean


@dataclass(frozen=True)
class Difference:
    """A difference with its 95 % interval, `+0.41 [+0.18, +0.64] pp` for fractions (points),
    to the precision the interval's half-width justifies."""

    value: float
    low: float
    high: float
    percent: bool = False

    def __str__(self) -> str:
        if math.isnan(self.value):
            return "-"
        scale, unit = (100, " pp") if self.percent else (1, "")
        places = _decimals((self.high - self.low) / 2 * scale, 2 if self.percent else 4)
        if math.isnan(self.low) or math.isnan(self.high):
            return f"{self.value * scale:+.{places}f}{unit}"
        low, high = self.low * scale, self.high * scale
        return f"{self.value * scale:+.{places}f} [{low:+.{places}f}, {high:+.{places}f}]{unit}"

    def sort_key(self) -> float:
        return self.value


@dataclass(frozen=True)
class Link:
    """A cell's text that links somewhere (a run folder, relative to the report)."""

    text: str
    href: str

    def __str__(self) -> str:
        return self.text

    def markdown(self) -> str:
        return f"[{self.text}]({self.href})"


def folder_link(path: str | Path, out: Path, text: str | None = None) -> Link:
    """A link from the report folder `out` to a run folder, named by the folder unless told."""
    return Link(text or Path(path).name, os.path.relpath(path, out) + "/")


def number(value: float, column: str = "") -> str:
    """A float for people: accuracies in percent, p-values to two digits, seconds to a tenth,
    small or large values (learning rates) in scientific notation as Hydra reads them."""
    if math.isnan(value):
        return "-"
    if is_fraction(column):
        return f"{value * 100:.2f} %"
    if column in P_COLUMNS:
        return "< 0.001" if 0 < value < 0.001 else f"{value:.2g}"
    if "seconds" in column or column.endswith(" s") or " s " in column:
        return f"{value:.1f}"
    if value.is_integer() or abs(value) >= 1e3:  # counts, parameters, images per second
        return f"{value:,.0f}" if abs(value) >= 10_000 else f"{value:.0f}"
    if abs(value) < 1e-2:
        return np.format_float_scientific(value, precision=2, trim="-", exp_digits=1)
    return f"{value:.3g}"


def cell_text(value: Any, column: str = "") -> str:
    """What a table cell shows (Markdown and HTML alike)."""
    if isinstance(value, list):
        return ", ".join(cell_text(item, column) for item in value)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, float | np.floating):
        return number(float(value), column)
    if isinstance(value, int | np.integer):
        return number(float(value))
    return str(value)


def sort_key(value: Any) -> str:
    """The value a sortable column orders by: the number behind the text where there is one."""
    if hasattr(value, "sort_key"):
        value = value.sort_key()
    if isinstance(value, list):
        value = value[0] if value else ""
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, int | float | np.integer | np.floating) and not pd.isna(value):
        return repr(float(value))
    return str(value)


def slug(text: str, taken: set[str]) -> str:
    """An HTML id for a heading, unique on the page."""
    base = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"
    name, i = base, 2
    while name in taken:
        name, i = f"{base}-{i}", i + 1
    taken.add(name)
    return name


def inline_html(text: str) -> str:
    """A line of the report's Markdown (`code`, [links](href), **bold**) as escaped HTML."""
    from markupsafe import escape

    out = str(escape(text))
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    out = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", out)
    return re.sub(r"\[([^\]]+)\]\(([^)\s]+)\)", r'<a href="\2">\1</a>', out)


def breakable(text: str) -> str:
    """A long name (a run folder's `a=1,b=2,...`, a key's `regularization.weight_decay`) with
    places to wrap after `,` `=` `/` `.` (zero-width spaces), so a table fits the window
    without breaking short words."""
    if len(text) <= 24:
        return text
    return re.sub(r"([,=/.])", "\\1\u200b", text)


def _cell_html(value: Any, column: str) -> str:
    from markupsafe import escape

    items = value if isinstance(value, list) else [value]
    parts = [
        f'<a href="{escape(quote(item.href, safe=URL_SAFE))}">{escape(breakable(item.text))}</a>'
        if isinstance(item, Link)
        else str(escape(breakable(cell_text(item, column))))
        for item in items
    ]
    return ", ".join(parts)


def _markdown_cell(value: Any, column: str) -> str:
    items = value if isinstance(value, list) else [value]
    parts = [
        item.markdown() if isinstance(item, Link) else cell_text(item, column) for item in items
    ]
    return ", ".join(parts).replace("|", "\\|").replace("\n", " ")


def _numeric(column: pd.Series) -> bool:
    values = [v for v in column if not (v is None or (isinstance(v, float) and math.isnan(v)))]
    kinds = (int, float, np.integer, np.floating, Estimate, Difference)
    return bool(values) and all(
        isinstance(v, kinds) and not isinstance(v, bool | np.bool_) for v in values
    )


@dataclass
class Page:
    """The report as a list of blocks, written as Markdown and as one self-contained HTML page."""

    title: str
    header: list[str] = field(default_factory=list)  # what made it, under the title
    blocks: list[tuple[str, Any]] = field(default_factory=list)

    def heading(self, text: str) -> None:
        self.blocks.append(("heading", text))

    def text(self, *lines: str) -> None:
        self.blocks.append(("text", list(lines)))

    def table(self, frame: pd.DataFrame, caption: str = "", index: bool = False) -> None:
        self.blocks.append(("table", (frame.reset_index() if index else frame, caption)))

    def figure(self, path: Path, title: str) -> None:
        self.blocks.append(("figure", (path, title)))

    def markdown(self) -> str:
        lines = [f"# {self.title}", "", *([*self.header, ""] if self.header else [])]
        for kind, content in self.blocks:
            if kind == "heading":
                lines += [f"## {content}", ""]
            elif kind == "text":
                lines += [*content, ""]
            elif kind == "table":
                frame, caption = content
                lines += [*([caption, ""] if caption else []), _markdown_table(frame), ""]
            else:
                path, title = content
                lines += [f"![{title}]({path.name})", ""]
        return "\n".join(lines)

    def html(self) -> str:
        from jinja2 import Environment, FileSystemLoader, select_autoescape

        env = Environment(
            loader=FileSystemLoader(TEMPLATE.parent), autoescape=select_autoescape(["j2"])
        )
        taken: set[str] = set()
        blocks, contents = [], []
        for kind, content in self.blocks:
            if kind == "heading":
                anchor = slug(content, taken)
                contents.append((anchor, content))
                blocks.append(("heading", (anchor, content)))
            elif kind == "table":
                blocks.append(("table", _html_table(*content)))
            elif kind == "figure":
                path, title = content
                data = base64.b64encode(path.read_bytes()).decode()
                blocks.append(("figure", (f"data:image/png;base64,{data}", title)))
            else:
                listed = all(line.startswith("- ") for line in content)
                lines = [inline_html(line.removeprefix("- ")) for line in content]
                blocks.append(("list" if listed else "text", lines))
        header = [inline_html(line) for line in self.header]
        return env.get_template(TEMPLATE.name).render(
            title=self.title, header=header, contents=contents, blocks=blocks
        )


def _headers(frame: pd.DataFrame) -> list[str]:
    """Column names; a pivot's columns are values (`1e-4`, not `0.000100`)."""
    return [c if isinstance(c, str) else cell_text(c) for c in frame.columns]


def _html_table(frame: pd.DataFrame, caption: str) -> dict[str, Any]:
    columns = _headers(frame)
    numeric = [_numeric(frame[c]) for c in frame.columns]
    rows = [
        [
            {
                "html": _cell_html(value, column),
                "sort": sort_key(value),
                "short": len(cell_text(value, column)) <= SHORT,
            }
            for value, column in zip(row, columns, strict=True)
        ]
        for row in frame.itertuples(index=False)
    ]
    shown = [header_breaks(column) for column in columns]
    return {"caption": caption, "columns": columns, "shown": shown, "numeric": numeric,
            "rows": rows}  # fmt: skip


def header_breaks(name: str) -> str:
    """Where a column name may wrap: after its dots (`regularization.` / `weight_decay`),
    else, in a long name, after its underscores that end a word of three letters or more
    (`train_` / `seconds`, `p_equiv_` / `holm`); never inside a key's last part or a short
    name (`p_holm`)."""
    if "." in name and " " not in name:  # a key; `seeds to detect 0.002` wraps at its spaces
        return name.replace(".", ".\u200b")
    if len(name) <= 8:
        return name
    return re.sub(r"(?<=[^_]{3})_", "_\u200b", name)  # after a word of 3 or more letters


def _markdown_table(frame: pd.DataFrame) -> str:
    columns = _headers(frame)
    lines = [
        "| " + " | ".join(columns) + " |",
        "|" + "|".join(
            "---:" if _numeric(frame[c]) else ":---" for c in frame.columns
        ) + "|",
    ]  # fmt: skip
    for row in frame.itertuples(index=False):
        cells = [_markdown_cell(v, c) for v, c in zip(row, columns, strict=True)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
