"""Random label flips on the shared real data sets: scan AUROC against the oracle, and the clean-data verdict.

    .venv/bin/python benchmarks/oracle_check.py [--seeds 3] [--rate 0.05] [--out benchmarks/results/oracle_check.md]

The oracle is 5-fold out-of-fold HistGradientBoosting fitted on the clean rows (true labels), scoring
1 - p(observed label): what a detector could reach if it knew which rows were clean.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np
import sklearn
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import oracle_scores, random_flip
from datasets import LOADERS

import poisonguard as pg

DATASETS = ("adult", "german_credit", "spambase", "bank_marketing", "sms_spam", "mnist")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--rate", type=float, default=0.05)
    ap.add_argument("--datasets", nargs="*", default=list(DATASETS))
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    lines = [
        "| dataset | rows | clean verdict | clean flagged | scan AUROC (mean ± sd) | oracle AUROC | gap | "
        "flag precision | flag recall | poisoned verdicts | scan s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in a.datasets:
        df = LOADERS[name]()
        t = time.perf_counter()
        clean = pg.scan(df, label="label", seed=0)
        t_clean = time.perf_counter() - t
        aucs, oracles, precs, recs, verdicts = [], [], [], [], []
        for seed in range(a.seeds):
            pois, mask = random_flip(df, a.rate, seed)
            r = pg.scan(pois, label="label", seed=seed)
            aucs.append(roc_auc_score(mask, r.rows["score"]))
            oracles.append(roc_auc_score(mask, oracle_scores(pois, df, mask, seed=seed)))
            fl = r.rows["flagged"].to_numpy()
            precs.append(mask[fl].mean() if fl.any() else float("nan"))
            recs.append(fl[mask].mean())
            verdicts.append(r.verdict)
        gap = np.mean(oracles) - np.mean(aucs)
        row = (
            f"| {name} | {len(df)} | {clean.verdict} | {clean.summary['flagged_fraction']:.2%} | "
            f"{np.mean(aucs):.4f} ± {np.std(aucs):.4f} | {np.mean(oracles):.4f} | {gap:+.4f} | "
            f"{np.nanmean(precs):.2f} | {np.mean(recs):.2f} | {', '.join(verdicts)} | {t_clean:.1f} |"
        )
        print(row, flush=True)
        lines.append(row)
        if a.out:  # written after every data set, so a long run leaves what it has measured
            Path(a.out).write_text(_header(a) + "\n".join(lines) + "\n")


def _header(a: argparse.Namespace) -> str:
    return (
        f"# Random label flips ({a.rate:.0%}) against the oracle\n\n"
        f"Command: `.venv/bin/python benchmarks/oracle_check.py --seeds {a.seeds} --rate {a.rate}`\n\n"
        f"Machine: {platform.machine()}, {platform.processor() or 'cpu'}, python {platform.python_version()}, "
        f"scikit-learn {sklearn.__version__}, poisonguard {pg.__version__}. Seeds 0..{a.seeds - 1}; fpr 0.01.\n"
        "`gap` is oracle minus scan (the target is at most 0.01). `clean verdict` and `clean flagged` are for the "
        "unmodified data set.\n\n"
    )


if __name__ == "__main__":
    main()
