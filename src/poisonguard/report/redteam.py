"""The red-team report: what each attack would do to this model, and whether the scan would catch it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import InputError
from . import html as h


def load(path: str | Path) -> dict[str, Any]:
    """A saved red-team result (``redteam --json FILE``) as a dict."""
    return check(h.read_json(path, "redteam"), path)


def check(data: Any, path: str | Path) -> dict[str, Any]:
    if not isinstance(data, dict) or "runs" not in data or "baseline" not in data:
        raise InputError(f"{path}: not a red-team result (no 'runs' and 'baseline'); pass a 'redteam --json' file.")
    return data


def render(result: dict[str, Any], *, title: str | None = None) -> str:
    runs = pd.DataFrame.from_records(result.get("runs") or [])
    settings = result.get("settings") or {}
    base = result.get("baseline") or {}
    name = str(settings.get("data") or result.get("name") or "data")
    parts = [
        _overview(runs, result, base),
        _damage(runs),
        _detection(runs),
        _budget(result),
        _runs_table(runs),
        _settings(settings, result),
    ]
    return h.page(title or "poisonguard red team", f"{name} · {len(runs)} simulated attacks", "".join(parts))


def _overview(runs: pd.DataFrame, result: dict[str, Any], base: dict[str, Any]) -> str:
    worst = "-"
    caught = "-"
    if len(runs):
        idx = runs["damage"].astype(float).idxmax()
        worst = f"{runs.loc[idx, 'attack']} at {h.pct(runs.loc[idx, 'rate'], 0)}: {h.pct(runs.loc[idx, 'damage'])}"
        rec = pd.to_numeric(runs["flag_recall"], errors="coerce")
        caught = h.pct(rec.mean()) if rec.notna().any() else "-"
    kpis = [
        ("clean model accuracy", h.pct(base.get("accuracy"))),
        ("worst damage", worst),
        ("mean share of poison caught", caught),
        ("attacks skipped", str(len(result.get("skipped") or {}))),
    ]
    kpi_html = "".join(
        f"<div class='kpi'><div class='v'>{h.esc(v)}</div><div class='k'>{h.esc(k)}</div></div>" for k, v in kpis
    )
    text = (
        "Each attack poisons a copy of the training split at several rates, trains the model on it and measures "
        "the damage on the untouched test split: the accuracy lost, or for a backdoor the share of test rows the "
        "trigger turns into the attacker's class (attack success rate). The scan then runs on the poisoned copy: "
        "how much of the poison it flags, and what removing the flagged rows restores."
    )
    skipped = "".join(
        f"<li><strong>{h.esc(k)}</strong>: {h.esc(v)}</li>" for k, v in (result.get("skipped") or {}).items()
    )
    return h.section(
        "Summary",
        f"<div class='kpis'>{kpi_html}</div><p>{h.esc(text)}</p>"
        + (f"<strong>Skipped</strong><ul>{skipped}</ul>" if skipped else ""),
        id="summary",
    )


def _series(runs: pd.DataFrame, column: str, transform: Any = None) -> dict[str, tuple[list[float], list[float]]]:
    out: dict[str, tuple[list[float], list[float]]] = {}
    for attack, g in runs.sort_values("rate").groupby("attack", sort=True):
        vals = pd.to_numeric(g[column], errors="coerce")
        if vals.notna().any():
            y = vals.to_numpy(float)
            out[str(attack)] = (g["rate"].astype(float).tolist(), (transform(y) if transform else y).tolist())
    return out


def _damage(runs: pd.DataFrame) -> str:
    if runs.empty:
        return h.section("Damage", "<p>No attack ran.</p>", id="damage")
    acc = h.line_chart(
        _series(runs, "accuracy_change", lambda y: -y),
        x_label="poison rate (share of training rows)",
        y_label="accuracy lost",
        label="accuracy lost by poison rate",
    )
    asr_series = _series(runs, "asr")
    asr = (
        h.line_chart(
            asr_series, x_label="poison rate", y_label="attack success rate", label="backdoor success by poison rate"
        )
        if asr_series
        else "<p class='help'>No backdoor attack ran.</p>"
    )
    body = f"<div class='grid2'><div><h3>Accuracy lost on clean test rows</h3>{acc}</div><div><h3>Backdoor success rate</h3>{asr}</div></div>"
    return h.section(
        "Damage against poison rate",
        body,
        help="How much each attack hurts the model as the poisoned share of the training data grows. Backdoors barely "
        "move accuracy; their damage is the success rate of the trigger.",
        id="damage",
    )


def _detection(runs: pd.DataFrame) -> str:
    if runs.empty:
        return ""
    recall = h.line_chart(
        _series(runs, "flag_recall"), x_label="poison rate", y_label="poisoned rows flagged", label="detection recall"
    )
    auroc = h.line_chart(
        _series(runs, "detection_auroc"),
        x_label="poison rate",
        y_label="AUROC",
        y_percent=False,
        reference=0.5,
        label="detection AUROC",
    )
    body = f"<div class='grid2'><div><h3>Share of the poison flagged</h3>{recall}</div><div><h3>Ranking quality (AUROC)</h3>{auroc}</div></div>"
    return h.section(
        "Detection recall",
        body,
        help="Recall: the share of poisoned rows the scan flags at its false-alarm rate. AUROC: the chance that a "
        "poisoned row scores above a clean one (0.5 = no better than chance, dashed).",
        id="detection",
    )


def _budget(result: dict[str, Any]) -> str:
    budget = result.get("budget") or []
    threshold = (result.get("settings") or {}).get("damage_threshold")
    rows = [
        [
            b["attack"],
            (
                h.pct(b.get("budget"), 0) if b.get("budget") is not None else "above every rate tried",
                b.get("budget") if b.get("budget") is not None else 9,
            ),
            (h.pct(b.get("max_damage")), b.get("max_damage")),
        ]
        for b in budget
    ]
    table = h.table(["attack", "poison budget", "worst damage"], rows, id="budget-table", numeric=[False, True, True])
    return h.section(
        "Poison budget",
        table,
        help=f"The smallest poisoned share of the training rows at which an attack does at least {h.pct(threshold)} damage. "
        "A small budget means a cheap attack: guard that data channel first.",
        id="budget",
    )


def _runs_table(runs: pd.DataFrame) -> str:
    if runs.empty:
        return ""
    cols = [
        ("attack", "attack", None),
        ("rate", "rate", "pct"),
        ("accuracy_change", "accuracy change", "pp"),
        ("asr", "ASR", "pct"),
        ("detection_auroc", "AUROC", "num"),
        ("flag_recall", "flag recall", "pct"),
        ("flag_precision", "flag precision", "pct"),
        ("verdict", "verdict", None),
        ("sanitized_accuracy", "accuracy after sanitizing", "pct"),
        ("sanitized_asr", "ASR after sanitizing", "pct"),
    ]
    cols = [c for c in cols if c[0] in runs.columns]
    out_rows = []
    for rec in runs.to_dict("records"):
        row = []
        for key, _, kind in cols:
            v = rec.get(key)
            if kind == "pct":
                row.append((h.pct(v), v))
            elif kind == "pp":
                row.append((f"{100 * float(v):+.1f} pt" if v is not None else "-", v))
            elif kind == "num":
                row.append((h.num(v), v))
            else:
                row.append(v)
        out_rows.append(row)
    table = h.table([c[1] for c in cols], out_rows, id="runs-table", numeric=[c[2] is not None for c in cols])
    return h.section("Every run", h.searchable(table, "runs-table", "filter (attack name, verdict...)"), id="runs")


def _settings(settings: dict[str, Any], result: dict[str, Any]) -> str:
    items = {k: v for k, v in settings.items() if k != "notes"}
    base = result.get("baseline") or {}
    items["clean model accuracy"] = h.pct(base.get("accuracy"))
    items["clean model macro F1"] = h.num(base.get("f1_macro"))
    for note in settings.get("notes") or []:
        items.setdefault("input notes", "")
        items["input notes"] = (items["input notes"] + " " + str(note)).strip()
    return h.section("Settings", h.settings_list(items), id="settings")
