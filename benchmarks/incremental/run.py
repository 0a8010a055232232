"""Incremental scan benchmark: a trusted 70% snapshot, a new 30% batch with poison planted in it.

    .venv/bin/python benchmarks/incremental/run.py              # adult and bank_marketing, 3 seeds (about 40 min on 2 cores)
    .venv/bin/python benchmarks/incremental/run.py --quick      # adult, 1 seed, one rate

For each data set and seed the rows are shuffled and split: 70% trusted, 30% new. The reference (detectors
fitted on the trusted rows) is fitted once; then, for a clean new batch and for the batch poisoned by each
attack and rate, the new batch is scanned incrementally against it and, for comparison, the union (trusted +
new) is scanned in full. Detection is measured on the new rows: AUROC of the score, flag precision and recall;
time is wall time. The incremental batch test's p-value says whether the batch as a whole is more suspicious
than the trusted rows (it should be small for poisoned batches and not for clean ones).

Raw records go to ``benchmarks/results/incremental.jsonl``, the summary to ``benchmarks/results/incremental.md``.
The data sets are read from ``../shared/datasets`` (or ``$POISONGUARD_DATASETS``, for a git worktree).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from datasets import LOADERS  # noqa: E402

import poisonguard as pg  # noqa: E402
from poisonguard.attacks import get_attack  # noqa: E402
from poisonguard.errors import PoisonguardError  # noqa: E402
from poisonguard.features import FeatureEncoder  # noqa: E402
from poisonguard.incremental import fit_reference, scan_incremental  # noqa: E402


def _detection_helpers() -> Any:
    """The detection benchmark's metrics (its module is also named run.py, so load it by path)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("detection_run", HERE.parent / "detection" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_det = _detection_helpers()
COMMIT, metrics = _det.COMMIT, _det.metrics

RESULTS = HERE.parent / "results"
FULL = {
    "datasets": ["adult", "bank_marketing"],
    # the targeted and confident flips are where a scan of the whole data falls far short of the oracle (the model
    # learns the flipped labels); a trusted snapshot is the remedy this benchmark measures
    "attacks": [
        "label_flip",
        "class_targeted_flip",
        "segment_targeted_flip",
        "confident_flip",
        "backdoor",
        "out_of_distribution",
    ],
    "rates": [0.02, 0.1, 0.2],
    "seeds": [0, 1, 2],
}
QUICK = {
    "datasets": ["adult"],
    "attacks": ["label_flip", "backdoor", "out_of_distribution"],
    "rates": [0.1],
    "seeds": [0],
}
TRUSTED_SHARE = 0.7


def split(df: pd.DataFrame, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    perm = np.random.default_rng(seed).permutation(len(df))
    cut = int(TRUSTED_SHARE * len(df))
    return df.iloc[perm[:cut]].reset_index(drop=True), df.iloc[perm[cut:]].reset_index(drop=True)


def snapshot_oracle(trusted: pd.DataFrame, seed: int) -> Callable[[pd.DataFrame], np.ndarray]:
    """Boosting fitted once on the trusted rows; the returned function scores a new batch by 1 - p(observed
    label): the ceiling for label attacks on the batch when the snapshot is clean (the poison never trains it)."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    ds = pg.load_dataset(trusted, label="label")
    enc = FeatureEncoder.fit(ds.frame, ds.columns, seed=seed)
    cat = np.asarray(enc.tree_categorical, dtype=bool)
    model = HistGradientBoostingClassifier(categorical_features=cat if cat.any() else None, random_state=seed)
    model.fit(enc.tree(ds.frame), ds.y)
    classes = pd.Index(ds.classes.astype(str))

    def score(new: pd.DataFrame) -> np.ndarray:
        y_new = classes.get_indexer(new["label"].astype(str))  # a class the snapshot never had: probability 0
        p = model.predict_proba(enc.tree(new))
        return 1.0 - np.where(y_new >= 0, p[np.arange(len(new)), np.clip(y_new, 0, None)], 0.0)

    return score


def compare(
    name: str,
    trusted: pd.DataFrame,
    new: pd.DataFrame,
    mask: np.ndarray,
    ref: Any,
    oracle: Callable[[pd.DataFrame], np.ndarray],
    seed: int,
) -> dict[str, Any]:
    """Incremental against full scan on one new batch; ``mask`` marks its poisoned rows."""
    t = time.perf_counter()
    inc = scan_incremental(new, baseline=ref, label="label", seed=seed)
    inc_s = time.perf_counter() - t
    score = np.zeros(len(new))  # rows identical to trusted rows are vouched for: not scored, not flagged
    flags = np.zeros(len(new), dtype=bool)
    score[inc.rows["row"].to_numpy()] = inc.rows["score"].to_numpy()
    flags[inc.rows["row"].to_numpy()] = inc.rows["flagged"].to_numpy()
    t = time.perf_counter()
    full = pg.scan(pd.concat([trusted, new], ignore_index=True), label="label", seed=seed)
    full_s = time.perf_counter() - t
    part = full.rows.iloc[len(trusted) :]
    batch = inc.summary["batch"]
    return {
        "incremental": metrics(mask, score, flags),
        "full": metrics(mask, part["score"].to_numpy(), part["flagged"].to_numpy()),
        "oracle": metrics(mask, oracle(new)),
        "incremental_seconds": round(inc_s, 2),
        "full_seconds": round(full_s, 2),
        "scored_rows": int(inc.summary["scored"]),
        "new_rows": len(new),
        "batch_auc": batch["auc"],
        "batch_pvalue": batch["pvalue"],
        "batch_significant": batch["significant"],
        "incremental_verdict": inc.verdict,
        "full_verdict": full.verdict,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="adult only, one seed, one rate")
    ap.add_argument("--out", default=str(RESULTS), help="directory for incremental.jsonl and incremental.md")
    args = ap.parse_args()
    cfg = QUICK if args.quick else FULL
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    jsonl = out / ("incremental-quick.jsonl" if args.quick else "incremental.jsonl")
    records: list[dict[str, Any]] = []
    total = len(cfg["datasets"]) * len(cfg["seeds"]) * (1 + len(cfg["attacks"]) * len(cfg["rates"]))
    started = time.perf_counter()
    with (
        warnings.catch_warnings(),
        Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
        ) as bars,
        jsonl.open("w") as fh,
    ):
        warnings.simplefilter("ignore")
        task = bars.add_task("incremental benchmark", total=total)
        for name in cfg["datasets"]:
            df = LOADERS[name]()
            for seed in cfg["seeds"]:
                trusted, new = split(df, seed)
                bars.update(task, description=f"{name} seed {seed}: reference")
                t = time.perf_counter()
                ref = fit_reference(trusted, label="label", seed=seed)
                ref_s = round(time.perf_counter() - t, 2)
                oracle = snapshot_oracle(trusted, seed)
                new_ds = pg.load_dataset(new, label="label")
                cases = [("none", 0.0)] + [(a, r) for a in cfg["attacks"] for r in cfg["rates"]]
                for attack, rate in cases:
                    bars.update(task, description=f"{name} seed {seed}: {attack} {rate:g}")
                    if attack == "none":
                        batch, mask = new, np.zeros(len(new), dtype=bool)
                    else:
                        try:
                            pois = get_attack(attack).apply(new_ds, rate=rate, seed=seed)
                        except PoisonguardError as exc:  # an attack that does not apply to this batch
                            print(f"{name} seed {seed} {attack} {rate:g}: skipped ({exc})", file=sys.stderr)
                            bars.advance(task)
                            continue
                        batch, mask = pois.frame, pois.mask
                    rec = {"dataset": name, "seed": seed, "attack": attack, "rate": rate, "reference_seconds": ref_s}
                    rec.update(compare(name, trusted, batch, mask, ref, oracle, seed))
                    rec["commit"] = COMMIT
                    records.append(rec)
                    fh.write(json.dumps(rec) + "\n")
                    fh.flush()
                    bars.advance(task)
    write_markdown(records, out, quick=args.quick, seconds=time.perf_counter() - started)


def _mean(values: list[Any]) -> float | None:
    v = [x for x in values if x is not None]
    return float(np.mean(v)) if v else None


def _f(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def write_markdown(records: list[dict[str, Any]], out: Path, *, quick: bool, seconds: float) -> None:
    import sklearn

    rows = []
    keys = sorted({(r["dataset"], r["attack"], r["rate"]) for r in records}, key=lambda k: (k[0], k[1] != "none", k))
    for ds, attack, rate in keys:
        rs = [r for r in records if (r["dataset"], r["attack"], r["rate"]) == (ds, attack, rate)]
        inc = [r["incremental"] for r in rs]
        full = [r["full"] for r in rs]
        oracle = [r["oracle"] for r in rs if "oracle" in r]
        rows.append(
            f"| {ds} | {attack} | {rate:g} | {len(rs)} "
            f"| {_f(_mean([m['auroc'] for m in full]))} | {_f(_mean([m['auroc'] for m in inc]))} "
            f"| {_f(_mean([m['auroc'] for m in oracle]))} "
            f"| {_f(_mean([m['flag_precision'] for m in full]), 2)} / {_f(_mean([m['flag_recall'] for m in full]), 2)} "
            f"| {_f(_mean([m['flag_precision'] for m in inc]), 2)} / {_f(_mean([m['flag_recall'] for m in inc]), 2)} "
            f"| {_f(_mean([m['flagged_fraction'] for m in full]), 4)} | {_f(_mean([m['flagged_fraction'] for m in inc]), 4)} "
            f"| {_mean([r['full_seconds'] for r in rs]):.1f} | {_mean([r['incremental_seconds'] for r in rs]):.1f} "
            f"| {_mean([r['reference_seconds'] for r in rs]):.1f} "
            f"| {max(r['batch_pvalue'] for r in rs):.2g} | {sum(r['batch_significant'] for r in rs)}/{len(rs)} |"
        )
    lines = [
        "# Incremental scan benchmark" + (" (quick)" if quick else ""),
        "",
        f"Command: `.venv/bin/python benchmarks/incremental/run.py{' --quick' if quick else ''}`; commit {COMMIT}; "
        f"{seconds / 60:.0f} minutes in all.",
        "",
        f"Machine: {platform.processor() or platform.machine()}, Python {platform.python_version()}, numpy "
        f"{np.__version__}, pandas {pd.__version__}, scikit-learn {sklearn.__version__}, poisonguard {pg.__version__}.",
        "",
        "Each data set is shuffled (seeded) and split: 70% trusted, 30% new; the attack poisons the new batch only "
        "(rate = share of the new batch). *Full*: `poisonguard.scan` of trusted + new, measured on the new rows. "
        "*Incremental*: `scan_incremental` of the new batch against the reference fitted on the trusted rows "
        "(fitted once per data set and seed, its time in *ref s*; it serves every batch). AUROC of the score and "
        "flag precision / recall on the new rows; *flagged* is the flagged share of the new rows (clean target: "
        "the 1% false-alarm rate). *batch p (max)*: the largest batch-test p-value over seeds; *sig.*: seeds "
        "where the batch test is significant at 0.1% (it should be for every poisoned batch and for no clean one). "
        "*Snapshot oracle*: boosting fitted on the trusted rows scores each new row by 1 - p(its label), the "
        "ceiling for label attacks when the snapshot is clean. Means over seeds.",
        "",
        "| data | attack | rate | seeds | full AUROC | incr. AUROC | snapshot oracle | full P / R | incr. P / R "
        "| full flagged | incr. flagged | full s | incr. s | ref s | batch p (max) | sig. |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
    ]
    (out / ("incremental-quick.md" if quick else "incremental.md")).write_text("\n".join(lines))


if __name__ == "__main__":
    main()
