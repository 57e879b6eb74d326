"""One self-contained HTML page per report: inline CSS, plots as data URIs, no script, nothing fetched.

The monitoring, drift and attribution reports share it, so they look alike and open anywhere
(a file, an e-mail attachment, a CI artifact) without a network.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:24px;color:#1d2733;
 max-width:1100px;line-height:1.45;font-size:14px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #d6dde5;padding-bottom:4px}
.meta{color:#5b6b7c;font-size:12.5px;margin-bottom:14px}
.summary{background:#f3f7fb;border-left:4px solid #2b6cb0;padding:10px 16px;margin:12px 0}
.summary p{margin:6px 0}
table{border-collapse:collapse;font-size:12.5px;margin:6px 0 10px;width:100%}
th,td{padding:4px 7px;border-bottom:1px solid #e3e8ee;text-align:right;white-space:nowrap}
th{background:#eef2f6;font-weight:600;white-space:normal;vertical-align:bottom}
.scroll{overflow-x:auto}th:nth-child(-n+4),td:nth-child(-n+4){text-align:left}
tr.all td{font-weight:600;background:#fafbfc}
tr.major td{color:#b42318}tr.shift td{color:#9a6700}
.plots{display:flex;flex-wrap:wrap;gap:12px}.plots img{max-width:100%;width:480px;border:1px solid #e3e8ee}
.plots img.wide{width:960px}
.note{color:#5b6b7c;font-size:12px}
"""

Column = tuple[str, str, str]  # (field, heading, kind: "" | "pct" | "f2" | "f3")


def percent(x: float | None) -> str:
    """A share as text: whole percent from 10 % up (and 0), one decimal below ("2.5 %", "31 %")."""
    if x is None or pd.isna(x):
        return "–"
    return (f"{x:.0%}" if x >= 0.1 or x == 0 else f"{x:.1%}").replace("%", " %")


def cell(value, kind: str = "") -> str:
    """One table cell: "–" for missing, percentages and 3-decimal numbers by ``kind``, text escaped."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "–"
    if kind == "pct":
        return percent(float(value))
    if kind in ("f2", "f3"):
        return f"{float(value):.{kind[1]}f}"
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    return html.escape(str(value))


def table(frame: pd.DataFrame, columns: Sequence[Column], table_id: str,
          row_class: Callable[[dict], str] | None = None) -> str:
    """An HTML table of ``frame``'s ``columns``; ``row_class`` may mark rows (a CSS class)."""
    head = "".join(f"<th>{html.escape(title)}</th>" for _, title, _ in columns)
    body = []
    for row in frame.to_dict("records"):
        css = row_class(row) if row_class else ""
        attr = f' class="{css}"' if css else ""
        body.append(f"<tr{attr}>" + "".join(f"<td>{cell(row[c], kind)}</td>" for c, _, kind in columns) + "</tr>")
    return (f'<div class="scroll"><table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody>'
            "</table></div>")


def data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def image(path: Path, alt: str, wide: bool = False) -> str:
    css = ' class="wide"' if wide else ""
    return f'<img{css} alt="{html.escape(alt)}" src="{data_uri(path)}">'


def page(title: str, meta: dict[str, object], sentences: Sequence[str], body: str) -> str:
    """The whole document: heading, a line of metadata, the summary sentences, then ``body``."""
    line = " · ".join(html.escape(f"{k}: {v}") for k, v in meta.items() if v is not None)
    summary = "".join(f"<p>{html.escape(s)}</p>" for s in sentences)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>leadscore: {html.escape(title)}</title><style>{CSS}</style></head>
<body>
<h1>{html.escape(title)}</h1>
<div class="meta">{line}</div>
<div class="summary" id="summary">{summary}</div>
{body}
</body></html>
"""
