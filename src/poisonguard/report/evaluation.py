"""The evaluation report: where a model is worse, where it lost against the last trusted model, whether it obeys
a trigger, and how far its confidence can be trusted."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ..errors import InputError
from . import html as h


def load(path: str | Path) -> dict[str, Any]:
    """A saved evaluation (``evaluate --json FILE``) as a dict."""
    data = h.read_json(path, "evaluate")
    if not is_evaluation(data):
        raise InputError(f"{path}: not an evaluation (no 'metrics' and 'regressions'); pass an 'evaluate --json' file.")
    return data


def is_evaluation(data: Any) -> bool:
    return isinstance(data, dict) and "metrics" in data and "regressions" in data


def render(result: dict[str, Any], *, title: str | None = None) -> str:
    s = result.get("settings") or {}
    parts = [
        _summary(result),
        _metrics(result),
        _slices(
            result.get("slice_regressions") or [], "Slices worse than the baseline", "slice-regressions", baseline=True
        ),
        _slices(result.get("weak_slices") or [], "Weak slices", "weak-slices", baseline=False),
        _backdoor(result.get("backdoor") or []),
        _calibration(result.get("calibration") or {}),
        h.section(
            "Settings", h.settings_list({k: v for k, v in s.items() if not isinstance(v, dict | list)}), id="settings"
        ),
    ]
    subtitle = f"{s.get('model', 'model')} on {s.get('rows', '?')} rows" + (
        f", against {s['baseline']}" if s.get("baseline") else ""
    )
    return h.page(title or "poisonguard evaluation", subtitle, "".join(parts))


def _value(block: Any) -> float | None:
    if isinstance(block, dict):
        block = block.get("value")
    return None if block is None or (isinstance(block, float) and math.isnan(block)) else float(block)


def _ci(block: Any) -> str:
    if not isinstance(block, dict) or not block.get("ci"):
        return "-"
    lo, hi = block["ci"]
    return "-" if lo is None or hi is None else f"{lo:.3f} to {hi:.3f}"


def _summary(r: dict[str, Any]) -> str:
    sig = [g for g in r.get("regressions") or [] if g.get("significant")]
    verdict = "fail" if sig else "pass"
    words = (
        f"{len(sig)} significant regression(s): the model is worse than "
        + ("the baseline" if (r.get("settings") or {}).get("baseline") else "it should be")
        + " somewhere that matters. Look at the slices and triggers below before shipping it."
        if sig
        else "No significant regression: no metric, slice or trigger shows the model clearly worse than the baseline."
    )
    acc = (r.get("metrics") or {}).get("accuracy") or {}
    items = "".join(
        f"<li>{h.esc(g.get('rule'))}: {h.esc(g.get('metric'))}"
        + (f" in slice {h.esc(g['slice'])}" if g.get("slice") else "")
        + (f" (trigger {h.esc(g['trigger'])})" if g.get("trigger") else "")
        + f": {h.esc(_fmt(g.get('baseline')))} to {h.esc(_fmt(g.get('new')))}, p = {float(g.get('p_value') or 0):.2g}</li>"
        for g in sig[:30]
    )
    notes = "".join(f"<li>{h.esc(n)}</li>" for n in r.get("notes") or [])
    body = (
        f"<div class='verdict'><span class='badge {verdict}' id='verdict'>{verdict}</span>"
        f"<div class='kpis'><div class='kpi'><div class='v'>{h.pct(_value(acc))}</div><div class='k'>accuracy "
        f"({h.esc(_ci(acc))})</div></div><div class='kpi'><div class='v'>{len(sig)}</div><div class='k'>significant "
        f"regressions</div></div></div></div><p>{h.esc(words)}</p>"
        + (f"<ul class='evidence' id='regressions'>{items}</ul>" if items else "")
        + (f"<strong>Notes</strong><ul class='evidence'>{notes}</ul>" if notes else "")
    )
    return h.section("Verdict", body, id="summary")


def _fmt(v: Any) -> str:
    v = _value(v)
    return "-" if v is None else f"{v:.4g}"


def _metrics(r: dict[str, Any]) -> str:
    metrics = r.get("metrics") or {}
    base = r.get("baseline_metrics") or {}
    comp = {g.get("metric"): g for g in r.get("comparison") or []}
    cols = ["metric", "value", "95% interval"] + (["baseline", "change", "p (worse)"] if base else [])
    rows = []
    for name, block in metrics.items():
        row: list[Any] = [name, (_fmt(block), _value(block)), _ci(block)]
        if base:
            g = comp.get(name) or {}
            delta = g.get("delta")
            row += [
                (_fmt(base.get(name)), _value(base.get(name))),
                (_fmt(delta), delta),
                (f"{float(g['p_value']):.2g}" if g.get("p_value") is not None else "-", g.get("p_value")),
            ]
        rows.append(row)
    table = h.table(cols, rows, id="metrics-table", numeric=[False, True, False] + ([True, True, True] if base else []))
    return h.section(
        "Metrics",
        table,
        help="Every metric with a 95% bootstrap interval; against a baseline, the change is paired (both models "
        "scored on the same resampled rows) and tested one-sided: is the new model worse?",
        id="metrics",
    )


def _slices(items: list[dict[str, Any]], title: str, ident: str, *, baseline: bool) -> str:
    if not items:
        text = "None found." if baseline else "No slice is significantly worse than the rest of the rows."
        return h.section(title, f"<p id='{ident}-none'>{h.esc(text)}</p>", id=ident)
    if baseline:
        cols = ["slice", "rows", "baseline", "new", "drop", "q-value"]
        rows = [
            [
                g["slice"],
                (f"{int(g.get('support', 0)):,}", g.get("support")),
                (_fmt(g.get("baseline")), _value(g.get("baseline"))),
                (_fmt(g.get("new")), _value(g.get("new"))),
                (_fmt(g.get("drop")), g.get("drop")),
                (f"{float(g.get('q_value') or 1):.2g}", g.get("q_value")),
            ]
            for g in items
        ]
        help_text = "Segments where the new model is significantly worse than the baseline (exact McNemar tests, Benjamini-Hochberg over every slice tried): where targeted poisoning hides."
    else:
        cols = ["slice", "rows", "accuracy", "rest of the rows", "drop", "q-value"]
        rows = [
            [
                g["slice"],
                (f"{int(g.get('support', 0)):,}", g.get("support")),
                (_fmt(g.get("accuracy")), _value(g.get("accuracy"))),
                (_fmt(g.get("rest_accuracy")), _value(g.get("rest_accuracy"))),
                (_fmt(g.get("drop")), g.get("drop")),
                (f"{float(g.get('q_value') or 1):.2g}", g.get("q_value")),
            ]
            for g in items
        ]
        help_text = "Segments (one or two conditions) where the model is significantly worse than on the rest of the rows, corrected for the number of slices tried."
    return h.section(
        title,
        h.table(cols, rows, id=f"{ident}-table", numeric=[False, True, True, True, True, True]),
        help=help_text,
        id=ident,
    )


def _backdoor(items: list[dict[str, Any]]) -> str:
    if not items:
        return h.section(
            "Backdoor probe", "<p>No trigger was probed (evaluate --triggers summary.json).</p>", id="backdoor"
        )
    rows = [
        [
            g.get("trigger"),
            str(g.get("target")),
            (f"{int(g.get('rows') or 0):,}", g.get("rows")),
            (h.pct(_value(g.get("new"))), _value(g.get("new"))),
            _ci(g.get("new")),
            (h.pct(_value(g.get("baseline"))), _value(g.get("baseline"))),
        ]
        for g in items
    ]
    table = h.table(
        ["trigger", "target", "rows probed", "attack success rate", "95% interval", "baseline"],
        rows,
        id="backdoor-table",
        numeric=[False, False, True, True, False, True],
    )
    return h.section(
        "Backdoor probe",
        table,
        help="Each trigger stamped on test rows of other classes: the share the model then puts in the target class.",
        id="backdoor",
    )


def _calibration(cal: dict[str, Any]) -> str:
    bins = [b for b in cal.get("bins") or [] if b.get("count")]
    if not bins:
        return ""
    W, H, P = 320, 320, 40
    span = W - 2 * P

    def xy(conf: float, acc: float) -> tuple[float, float]:
        return P + span * conf, H - P - span * acc

    parts = [f"<line class='grid' x1='{P}' y1='{H - P}' x2='{W - P}' y2='{P}'/>"]
    for t in (0, 0.5, 1):
        x, y = xy(t, t)
        parts.append(f"<text x='{x:.0f}' y='{H - P + 14}' text-anchor='middle'>{t:g}</text>")
        parts.append(f"<text x='{P - 6}' y='{y + 4:.0f}' text-anchor='end'>{t:g}</text>")
    top = max(int(b["count"]) for b in bins)
    for b in bins:
        x, y = xy(float(b["confidence"]), float(b["accuracy"]))
        r = 3 + 7 * math.sqrt(int(b["count"]) / top)
        parts.append(
            f"<circle class='dot' cx='{x:.1f}' cy='{y:.1f}' r='{r:.1f}'><title>confidence {float(b['confidence']):.2f}, accuracy {float(b['accuracy']):.2f}, {int(b['count'])} rows</title></circle>"
        )
    parts.append(f"<text x='{W / 2}' y='{H - 6}' text-anchor='middle'>predicted confidence</text>")
    parts.append(f"<text transform='rotate(-90)' x='{-H / 2}' y='12' text-anchor='middle'>observed accuracy</text>")
    svg = f"<svg class='chart' style='max-width:420px' viewBox='0 0 {W} {H}' role='img' aria-label='reliability diagram'>{''.join(parts)}</svg>"
    ece = cal.get("ece") or {}
    return h.section(
        "Calibration",
        svg,
        help=f"Expected calibration error {_fmt(ece)} ({_ci(ece)}). A well-calibrated model's dots lie on the diagonal; dot size is the number of rows.",
        id="calibration",
    )
