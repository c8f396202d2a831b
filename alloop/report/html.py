"""A static HTML page assembled from sections, tables and figures: inline CSS, relative image paths,
no script and nothing fetched, so it opens from a file anywhere (a laptop, a cluster's web share)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Any

import pandas as pd

_CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; margin: 0 auto; max-width: 1180px;
       padding: 0 18px 40px; color: #1d232a; }
h1 { font-size: 22px; margin: 18px 0 4px; }
h2 { font-size: 18px; margin: 28px 0 8px; padding-top: 8px; border-top: 2px solid #d7dde4; }
h3 { font-size: 15px; margin: 16px 0 6px; }
nav a { margin-right: 12px; }
table { border-collapse: collapse; margin: 6px 0 10px; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #d7dde4; padding: 3px 8px; text-align: right; vertical-align: top; }
th { background: #eef2f6; font-weight: 600; }
td:first-child, th:first-child { text-align: left; }
table.kv td:last-child { text-align: left; }
tr.warning td { background: #fff6dc; } tr.error td { background: #fde4e4; }
td.message { text-align: left; max-width: 640px; }
.note { background: #fff6dc; border-left: 4px solid #e0a800; padding: 4px 10px; margin: 8px 0; }
.figs { display: flex; flex-wrap: wrap; gap: 14px; }
figure { margin: 6px 0; max-width: 560px; flex: 1 1 460px; }
figure img { width: 100%; height: auto; border: 1px solid #e3e7ec; }
figcaption { font-size: 12.5px; color: #4a5561; }
p { margin: 6px 0; }
"""


def fmt(value: Any, spec: str = "") -> str:
    """A number for the page: '—' for missing or NaN; spec 'pct' gives a percentage with two decimals."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if spec == "pct":
        return f"{float(value):.2%}"
    if spec:
        return format(float(value), spec)
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def table(df: pd.DataFrame, headers: Sequence[str] | None = None, row_class: str | None = None) -> str:
    """An HTML table of a data frame; `row_class` names a column whose value becomes each row's class."""
    heads = list(headers) if headers is not None else [str(c) for c in df.columns]
    out = ["<table><thead><tr>", *(f"<th>{escape(h)}</th>" for h in heads), "</tr></thead><tbody>"]
    for _, row in df.iterrows():
        cls = f' class="{escape(str(row[row_class]))}"' if row_class else ""
        cells = "".join(f'<td class="{escape(str(c))}">{escape(fmt(v))}</td>' if c == "message" else f"<td>{escape(fmt(v))}</td>"
                        for c, v in row.items())
        out.append(f"<tr{cls}>{cells}</tr>")
    out.append("</tbody></table>")
    return "".join(out)


class Page:
    def __init__(self, title: str) -> None:
        self.title = title
        self._body: list[str] = []
        self._sections: list[tuple[str, str]] = []

    def section(self, title: str) -> None:
        anchor = f"s{len(self._sections)}"
        self._sections.append((anchor, title))
        self._body.append(f'<h2 id="{anchor}">{escape(title)}</h2>')

    def subsection(self, title: str) -> None:
        self._body.append(f"<h3>{escape(title)}</h3>")

    def text(self, text: str) -> None:
        self._body.append(f"<p>{escape(text)}</p>")

    def note(self, text: str) -> None:
        self._body.append(f'<p class="note">{escape(text)}</p>')

    def html(self, fragment: str) -> None:
        self._body.append(fragment)

    def kv(self, rows: Sequence[tuple[str, Any, str | None]]) -> None:
        """Two-column table; a row's third element, when given, is its `data-key` (what tests and scripts
        read back)."""
        cells = []
        for name, value, key in rows:
            attr = f' data-key="{escape(key)}"' if key else ""
            cells.append(f"<tr><td>{escape(name)}</td><td{attr}>{escape(fmt(value))}</td></tr>")
        self._body.append('<table class="kv"><tbody>' + "".join(cells) + "</tbody></table>")

    def figure(self, path: Path, caption: str) -> None:
        img = f'<img src="{escape(path.name)}" alt="{escape(caption)}">'
        fig = f"<figure>{img}<figcaption>{escape(caption)}</figcaption></figure>"
        if self._body and self._body[-1].endswith("</figure></div>"):  # consecutive figures share a row
            self._body[-1] = self._body[-1][: -len("</div>")] + fig + "</div>"
        else:
            self._body.append(f'<div class="figs">{fig}</div>')

    def render(self) -> str:
        nav = " ".join(f'<a href="#{a}">{escape(t)}</a>' for a, t in self._sections)
        return (
            f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{escape(self.title)}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{_CSS}</style></head>\n'
            f"<body><h1>{escape(self.title)}</h1><nav>{nav}</nav>\n" + "\n".join(self._body) + "\n</body></html>\n"
        )
