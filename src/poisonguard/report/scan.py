"""The scan report: one HTML page a person who is not an ML expert can read and act on.

It is built from what a scan saves (``summary.json``, ``rows.csv``, ``flagged.csv``) so that
``poisonguard report DIR`` gives the same page as ``scan --html`` long after the scan ran.
"""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError
from . import html as h

MAX_TABLE_ROWS = 2000  # flagged rows shown in the page; all of them are in flagged.csv
MAX_FEATURE_COLUMNS = 15

PLAIN = {
    "clean": "Nothing here looks poisoned beyond what clean data gives: the rows flagged are about as many as the "
    "false-alarm rate allows. It is safe to train on as far as this scan can tell.",
    "suspicious": "Something is off, but not clearly poisoning: some check flags more rows than clean data would, "
    "or one source is flagged more than the others. Look at the flagged rows and sources below before training.",
    "poisoned": "This data very likely contains poisoned rows: at least one check flags far more rows than clean data "
    "would. Do not train on it as is: review the flagged rows, remove them (flagged.csv lists them, with reasons) "
    "and rescan.",
}


@dataclass(frozen=True)
class ScanReportData:
    """What the page needs: the saved summary, the per-row scores, and the flagged rows with their values."""

    summary: dict[str, Any]
    rows: pd.DataFrame
    flagged: pd.DataFrame

    @classmethod
    def from_result(cls, result: Any) -> ScanReportData:
        flagged = result.flagged_data() if result.data is not None else result.flagged
        return cls(summary=result.to_dict(), rows=result.rows, flagged=flagged)

    @classmethod
    def load(cls, directory: str | Path) -> ScanReportData:
        """Read a saved scan (``scan --out DIR``)."""
        d = Path(directory)
        paths = {name: d / name for name in ("summary.json", "rows.csv", "flagged.csv")}
        missing = [n for n, p in paths.items() if not p.is_file()]
        if missing:
            raise InputError(
                f"{d}: not a saved scan ({', '.join(missing)} missing); pass the directory given to "
                "'poisonguard scan --out'."
            )
        try:
            summary = json.loads(paths["summary.json"].read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputError(f"{paths['summary.json']}: not valid JSON ({exc}); rerun the scan to rewrite it.") from exc
        for key in ("verdict", "rows", "flagged", "fpr"):
            if key not in summary:
                raise InputError(f"{paths['summary.json']}: the key '{key}' is missing; rerun the scan to rewrite it.")
        try:
            rows = pd.read_csv(paths["rows.csv"])
            flagged = pd.read_csv(paths["flagged.csv"])
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise InputError(f"{d}: rows.csv or flagged.csv cannot be read ({exc}); rerun the scan.") from exc
        for col in ("score", "flagged"):
            if col not in rows.columns:
                raise InputError(f"{paths['rows.csv']}: the column '{col}' is missing; rerun the scan to rewrite it.")
        return cls(summary=summary, rows=rows, flagged=flagged)


def render(data: ScanReportData, *, title: str | None = None) -> str:
    s = data.summary
    name = str(s.get("data", {}).get("name", "data"))
    parts = [
        _verdict(s),
        _scores(data, s),
        _breakdowns(s),
        _triggers(s),
        _flagged_rows(data, s),
        _review_rows(data),
        _detectors(s),
        _settings(s),
    ]
    return h.page(title or f"poisonguard scan: {Path(name).name}", f"{name} · {s['rows']:,} rows", "".join(parts))


def _verdict(s: dict[str, Any]) -> str:
    v = str(s["verdict"])
    est = s.get("estimated_poisoned_fraction") or {}
    kpis = [
        ("rows", f"{int(s['rows']):,}"),
        ("flagged", f"{int(s['flagged']):,} ({h.pct(s.get('flagged_fraction'), 2)})"),
        ("expected false alarms", f"about {float(s['fpr']) * int(s['rows']):,.0f}"),
    ]
    if est:
        kpis.append(
            (
                "estimated poisoned",
                f"{h.pct(est.get('value'), 2)} ({h.pct(est.get('low'), 2)}-{h.pct(est.get('high'), 2)})",
            )
        )
    kpis.append(("triggers found", str(len(s.get("triggers") or []))))
    kpi_html = "".join(
        f"<div class='kpi'><div class='v'>{h.esc(val)}</div><div class='k'>{h.esc(k)}</div></div>" for k, val in kpis
    )
    evidence = "".join(f"<li>{h.esc(e)}</li>" for e in s.get("evidence", []))
    notes = "".join(f"<li>{h.esc(n)}</li>" for n in s.get("notes", []))
    body = (
        f"<div class='verdict'><span class='badge {h.esc(v)}' id='verdict'>{h.esc(v)}</span>"
        f"<div class='kpis'>{kpi_html}</div></div><p>{h.esc(PLAIN.get(v, ''))}</p>"
        f"<strong>Why</strong><ul class='evidence'>{evidence}</ul>"
        + (f"<strong>Notes</strong><ul class='evidence'>{notes}</ul>" if notes else "")
        + (f"<p class='help'>{h.esc(est.get('meaning', ''))}</p>" if est else "")
    )
    return h.section("Verdict", body, id="summary")


def _bool_column(rows: pd.DataFrame, col: str) -> np.ndarray:
    """A true/false column as read back from rows.csv (text when it held missing values)."""
    v = rows[col]
    return v.astype(str).str.lower().isin(["true", "1"]).to_numpy() if v.dtype == object else v.to_numpy(bool)


def _scores(data: ScanReportData, s: dict[str, Any]) -> str:
    rows = data.rows
    flagged = _bool_column(rows, "flagged")
    chart = h.histogram(rows["score"].to_numpy(float), flagged, s.get("threshold"), label="score distribution")
    help_text = (
        "How improbable each row is if the data were clean: at 2, one clean row in 100 looks this unusual; at 3, one "
        f"in 1,000. Rows right of the dashed line are flagged (red); the line sits where clean data would put about "
        f"{h.pct(s['fpr'])} of its rows. The count axis is logarithmic, so a few suspicious rows stay visible next to "
        "thousands of ordinary ones."
    )
    return h.section(
        "Score distribution",
        chart + h.legend([("all rows", "#8aa4c8"), ("flagged", "#c53030")]),
        help=help_text,
        id="scores",
    )


def _group_chart(records: list[dict[str, Any]], key: str, fpr: float, title: str) -> str:
    if not records:
        return ""
    frame = pd.DataFrame.from_records(records)
    lo, hi = h.wilson(frame["flagged"].to_numpy(), frame["rows"].to_numpy())
    worse = frame["worse_than_rest"].astype(bool).tolist() if "worse_than_rest" in frame else None
    chart = h.interval_chart(
        frame[key].astype(str).tolist(),
        frame["flagged_fraction"].astype(float).tolist(),
        lo.tolist(),
        hi.tolist(),
        reference=fpr,
        reference_label=f"false-alarm rate {h.pct(fpr)}",
        highlight=worse,
        label=title,
    )
    cols = [key, "rows", "flagged", "flagged %", "95% interval", "expected if clean"]
    numeric = [False, True, True, True, False, True]
    table_rows: list[list[Any]] = []
    for i, r in enumerate(frame.to_dict("records")):
        row = [
            r[key],
            (f"{int(r['rows']):,}", r["rows"]),
            (f"{int(r['flagged']):,}", r["flagged"]),
            (h.pct(r["flagged_fraction"], 2), r["flagged_fraction"]),
            f"{h.pct(lo[i], 2)} to {h.pct(hi[i], 2)}",
            (f"{float(r.get('expected_flagged', fpr * r['rows'])):,.1f}", r.get("expected_flagged", fpr * r["rows"])),
        ]
        if worse is not None:
            row.append(("yes" if worse[i] else "no") + f" (p = {float(r.get('p_worse_than_rest', 1)):.2g})")
        table_rows.append(row)
    if worse is not None:
        cols.append("worse than the rest")
        numeric.append(False)
    return f"<div><h3>{h.esc(title)}</h3>{chart}{h.table(cols, table_rows, numeric=numeric)}</div>"


def _breakdowns(s: dict[str, Any]) -> str:
    fpr = float(s["fpr"])
    by_class = _group_chart(s.get("by_class") or [], "label", fpr, "By class")
    by_source = _group_chart(s.get("by_source") or [], "source", fpr, "By source")
    help_text = (
        "Share of rows flagged per group, with a 95% interval (Wilson). A group far right of the dashed "
        "false-alarm line holds more suspicious rows than clean data would. Sources are also compared on their "
        "whole score distribution; a red dot marks a source significantly worse than the rest."
    )
    if not by_source:
        by_source = "<div><h3>By source</h3><p class='help'>No source column was given (scan --source COL).</p></div>"
    return h.section(
        "Where the flags are", f"<div class='grid2'>{by_class}{by_source}</div>", help=help_text, id="groups"
    )


def _triggers(s: dict[str, Any]) -> str:
    triggers = s.get("triggers") or []
    if not triggers:
        body = "<p id='no-triggers'>No backdoor trigger found: no combination of values is tied to one class the way a planted trigger is.</p>"
    else:
        rows = [
            [
                " and ".join(
                    f"{c} = {v!r}" if t.get("kind") != "token" else f"{c} contains {v!r}"
                    for c, v in t["conditions"].items()
                ),
                str(t.get("target")),
                (f"{int(t.get('support', 0)):,}", t.get("support", 0)),
                (h.pct(t.get("purity"), 0), t.get("purity")),
                (f"{float(t.get('pvalue', 1)):.2g}", t.get("pvalue")),
                t.get("description", ""),
            ]
            for t in triggers
        ]
        body = h.table(
            ["trigger", "leads to class", "rows", "purity", "p-value", "in plain words"],
            rows,
            id="triggers-table",
            numeric=[False, False, True, True, True, False],
        )
    help_text = (
        "A backdoor trigger is a combination of values an attacker stamps on rows so that a model learns "
        "'these values mean class X'. Rows carrying a trigger are flagged; remove them and test the retrained "
        "model with the trigger (poisonguard evaluate --triggers)."
    )
    return h.section("Backdoor triggers", body, help=help_text, id="triggers")


def _flagged_rows(data: ScanReportData, s: dict[str, Any]) -> str:
    f = data.flagged
    n = len(f)
    if n == 0:
        return h.section("Flagged rows", "<p>No row was flagged.</p>", id="flagged")
    f = f.sort_values("poisonguard_score", ascending=False) if "poisonguard_score" in f.columns else f
    shown = f.head(MAX_TABLE_ROWS)
    lead = [c for c in ("row", "poisonguard_score", "poisonguard_reasons") if c in shown.columns]
    label = s.get("data", {}).get("label")
    rest = [c for c in shown.columns if c not in lead]
    if label in rest:
        rest.remove(label)
        rest.insert(0, label)
    features = rest[:MAX_FEATURE_COLUMNS]
    cols = lead + features
    headers = [{"poisonguard_score": "score", "poisonguard_reasons": "reasons"}.get(c, c) for c in cols]
    numeric = [pd.api.types.is_numeric_dtype(shown[c]) and c != "poisonguard_reasons" for c in cols]
    values = shown[cols].to_numpy(dtype=object)
    table_rows = [
        [
            (f"{v:.4f}", v)
            if c == "poisonguard_score"
            else ("" if v is None or (isinstance(v, float) and np.isnan(v)) else v)
            for c, v in zip(cols, r, strict=True)
        ]
        for r in values
    ]
    note = (
        f"<p class='help'>Showing the {len(shown):,} most suspicious of {n:,} flagged rows"
        + (f" and the first {len(features)} of {len(rest)} columns" if len(rest) > len(features) else "")
        + "; flagged.csv holds them all. Click a column to sort; type to filter.</p>"
    )
    table = h.table(headers, table_rows, id="flagged-table", numeric=numeric, wide=("reasons",))
    return h.section(
        "Flagged rows",
        note + h.searchable(table, "flagged-table", "filter rows (any text, e.g. a reason or a value)"),
        id="flagged",
    )


def _review_rows(data: ScanReportData) -> str:
    """Rows a class-level finding named for review without flagging them (absent when there are none)."""
    rows = data.rows
    if "review" not in rows.columns:  # a scan saved before review rows existed
        return ""
    mask = _bool_column(rows, "review")
    if not mask.any():
        return ""
    shown = rows.loc[mask].sort_values("score", ascending=False).head(MAX_TABLE_ROWS)
    cols = [c for c in ("row", "label", "score", "reasons") if c in shown.columns]
    table_rows = [
        [(f"{v:.4f}", v) if c == "score" else v for c, v in zip(cols, r, strict=True)]
        for r in shown[cols].to_numpy(dtype=object)
    ]
    numeric = [c in {"row", "score"} for c in cols]
    table = h.table(cols, table_rows, id="review-table", numeric=numeric, wide=("reasons",))
    note = (
        f"<p class='help'>{int(mask.sum()):,} rows are not flagged but were named by a finding short of its flag "
        "level (see the verdict's evidence): they rank right after the flagged rows. Look at a few; retrain without "
        "them and test the model. review.csv holds them with their values.</p>"
    )
    return h.section("Rows to review", note + table, id="review")


def _detectors(s: dict[str, Any]) -> str:
    from ..detectors import REGISTRY

    info = (s.get("info") or {}).get("detectors") or {}
    if not info:
        return ""
    rows = []
    for name, d in info.items():
        flagged = d.get("flagged")
        expected = d.get("expected_on_clean")
        excess = None if flagged is None or expected is None else flagged - expected
        desc = getattr(REGISTRY.get(name), "description", "")
        rows.append(
            [
                name,
                desc,
                (h.num(flagged), flagged),
                (h.num(expected), expected),
                (h.num(excess), excess),
                (h.pct(d.get("weight"), 0), d.get("weight")),
                "yes" if d.get("gated") else "no",
                (f"{float(d.get('seconds', 0)):.1f} s", d.get("seconds")),
            ]
        )
    help_text = (
        "Each check scores every row on its own; a row is flagged when one check finds it improbable enough. "
        "'Expected on clean' is how many rows that check flags on clean data; a large excess is what made the verdict. "
        "A gated check flags only where its own evidence is strong."
    )
    table = h.table(
        ["check", "what it looks for", "flagged", "expected on clean", "excess", "weight", "gated", "time"],
        rows,
        id="detectors-table",
        numeric=[False, False, True, True, True, True, False, True],
    )
    return h.section("What each check found", table, help=help_text, id="detectors")


def _settings(s: dict[str, Any]) -> str:
    import numpy
    import sklearn

    data = s.get("data", {})
    features = data.get("features") or {}
    feat = (
        ", ".join(f"{k} ({v})" for k, v in features.items())
        if isinstance(features, dict)
        else ", ".join(map(str, features))
    )
    items = {
        "data": data.get("name"),
        "data fingerprint": data.get("fingerprint"),
        "label column": data.get("label"),
        "classes": ", ".join(map(str, data.get("classes", []))),
        "feature columns": feat,
        "ignored columns": ", ".join(f"{k}: {v}" for k, v in (data.get("ignored") or {}).items())
        if isinstance(data.get("ignored"), dict)
        else data.get("ignored"),
        "false-alarm rate (fpr)": s.get("fpr"),
        "flag threshold": s.get("threshold"),
        "seed": s.get("seed"),
        "poisonguard": s.get("version"),
        "report built with": f"Python {platform.python_version()}, numpy {numpy.__version__}, pandas {pd.__version__}, scikit-learn {sklearn.__version__}",
        "rule": (s.get("info") or {}).get("threshold_rule"),
    }
    return h.section("Settings, versions and data fingerprint", h.settings_list(items), id="settings")
