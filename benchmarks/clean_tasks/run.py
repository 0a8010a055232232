"""Clean tasks benchmark: false alarms on real, unpoisoned data under labels and sizes the other benchmarks never use.

    .venv/bin/python benchmarks/clean_tasks/run.py            # 22 tasks x 3 sizes, one sample seed (about 12 min on 2 cores)
    .venv/bin/python benchmarks/clean_tasks/run.py --seeds 0 1 --sizes 400 2000 8000 32000

The detection benchmark scores five tasks (each data set's own label), and the scan's calibration was measured on
them. Users bring other tasks. Here the same real tables are scanned with another column as the label (the former
label becomes a feature): a sex or marital status decided by a relationship column, a contact type fixed by the
month of the campaign, a job title the other columns hardly predict, a class held by one row in a thousand;
each data set's own label with its rarer class cut to 1% or 2% of the rows (the imbalance of fraud or default data);
and each is scanned on random samples of several sizes. No row is poisoned, so every flag is a false alarm: the
target is the scan's own (verdict not 'poisoned', flagged fraction at most twice the configured 1% rate).

Raw records go to ``benchmarks/results/clean-tasks.jsonl``, the summary to ``benchmarks/results/clean-tasks.md``.
The data sets are read from ``../shared/datasets`` (or ``$POISONGUARD_DATASETS``, for a git worktree).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from datasets import LOADERS, SHARED, available  # noqa: E402

import poisonguard as pg  # noqa: E402

RESULTS = HERE.parent / "results"
FPR = 0.01

# (data set, label column) or (data set, label column, share): the rarest class sampled down to that share of rows
TASKS: list[tuple[str, str] | tuple[str, str, float]] = [
    ("adult", "label"),
    ("adult", "sex"),
    ("adult", "race"),
    ("adult", "relationship"),
    ("adult", "marital_status"),
    ("adult", "workclass"),
    ("adult", "education"),  # education_num is its code: the label is a function of one column
    ("bank_marketing", "label"),
    ("bank_marketing", "marital"),
    ("bank_marketing", "job"),
    ("bank_marketing", "contact"),
    ("bank_marketing", "default"),
    ("bank_marketing", "education"),
    ("german_credit", "label"),
    ("german_credit", "a1"),
    ("german_credit", "a3"),
    ("spambase", "label"),
    ("adult", "label", 0.01),
    ("bank_marketing", "label", 0.01),
    ("bank_marketing", "label", 0.02),
    ("german_credit", "label", 0.01),
    ("spambase", "label", 0.01),
]
SIZES = [400, 2000, 8000]


def task_frame(name: str, label: str, n: int, seed: int, rare: float | None = None) -> pd.DataFrame | None:
    """``n`` random rows of the table with ``label`` as the label (rows missing it dropped); None if too few.
    ``rare``: the label's rarest class makes up that share of the rows (at least 2 rows), the rest drawn from the
    other classes."""
    df = LOADERS[name]()
    if label != "label":
        df = df.rename(columns={"label": "outcome"})
    df = df.dropna(subset=[label]).reset_index(drop=True)
    if rare is not None:
        least = df[label].value_counts().index[-1]
        k = max(2, round(rare * n))
        few, rest = df[df[label] == least], df[df[label] != least]
        if k > len(few) or n - k > len(rest):
            return None
        parts = [few.sample(k, random_state=seed), rest.sample(n - k, random_state=seed)]
        return pd.concat(parts).sample(frac=1, random_state=seed).reset_index(drop=True)
    if n > len(df):
        return None
    return df.sample(n, random_state=seed).reset_index(drop=True) if n < len(df) else df


def run_one(name: str, label: str, n: int, seed: int, rare: float | None = None) -> dict[str, Any] | None:
    df = task_frame(name, label, n, seed, rare)
    if df is None:
        return None
    t0 = time.perf_counter()
    result = pg.scan(df, label=label, seed=seed, fpr=FPR)
    rows = result.rows
    by = rows.loc[rows["flagged"], "reasons"].str.split(";").str[0].str.slice(0, 60).value_counts().head(3)
    found = result.info.get("detectors", {}).get("trigger_pattern", {})
    return {
        "dataset": name,
        "label": label,
        "rare": rare,
        "rows": len(df),
        "seed": seed,
        "classes": int(df[label].nunique()),
        "smallest_class": round(float(df[label].value_counts(normalize=True).min()), 4),
        "verdict": result.verdict,
        "flagged_fraction": round(float(result.summary["flagged_fraction"]), 5),
        "evidence": result.summary["evidence"][:3],
        "top_reasons": {str(k): int(v) for k, v in by.items()},
        "triggers": len(result.summary["triggers"]),
        "rules": len(found.get("rules", [])),
        "seconds": round(time.perf_counter() - t0, 1),
    }


def summarise(records: list[dict[str, Any]], command: str) -> str:
    n_poisoned = sum(r["verdict"] == "poisoned" for r in records)
    over = sum(r["flagged_fraction"] > 2 * FPR for r in records)
    lines = [
        "# Clean tasks: false alarms on real, unpoisoned data",
        "",
        f"Command: `{command}`. Machine: {platform.machine()}, Python {platform.python_version()}, "
        f"poisonguard {pg.__version__}. Every row is genuine: each flag is a false alarm. Target: verdict not "
        f"'poisoned' and at most {2 * FPR:.0%} flagged (twice the configured {FPR:.0%}).",
        "",
        f"**{len(records)} scans: {n_poisoned} called 'poisoned', {over} above {2 * FPR:.0%} flagged.**",
        "",
        "| data set | label | classes (smallest share) | rows | seed | verdict | flagged | rules seen | first evidence |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        ev = r["evidence"][0] if r["evidence"] else ""
        label = r["label"] + (f" (rarest cut to {r['rare']:.0%})" if r.get("rare") else "")
        lines.append(
            f"| {r['dataset']} | {label} | {r['classes']} ({r['smallest_class']:.2%}) | {r['rows']} | {r['seed']} "
            f"| {r['verdict']} | {r['flagged_fraction']:.2%} | {r['rules']} | {ev.replace('|', '/')} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="*", type=int, default=SIZES)
    ap.add_argument("--seeds", nargs="*", type=int, default=[0])
    ap.add_argument("--tag", default=None, help="suffix for the result files (clean-tasks-<tag>.md)")
    ap.add_argument("--rare-only", action="store_true", help="only the tasks whose rarest class is cut down")
    a = ap.parse_args()
    if not available():
        print(
            f"error: no data sets at {SHARED}; set POISONGUARD_DATASETS to the shared datasets folder", file=sys.stderr
        )
        sys.exit(2)
    warnings.filterwarnings("ignore")
    stem = "clean-tasks" + (f"-{a.tag}" if a.tag else "")
    command = "python benchmarks/clean_tasks/run.py" + "".join(
        f" {flag} {' '.join(map(str, v))}" for flag, v in (("--sizes", a.sizes), ("--seeds", a.seeds)) if v
    )
    command += " --rare-only" if a.rare_only else ""
    tasks = [t for t in TASKS if len(t) == 3] if a.rare_only else TASKS
    records = []
    RESULTS.mkdir(exist_ok=True)
    with open(RESULTS / f"{stem}.jsonl", "w") as out:
        for name, label, *rare in tasks:
            for n in a.sizes:
                for seed in a.seeds:
                    rec = run_one(name, label, n, seed, *rare)
                    if rec is None:
                        continue
                    records.append(rec)
                    out.write(json.dumps(rec) + "\n")
                    out.flush()
                    print(
                        f"{name} {label}{f' rare {rare[0]}' if rare else ''} {n} seed {seed}: {rec['verdict']} {rec['flagged_fraction']:.2%} "
                        f"({rec['seconds']} s)",
                        flush=True,
                    )
    (RESULTS / f"{stem}.md").write_text(summarise(records, command))
    print(f"wrote {RESULTS / f'{stem}.md'}")


if __name__ == "__main__":
    main()
