"""Detection benchmark: every attack on real data, the scan against the tools users would otherwise pick.

    .venv/bin/python benchmarks/detection/run.py --quick          # <= 10 minutes on 2 cores
    .venv/bin/python benchmarks/detection/run.py                  # the full matrix (hours)

For each data set, attack, rate and seed the training split (70%) is poisoned, and every detector scores the
poisoned training rows: the scan, cleanlab's ``find_label_issues`` on 5-fold out-of-fold HistGradientBoosting
probabilities (optional ``bench`` extra), an IsolationForest, kNN label disagreement (10 neighbours), and the
oracle (out-of-fold boosting fitted on the clean rows only: the practical ceiling). Also: the model's clean
accuracy and backdoor ASR when trained on the poisoned rows, on the rows the scan keeps, and on the clean rows.
Unpoisoned data gets the scan's flagged fraction and verdict.

Raw records go to ``benchmarks/results/detection.jsonl``; the summary (mean and std over seeds per data set and
attack family) to ``benchmarks/results/detection.md``.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier, IsolationForest
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve
from sklearn.model_selection import StratifiedKFold

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from datasets import LOADERS  # noqa: E402

import poisonguard as pg  # noqa: E402
from poisonguard.attacks import ATTACKS  # noqa: E402
from poisonguard.context import knn  # noqa: E402
from poisonguard.errors import PoisonguardError  # noqa: E402
from poisonguard.features import FeatureEncoder  # noqa: E402
from poisonguard.redteam import _asr, _evaluate, split_and_baseline  # noqa: E402

RESULTS = HERE.parent / "results"


def _commit() -> str:
    import subprocess

    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE)
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


COMMIT = _commit()
QUICK = {"datasets": ["german_credit", "spambase"], "rates": [0.1], "seeds": [0]}
FULL = {
    "datasets": [
        "adult",
        "german_credit",
        "spambase",
        "bank_marketing",
        "bank_marketing_rare",
        "sms_spam",
        "mnist",
        "fashion_mnist",
    ],
    "rates": [0.01, 0.05, 0.1, 0.2],
    "seeds": [0, 1, 2],
}
FAMILY = {
    "label_flip": "flip",
    "class_targeted_flip": "flip",
    "segment_targeted_flip": "flip",
    "boundary_flip": "flip",
    "confident_flip": "flip",
    "backdoor": "backdoor",
    "inbounds_backdoor": "backdoor",
    "text_trigger": "backdoor",
    "clean_label_backdoor": "clean-label",
    "out_of_distribution": "ood",
    "duplicate_flood": "flood",
    "adaptive": "adaptive",
}


def tpr_at(mask: np.ndarray, score: np.ndarray, fpr: float) -> float:
    f, t, _ = roc_curve(mask, score)
    return float(np.interp(fpr, f, t))


def oof_proba(
    X: np.ndarray, y: np.ndarray, cat: np.ndarray, seed: int, train_mask: np.ndarray | None = None
) -> np.ndarray:
    n_classes = int(y.max()) + 1
    P = np.zeros((len(y), n_classes))
    for tr, te in StratifiedKFold(5, shuffle=True, random_state=seed).split(X, y):
        if train_mask is not None:
            tr = tr[train_mask[tr]]
        m = HistGradientBoostingClassifier(categorical_features=cat if cat.any() else None, random_state=seed)
        m.fit(X[tr], y[tr])
        if len(m.classes_) == 1:  # a fold whose training rows hold one class (a class mostly flipped away)
            P[te, m.classes_[0]] = 1.0
        else:
            P[np.ix_(te, m.classes_)] = m.predict_proba(X[te])
    return P


def comparators(pois: pg.Dataset, mask: np.ndarray, clean_y: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """Scores (higher = more suspicious) from the tools a user would otherwise pick, and the oracle."""
    enc = FeatureEncoder.fit(pois.frame, pois.columns, seed=seed)
    X, M = enc.tree(pois.frame), enc.metric(pois.frame)
    cat = np.asarray(enc.tree_categorical, dtype=bool)
    y = pois.y
    out: dict[str, np.ndarray] = {}
    P = oof_proba(X, y, cat, seed)
    try:
        from cleanlab.filter import find_label_issues
        from cleanlab.rank import get_label_quality_scores

        out["cleanlab"] = 1.0 - get_label_quality_scores(y, P)
        out["cleanlab_flags"] = find_label_issues(y, P).astype(float)
    except ImportError:
        pass
    out["isolation_forest"] = -IsolationForest(random_state=seed).fit(M).score_samples(M)
    nb = knn(M, 10, seed=seed)
    out["knn_disagreement"] = (y[np.clip(nb.idx, 0, None)] != y[:, None]).mean(axis=1)
    # oracle: boosting fitted on the clean rows (their true labels), scoring 1 - p(observed label)
    Po = oof_proba(X, np.where(mask, y, clean_y), cat, seed, train_mask=~mask)
    out["oracle"] = 1.0 - Po[np.arange(len(y)), y]
    return out


def metrics(mask: np.ndarray, score: np.ndarray, flags: np.ndarray | None = None) -> dict[str, float | None]:
    both = 0 < mask.sum() < len(mask)
    res: dict[str, float | None] = {
        "auroc": float(roc_auc_score(mask, score)) if both else None,
        "ap": float(average_precision_score(mask, score)) if both else None,
        "tpr_at_1pct_fpr": tpr_at(mask, score, 0.01) if both else None,
        "tpr_at_5pct_fpr": tpr_at(mask, score, 0.05) if both else None,
    }
    if flags is not None:
        f = flags.astype(bool)
        res["flag_precision"] = float(mask[f].mean()) if f.any() else None
        res["flag_recall"] = float(f[mask].mean()) if mask.any() else None
        res["flagged_fraction"] = float(f.mean())
    return res


def run_one(name: str, sim: Any, attack: str, rate: float, seed: int) -> dict[str, Any]:
    t = time.perf_counter()
    run = sim.run(attack, rate, seed)
    scan_s = time.perf_counter() - t
    pois, mask = run.poisoned, run.mask
    # true labels of the poisoned table's rows (appended rows keep the attacker's label: they are poison anyway)
    clean_y = pois.y.copy()
    n0 = sim.train.n_rows
    clean_y[:n0] = pd.Index(pois.classes.astype(str)).get_indexer(sim.train.classes.astype(str)[sim.train.y])
    rec: dict[str, Any] = {"dataset": name, **{k: v for k, v in run.record.items() if k != "recall_change_per_class"}}
    rec["family"] = FAMILY.get(attack, attack)
    rec["scan"] = metrics(mask, run.scan.rows["score"].to_numpy(), run.scan.rows["flagged"].to_numpy())
    planted = set(run.meta.get("trigger") or {})
    found = [set(t.conditions) for t in run.scan.triggers]
    rec["triggers_found"] = len(found)
    # the planted trigger is recovered when a discovered trigger uses only (and at least two of) its columns
    rec["trigger_recovered"] = bool(planted) and any(len(f & planted) >= 2 and f <= planted for f in found)
    if run.meta.get("token"):  # a word trigger: recovered when a discovered word trigger is that word
        rec["planted_token"] = str(run.meta["token"])
        rec["trigger_recovered"] = any(
            t.kind == "token" and str(run.meta["token"]).lower() in map(str.lower, map(str, t.conditions.values()))
            for t in run.scan.triggers
        )
    comp = comparators(pois, mask, clean_y, seed)
    flags = comp.pop("cleanlab_flags", None)
    for k, v in comp.items():
        rec[k] = metrics(mask, v, flags if k == "cleanlab" else None)
    # accuracy and ASR of the model trained on the clean rows only (the oracle's sanitizing)
    keep = ~mask
    y_p = sim.recode(pois)
    m_o = sim.fit(pois.frame.loc[keep], y_p[keep])
    ev_o = _evaluate(m_o, sim.encoder.tree(sim.test.frame), sim.recode(sim.test), len(sim.classes))
    rec["oracle_accuracy"] = ev_o["accuracy"]
    rec["oracle_asr"] = _asr(m_o, sim.encoder, sim.test, sim.recode(sim.test), sim.classes, run.meta)
    rec["scan_seconds"] = round(scan_s, 2)
    rec["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return rec


def unpoisoned(name: str, df: pd.DataFrame, seed: int) -> dict[str, Any]:
    t = time.perf_counter()
    r = pg.scan(df, label="label", seed=seed)
    return {
        "dataset": name,
        "attack": "none",
        "family": "none",
        "rate": 0.0,
        "seed": seed,
        "flagged_fraction": r.summary["flagged_fraction"],
        "verdict": r.verdict,
        "scan_seconds": round(time.perf_counter() - t, 2),
    }


TARGETS = {  # scan AUROC target per family at >= 5% poison (flips: within 0.01 of the oracle)
    "backdoor": 0.97,
    "ood": 0.97,
    "flood": 0.97,
    "clean-label": 0.90,
}


def family_table(df: pd.DataFrame) -> list[str]:
    """Per data set and attack family at >= 5% poison: scan, oracle, best peer, and the issue's target."""
    d = df[df["rate"] >= 0.05].copy()
    peers = [c for c in ("cleanlab_auroc", "isolation_forest_auroc", "knn_disagreement_auroc") if c in d]
    d["best_peer"] = d[peers].max(axis=1) if peers else np.nan
    g = d.groupby(["dataset", "family"])
    agg = g.agg(
        scan=("scan_auroc", "mean"),
        scan_sd=("scan_auroc", "std"),
        oracle=("oracle_auroc", "mean"),
        peer=("best_peer", "mean"),
        tpr1=("scan_tpr1", "mean"),
        asr_sanitized=("sanitized_asr", "mean"),
        asr_oracle=("oracle_asr", "mean"),
        recovered=("trigger_recovered", "mean"),
        runs=("scan_auroc", "size"),
    ).reset_index()
    lines = [
        "",
        "## Per attack family (rates >= 5%)",
        "",
        "Target: flips within 0.01 of the oracle; backdoor, out-of-distribution and flood >= 0.97; clean-label "
        ">= 0.90; and at least the best peer. `best peer` is averaged per run (the best of the three peers in "
        "each run).",
        "",
        "`ASR sanitized (oracle)`: backdoor success on the model retrained without the flagged rows, and on the "
        "model trained on the clean rows only; `trigger found`: share of runs where a discovered trigger uses "
        "only (and at least two of) the planted trigger's columns.",
        "",
        "| dataset | family | runs | scan | oracle | best peer | scan TPR@1%FPR | ASR sanitized (oracle) | "
        "trigger found | target met |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for _, r in agg.iterrows():
        if r["family"] == "flip":
            met = r["scan"] >= r["oracle"] - 0.01
        elif r["family"] in TARGETS:
            met = r["scan"] >= TARGETS[r["family"]]
        else:
            met = None
        met = None if met is None else bool(met and r["scan"] >= r["peer"] - 1e-9)
        asr = f"{r['asr_sanitized']:.2f} ({r['asr_oracle']:.2f})" if r["asr_sanitized"] == r["asr_sanitized"] else "-"
        known = r["family"] in ("backdoor", "clean-label") and r["recovered"] == r["recovered"]
        rec = f"{r['recovered']:.0%}" if known else "-"
        sd = r["scan_sd"] if r["scan_sd"] == r["scan_sd"] else 0.0
        lines.append(
            f"| {r['dataset']} | {r['family']} | {r['runs']} | {r['scan']:.3f} ± {sd:.3f} | {r['oracle']:.3f} | "
            f"{r['peer']:.3f} | {r['tpr1']:.2f} | {asr} | {rec} | {'-' if met is None else ('yes' if met else 'no')} |"
        )
    return lines


def summarise(records: list[dict[str, Any]], out: Path, command: str) -> None:
    rows = []
    for r in records:
        if r["attack"] == "none" or r.get("skipped"):
            continue
        family = FAMILY.get(r["attack"], r["family"])
        row = {"dataset": r["dataset"], "family": family, "attack": r["attack"], "rate": r["rate"]}
        for tool in ("scan", "oracle", "cleanlab", "isolation_forest", "knn_disagreement"):
            if isinstance(r.get(tool), dict):
                row[f"{tool}_auroc"] = r[tool]["auroc"]
        row["scan_tpr1"] = r["scan"]["tpr_at_1pct_fpr"]
        row["scan_flag_prec"] = r["scan"].get("flag_precision")
        row["scan_flag_rec"] = r["scan"].get("flag_recall")
        row["asr"] = r["asr"]
        row["sanitized_asr"] = r["sanitized_asr"]
        row["oracle_asr"] = r.get("oracle_asr")
        # word triggers were not compared before records carried the planted word
        known = r["attack"] != "text_trigger" or "planted_token" in r
        row["trigger_recovered"] = r.get("trigger_recovered") if known else np.nan
        row["acc_sanitized_minus_oracle"] = r["sanitized_accuracy"] - r["oracle_accuracy"]
        rows.append(row)
    df = pd.DataFrame(rows)
    lines = [
        "# Detection benchmark",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {platform.machine()}, Python {platform.python_version()}, poisonguard {pg.__version__}. "
        "AUROC per tool on the poisoned training rows; mean ± std over seeds (std 0 with one seed).",
        "The oracle is out-of-fold boosting fitted on the clean rows only (the practical ceiling for label "
        "attacks). `best peer` is the best of cleanlab, IsolationForest and kNN disagreement.",
        "",
    ]
    commits = pd.Series([r.get("commit", "?") for r in records]).value_counts()
    if len(commits) > 1:
        lines += [
            "Records by commit (a rerun after a change replaces its cells, `--merge-from TAG`): "
            + ", ".join(f"{c} {n}" for c, n in commits.items())
            + ".",
            "",
        ]
    if not df.empty:
        tools = [c for c in df.columns if c.endswith("_auroc")]
        g = df.groupby(["dataset", "family", "attack", "rate"])
        mean, std = (
            g[
                [
                    *tools,
                    "scan_tpr1",
                    "scan_flag_prec",
                    "scan_flag_rec",
                    "asr",
                    "sanitized_asr",
                    "acc_sanitized_minus_oracle",
                ]
            ].mean(),
            g[tools].std().fillna(0),
        )
        head = (
            ["dataset", "attack", "rate"]
            + [t.replace("_auroc", "") for t in tools]
            + ["best peer", "scan TPR@1%FPR", "flag prec", "flag rec", "ASR", "ASR sanitized", "acc sanit.-oracle"]
        )
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "---|" * len(head))
        for key, m in mean.iterrows():
            s = std.loc[key]
            peers = [m.get(f"{p}_auroc") for p in ("cleanlab", "isolation_forest", "knn_disagreement")]
            peers = [p for p in peers if p == p and p is not None]
            cells = [key[0], key[2], f"{key[3]:.0%}"]
            cells += [f"{m[t]:.3f} ± {s[t]:.3f}" if m[t] == m[t] else "-" for t in tools]
            cells.append(f"{max(peers):.3f}" if peers else "-")
            for c in ("scan_tpr1", "scan_flag_prec", "scan_flag_rec", "asr", "sanitized_asr"):
                cells.append(f"{m[c]:.2f}" if m[c] == m[c] else "-")
            cells.append(f"{100 * m['acc_sanitized_minus_oracle']:+.1f} pt")
            lines.append("| " + " | ".join(cells) + " |")
    if not df.empty:
        lines += family_table(df)
    clean = [r for r in records if r["attack"] == "none"]
    if clean:
        worst = max(r["flagged_fraction"] for r in clean)
        lines += [
            "",
            "## Unpoisoned data",
            "",
            f"Target: flagged fraction <= 2x the configured FPR (2% at the default 1%). Largest seen: {worst:.2%}.",
            "",
            "| dataset | seed | flagged fraction | verdict |",
            "|---|---|---|---|",
        ]
        lines += [f"| {r['dataset']} | {r['seed']} | {r['flagged_fraction']:.2%} | {r['verdict']} |" for r in clean]
    skipped = sorted({(r["dataset"], r["attack"], r["skipped"]) for r in records if r.get("skipped")})
    if skipped:
        lines += ["", "## Skipped", ""] + [f"- {d} / {a}: {why}" for d, a, why in skipped]
    out.write_text("\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="two small data sets, one rate, one seed (<= 10 min)")
    ap.add_argument("--datasets", nargs="*")
    ap.add_argument("--attacks", nargs="*")
    ap.add_argument("--rates", nargs="*", type=float)
    ap.add_argument("--seeds", nargs="*", type=int)
    ap.add_argument("--tag", default=None, help="suffix for the result files (detection-<tag>.md)")
    ap.add_argument("--resume", action="store_true", help="keep the records already in the JSONL file, run the rest")
    ap.add_argument("--summarise", action="store_true", help="only rewrite the summary from the JSONL file")
    ap.add_argument(
        "--merge-from",
        metavar="TAG",
        help="replace the records of the same (data set, attack, rate, seed) with those of detection-TAG.jsonl "
        "(a rerun after a change), then rewrite the summary",
    )
    a = ap.parse_args()
    plan = dict(QUICK if a.quick else FULL)
    for key in ("datasets", "rates", "seeds"):
        if getattr(a, key):
            plan[key] = getattr(a, key)
    attacks = a.attacks or sorted(ATTACKS)
    tag = a.tag or ("quick" if a.quick else None)
    stem = f"detection-{tag}" if tag else "detection"
    RESULTS.mkdir(exist_ok=True)
    jsonl, md = RESULTS / f"{stem}.jsonl", RESULTS / f"{stem}.md"
    command = "python benchmarks/detection/run.py " + " ".join(sys.argv[1:])
    if a.merge_from:
        key = lambda r: (r["dataset"], r["attack"], float(r["rate"]), int(r["seed"]))  # noqa: E731
        recs = {key(r): r for r in map(json.loads, filter(str.strip, jsonl.read_text().splitlines()))}
        new = RESULTS / f"detection-{a.merge_from}.jsonl"
        if not new.exists() or not jsonl.exists():
            print(f"error: --merge-from needs {jsonl} and {new}; run with --tag {a.merge_from} first", file=sys.stderr)
            sys.exit(2)
        recs.update({key(r): r for r in map(json.loads, filter(str.strip, new.read_text().splitlines()))})
        jsonl.write_text("".join(json.dumps(r, default=float) + "\n" for r in recs.values()))
        a.summarise = True
    if a.summarise:
        recs = [json.loads(line) for line in jsonl.read_text().splitlines() if line.strip()]
        summarise(recs, md, command.replace(" --summarise", ""))
        print(f"wrote {md}")
        return
    records: list[dict[str, Any]] = []
    done: set[tuple[str, str, float, int]] = set()
    if a.resume and jsonl.exists():
        records = [json.loads(line) for line in jsonl.read_text().splitlines() if line.strip()]
        done = {(r["dataset"], r["attack"], float(r["rate"]), int(r["seed"])) for r in records}
    warnings.simplefilter("ignore")
    with jsonl.open("a" if a.resume else "w") as fh:

        def keep(rec: dict[str, Any]) -> None:
            rec["commit"] = COMMIT
            records.append(rec)
            fh.write(json.dumps(rec, default=float) + "\n")
            fh.flush()

        for name in plan["datasets"]:
            df = LOADERS[name]()
            ds = pg.load_dataset(df, label="label")
            for seed in plan["seeds"]:
                if (name, "none", 0.0, seed) not in done:
                    keep(unpoisoned(name, df, seed))
                sim = None
                for attack in attacks:
                    for rate in plan["rates"]:
                        if (name, attack, float(rate), seed) in done:
                            continue
                        sim = sim or split_and_baseline(ds, seed=seed, test_size=0.3, model=None, fpr=0.01)
                        t = time.perf_counter()
                        try:
                            rec = run_one(name, sim, attack, rate, seed)
                        except PoisonguardError as exc:  # an attack that does not apply, or leaves one class
                            rec = {"dataset": name, "attack": attack, "rate": rate, "seed": seed, "skipped": str(exc)}
                        keep(rec)
                        auc = rec.get("scan", {}).get("auroc") if isinstance(rec.get("scan"), dict) else None
                        print(
                            f"{name} {attack} {rate} seed {seed}: scan AUROC {auc} ({time.perf_counter() - t:.0f} s)",
                            flush=True,
                        )
    summarise([r for r in records if not r.get("skipped")] + [r for r in records if r.get("skipped")], md, command)
    print(f"wrote {jsonl} and {md}")


if __name__ == "__main__":
    main()
