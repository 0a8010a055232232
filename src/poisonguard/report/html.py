"""Building blocks of the HTML reports: a self-contained page, tables and SVG charts.

Everything is inlined (CSS, JS, SVG) so that a report opens from a CI artifact or an e-mail with no network.
Every piece of user data goes through ``esc``: a cell of a CSV may hold ``<script>``.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError

W, H = 560, 240  # chart viewBox; the page scales it
PAD_L, PAD_R, PAD_T, PAD_B = 52, 16, 14, 38
PALETTE = ("#2b6cb0", "#c53030", "#2f855a", "#b7791f", "#6b46c1", "#0987a0", "#975a16", "#d53f8c", "#4a5568")


def read_json(path: str | Path, command: str) -> Any:
    """A saved result written by ``poisonguard <command> --json``, with errors that say which file to pass."""
    p = Path(path)
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise InputError(f"{p}: no such file; pass the file written by 'poisonguard {command} --json'.") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{p}: not valid JSON ({exc}); rerun 'poisonguard {command} --json' to rewrite it.") from exc


def esc(v: Any) -> str:
    return html.escape("" if v is None else str(v), quote=True)


def asset(name: str) -> str:
    return resources.files("poisonguard.report").joinpath("assets", name).read_text(encoding="utf-8")


def page(title: str, subtitle: str, body: str) -> str:
    """A whole HTML document with the report's CSS and JS inlined."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        # no network: a report must not call home, and a strict policy also blocks injected remote content
        "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; style-src 'unsafe-inline'; "
        "script-src 'unsafe-inline'; img-src data:\">"
        f"<title>{esc(title)}</title><style>{asset('report.css')}</style></head><body>"
        f"<header class='top'><h1>{esc(title)}</h1><div class='sub'>{esc(subtitle)} · generated {stamp}</div>"
        f"</header><main>{body}</main><footer>poisonguard · this page is self-contained and works offline"
        f"</footer><script>{asset('report.js')}</script></body></html>\n"
    )


def section(title: str, body: str, *, help: str = "", id: str = "") -> str:
    ident = f" id='{esc(id)}'" if id else ""
    return (
        f"<section{ident}><h2>{esc(title)}</h2>" + (f"<p class='help'>{help}</p>" if help else "") + body + "</section>"
    )


def pct(x: Any, digits: int = 1) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    return f"{100 * float(x):.{digits}f}%"


def num(x: Any, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    if isinstance(x, bool | np.bool_):
        return "yes" if x else "no"
    if isinstance(x, int | np.integer):
        return f"{int(x):,}"
    return f"{float(x):.{digits}g}"


def table(
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    id: str = "",
    numeric: Sequence[bool] | None = None,
    sortable: bool = True,
    raw: bool = False,
    wide: Sequence[str] = (),
) -> str:
    """A table; ``raw`` cells are trusted HTML (built here), otherwise every cell is escaped.

    A cell may be a ``(shown, sort_value)`` pair so that "12.5%" sorts as 0.125.
    """
    numeric = list(numeric) if numeric is not None else [False] * len(columns)
    head = "".join(
        f"<th class='{'num' if n else ''}'" + (" style='min-width:320px'" if c in wide else "") + f">{esc(c)}</th>"
        for c, n in zip(columns, numeric, strict=True)
    )
    body = []
    for r in rows:
        cells = []
        for v, n in zip(r, numeric, strict=True):
            shown, key = v if isinstance(v, tuple) else (v, None)
            text = str(shown) if raw else esc(shown)
            data = f" data-v='{esc(key)}'" if key is not None else ""
            cells.append(f"<td class='{'num' if n else ''}'{data}>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    ident = f" id='{esc(id)}'" if id else ""
    cls = "sortable" if sortable else ""
    return f"<table{ident} class='{cls}'><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def searchable(table_html: str, table_id: str, placeholder: str) -> str:
    return (
        f"<div class='toolbar'><input class='table-search' type='search' placeholder='{esc(placeholder)}' "
        f"data-table='{esc(table_id)}' data-count='{esc(table_id)}-count' aria-label='{esc(placeholder)}'>"
        f"<span class='count' id='{esc(table_id)}-count'></span></div><div class='table-wrap'>{table_html}</div>"
    )


def legend(items: Sequence[tuple[str, str]]) -> str:
    return (
        "<div class='legend'>"
        + "".join(f"<span><i style='background:{c}'></i>{esc(t)}</span>" for t, c in items)
        + "</div>"
    )


def _svg(body: str, label: str, cls: str = "chart") -> str:
    return f"<svg class='{cls}' viewBox='0 0 {W} {H}' role='img' aria-label='{esc(label)}'>{body}</svg>"


def _nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if not math.isfinite(lo) or not math.isfinite(hi) or hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw), default=raw)
    start = math.ceil(lo / step) * step
    return [start + i * step for i in range(int((hi - start) / step + 1e-9) + 1)]


def histogram(
    values: np.ndarray, flagged: np.ndarray, threshold: float | None, *, bins: int = 40, label: str = "scores"
) -> str:
    """Rows by improbability, ``-log10(1 - score)``, counts on a log scale, flagged rows red, the threshold dashed.

    Scores of clean rows are spread evenly over [0, 1], so on the score's own axis every flag is crammed into the
    last sliver; on the improbability axis 2 means "one clean row in 100 scores this high", 3 "one in 1,000".
    A log count axis keeps a handful of poisoned rows visible next to thousands of clean ones.
    """
    floor = 1e-6
    x_val = -np.log10(np.maximum(1.0 - np.clip(np.asarray(values, dtype=float), 0, 1), floor))
    flagged = np.asarray(flagged, dtype=bool)
    thr = None if threshold is None or not math.isfinite(threshold) else -math.log10(max(1.0 - threshold, floor))
    x_hi = max(float(x_val.max(initial=0.0)), (thr or 0.0) * 1.25, 1.0) * 1.02
    edges = np.linspace(0, x_hi, bins + 1)
    all_c, _ = np.histogram(x_val, edges)
    flag_c, _ = np.histogram(x_val[flagged], edges)
    top = math.log10(max(int(all_c.max(initial=0)), 1) + 1)
    pw, ph = W - PAD_L - PAD_R, H - PAD_T - PAD_B

    def y(c: float) -> float:
        return PAD_T + ph * (1 - math.log10(c + 1) / top) if top > 0 else PAD_T + ph

    parts = []
    for c in [0] + [10**k for k in range(7)]:
        if math.log10(c + 1) > top + 1e-9:
            break
        yy = y(c)
        parts.append(f"<line class='grid' x1='{PAD_L}' x2='{W - PAD_R}' y1='{yy:.1f}' y2='{yy:.1f}'/>")
        parts.append(f"<text x='{PAD_L - 6}' y='{yy + 4:.1f}' text-anchor='end'>{c:,}</text>")
    bw = pw / bins
    for i in range(bins):
        x = PAD_L + i * bw
        if all_c[i]:
            parts.append(
                f"<rect class='bar' x='{x + 0.5:.1f}' y='{y(all_c[i]):.1f}' width='{max(bw - 1, 0.5):.1f}' "
                f"height='{PAD_T + ph - y(all_c[i]):.1f}'><title>improbability {edges[i]:.2f}-{edges[i + 1]:.2f}: "
                f"{all_c[i]:,} rows, {flag_c[i]:,} flagged</title></rect>"
            )
        if flag_c[i]:
            parts.append(
                f"<rect class='bar flagged' x='{x + 0.5:.1f}' y='{y(flag_c[i]):.1f}' width='{max(bw - 1, 0.5):.1f}' "
                f"height='{PAD_T + ph - y(flag_c[i]):.1f}'/>"
            )
    for t in _nice_ticks(0, x_hi):
        x = PAD_L + t / x_hi * pw
        parts.append(f"<text x='{x:.1f}' y='{H - PAD_B + 16}' text-anchor='middle'>{t:g}</text>")
    parts.append(f"<line class='axis' x1='{PAD_L}' x2='{W - PAD_R}' y1='{PAD_T + ph}' y2='{PAD_T + ph}'/>")
    if thr is not None:
        x = PAD_L + thr / x_hi * pw
        parts.append(f"<line class='threshold' x1='{x:.1f}' x2='{x:.1f}' y1='{PAD_T}' y2='{PAD_T + ph}'/>")
        parts.append(f"<text x='{x + 4:.1f}' y='{PAD_T + 10}'>flag line</text>")
    parts.append(
        f"<text x='{PAD_L + pw / 2:.1f}' y='{H - 6}' text-anchor='middle'>improbability on clean data "
        "(2 = 1 in 100, 3 = 1 in 1,000)</text>"
    )
    parts.append(
        f"<text transform='rotate(-90)' x='{-(PAD_T + ph / 2):.1f}' y='12' text-anchor='middle'>rows (log scale)</text>"
    )
    return _svg("".join(parts), label)


def interval_chart(
    labels: Sequence[str],
    values: Sequence[float],
    lows: Sequence[float],
    highs: Sequence[float],
    *,
    reference: float | None = None,
    reference_label: str = "",
    highlight: Sequence[bool] | None = None,
    label: str = "chart",
    max_rows: int = 25,
) -> str:
    """One row per group: a dot at the estimate and a whisker for its interval (shares in [0, 1])."""
    labels = list(labels)[:max_rows]
    n = len(labels)
    highlight = list(highlight or [False] * n)[:max_rows]
    row_h = 22
    height = PAD_T + n * row_h + PAD_B
    left = 150
    top_v = max([*highs[:n], *values[:n], reference or 0, 1e-6])
    top_v = min(1.0, top_v * 1.1)
    pw = W - left - PAD_R

    def x(v: float) -> float:
        return left + pw * min(max(v, 0.0), top_v) / top_v

    parts = []
    for t in _nice_ticks(0, top_v, 4):
        parts.append(f"<line class='grid' x1='{x(t):.1f}' x2='{x(t):.1f}' y1='{PAD_T}' y2='{height - PAD_B}'/>")
        parts.append(f"<text x='{x(t):.1f}' y='{height - PAD_B + 14}' text-anchor='middle'>{100 * t:.3g}%</text>")
    for i, name in enumerate(labels):
        yy = PAD_T + i * row_h + row_h / 2
        short = name if len(name) <= 22 else name[:21] + "…"
        parts.append(
            f"<text x='{left - 8}' y='{yy + 4:.1f}' text-anchor='end'>{esc(short)}<title>{esc(name)}</title></text>"
        )
        parts.append(
            f"<line class='whisker' x1='{x(lows[i]):.1f}' x2='{x(highs[i]):.1f}' y1='{yy:.1f}' y2='{yy:.1f}'/>"
        )
        cls = "dot bad" if highlight[i] else "dot"
        parts.append(
            f"<circle class='{cls}' cx='{x(values[i]):.1f}' cy='{yy:.1f}' r='4.5'><title>{esc(name)}: "
            f"{100 * values[i]:.2f}% (95% interval {100 * lows[i]:.2f}-{100 * highs[i]:.2f}%)</title></circle>"
        )
    if reference is not None:
        parts.append(
            f"<line class='ref' x1='{x(reference):.1f}' x2='{x(reference):.1f}' y1='{PAD_T}' y2='{height - PAD_B}'/>"
        )
        parts.append(f"<text x='{x(reference) + 4:.1f}' y='{PAD_T + 9}'>{esc(reference_label)}</text>")
    return f"<svg class='chart' viewBox='0 0 {W} {height}' role='img' aria-label='{esc(label)}'>{''.join(parts)}</svg>"


def line_chart(
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    *,
    x_label: str,
    y_label: str,
    y_percent: bool = True,
    x_percent: bool = True,
    reference: float | None = None,
    label: str = "chart",
) -> str:
    """Lines with dots, one per series (x and y as shares when ``*_percent``)."""
    xs = [float(v) for s in series.values() for v in s[0] if v is not None and math.isfinite(v)]
    ys = [float(v) for s in series.values() for v in s[1] if v is not None and math.isfinite(v)]
    if not xs or not ys:
        return "<p class='help'>nothing to draw</p>"
    x_lo, x_hi = 0.0, max(xs) * 1.05
    y_lo, y_hi = min([*ys, 0.0, reference or 0.0]), max([*ys, reference or 0.0, 1e-6])
    span = y_hi - y_lo
    y_lo, y_hi = y_lo - 0.05 * span, y_hi + 0.08 * span
    pw, ph = W - PAD_L - PAD_R, H - PAD_T - PAD_B

    def px(v: float) -> float:
        return PAD_L + pw * (v - x_lo) / (x_hi - x_lo)

    def py(v: float) -> float:
        return PAD_T + ph * (1 - (v - y_lo) / (y_hi - y_lo))

    fx = (lambda v: f"{100 * v:.3g}%") if x_percent else (lambda v: f"{v:.3g}")
    fy = (lambda v: f"{100 * v:.3g}%") if y_percent else (lambda v: f"{v:.3g}")
    parts = []
    for t in _nice_ticks(y_lo, y_hi, 4):
        parts.append(f"<line class='grid' x1='{PAD_L}' x2='{W - PAD_R}' y1='{py(t):.1f}' y2='{py(t):.1f}'/>")
        parts.append(f"<text x='{PAD_L - 6}' y='{py(t) + 4:.1f}' text-anchor='end'>{fy(t)}</text>")
    for t in sorted({float(v) for v in xs}):
        parts.append(f"<text x='{px(t):.1f}' y='{H - PAD_B + 16}' text-anchor='middle'>{fx(t)}</text>")
    parts.append(
        f"<line class='axis' x1='{PAD_L}' x2='{W - PAD_R}' y1='{py(max(y_lo, 0) if y_lo < 0 < y_hi else y_lo):.1f}' "
        f"y2='{py(max(y_lo, 0) if y_lo < 0 < y_hi else y_lo):.1f}'/>"
    )
    if reference is not None:
        parts.append(
            f"<line class='ref' x1='{PAD_L}' x2='{W - PAD_R}' y1='{py(reference):.1f}' y2='{py(reference):.1f}'/>"
        )
    for k, (name, (sx, sy)) in enumerate(series.items()):
        colour = PALETTE[k % len(PALETTE)]
        pts = [(px(float(a)), py(float(b))) for a, b in zip(sx, sy, strict=True) if b is not None and math.isfinite(b)]
        if not pts:
            continue
        path = " ".join(f"{'M' if i == 0 else 'L'}{a:.1f},{b:.1f}" for i, (a, b) in enumerate(pts))
        parts.append(f"<path d='{path}' fill='none' stroke='{colour}' stroke-width='2'/>")
        for (a, b), xv, yv in zip(pts, sx, sy, strict=False):
            parts.append(
                f"<circle cx='{a:.1f}' cy='{b:.1f}' r='3.5' fill='{colour}'><title>{esc(name)}: {fx(float(xv))} -> "
                f"{fy(float(yv))}</title></circle>"
            )
    parts.append(f"<text x='{PAD_L + pw / 2:.1f}' y='{H - 6}' text-anchor='middle'>{esc(x_label)}</text>")
    parts.append(
        f"<text transform='rotate(-90)' x='{-(PAD_T + ph / 2):.1f}' y='12' text-anchor='middle'>{esc(y_label)}</text>"
    )
    body = _svg("".join(parts), label)
    return body + legend([(n, PALETTE[k % len(PALETTE)]) for k, n in enumerate(series)])


def wilson(k: np.ndarray, n: np.ndarray, z: float = 1.96) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of k successes in n trials (vectorised): honest for small groups and zero counts."""
    k = np.asarray(k, dtype=float)
    n = np.maximum(np.asarray(n, dtype=float), 1.0)
    p = k / n
    den = 1 + z**2 / n
    centre = (p + z**2 / (2 * n)) / den
    half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / den
    return np.clip(centre - half, 0, 1), np.clip(centre + half, 0, 1)


def settings_list(items: Mapping[str, Any]) -> str:
    return "<dl class='settings'>" + "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in items.items()) + "</dl>"
