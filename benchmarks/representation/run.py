"""Representation benchmark: image backdoors found through a CNN's own features (issue #7).

    .venv/bin/pip install torch==2.13.0             # the CPU build; the benchmark needs the torch extra
    .venv/bin/python benchmarks/representation/run.py [--datasets mnist fashion_mnist] [--seeds 0] [--quick]
    .venv/bin/python benchmarks/representation/run.py --pixels   # the pixel table scanned as it is, no model

For each data set (MNIST 5k; a 5,000-image Fashion-MNIST subset), seed, attack (BadNets patch, blended pattern,
naive clean-label patch) and rate (1%, 5%, 10%, 20% of the training rows), 3 seeds (the target class is the seed), the training split (80%, stratified) is
poisoned and a small CNN is trained on it (CPU, 4 epochs). Its penultimate features (``poisonguard.torch_features``)
go to the scan as embeddings: the label table has no other columns, so the scan runs its detectors on the embeddings,
plus deep k-NN on their neighbour graph. Our SPECTRE-style QUE ranking (robust whitening, quantum entropy) is
measured beside it from ``poisonguard.representation``; it does not yet join the scan.
Measured in the same run, on the same features:
- spectral signatures as published (Tran et al. 2018: per class, the squared projection on the top singular
  vector; the removal set is the top 1.5 x eps of each class, with eps given);
- activation clustering as published (Chen et al. 2018: 10 components (PCA, see the function), 2-means per
  class, the smaller cluster when under 35% of its class);
- the oracle: a CNN trained on the clean training rows, scoring each row by 1 - p(its label), the practical
  ceiling for label-flipping poison (clean-label poison keeps true labels, so there it is near chance).
Then the CNN is retrained without the rows the scan flags (and without the spectral-signature removal set) and
its attack success rate (ASR) measured on triggered test images. Unpoisoned runs give the scan's flagged share.

Raw records: ``benchmarks/results/representation.jsonl``; summary: ``benchmarks/results/representation.md``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
from datasets import LOADERS  # noqa: E402
from images import asr, poison, predict, proba, train_cnn  # noqa: E402

import poisonguard as pg  # noqa: E402
from poisonguard.representation import (  # noqa: E402
    published_activation_clustering,
    published_spectral_signatures,
    que_class_scores,
    removed_mask,
)
from poisonguard.torch_features import penultimate_features  # noqa: E402

RESULTS = HERE.parent / "results"
ATTACKS = ("badnets", "blend", "clean_label")
RATES = (0.01, 0.05, 0.1, 0.2)
N_IMAGES = 5000


def load(name: str) -> tuple[np.ndarray, np.ndarray]:
    df = LOADERS[name]() if name == "mnist" else LOADERS[name](n=N_IMAGES)
    X = df.drop(columns="label").to_numpy(np.float32).reshape(-1, 28, 28) / 255.0
    return X, df["label"].to_numpy().astype(np.int64)


def split(y: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    tr, te = train_test_split(idx, test_size=0.2, stratify=y, random_state=seed)
    return np.sort(tr), np.sort(te)


def auroc(mask: np.ndarray, score: np.ndarray) -> float | None:
    return float(roc_auc_score(mask, score)) if 0 < mask.sum() < len(mask) else None


def scan_features(feats: np.ndarray, y: np.ndarray, seed: int) -> Any:
    frame = pd.DataFrame({"label": y})
    return pg.scan(frame, label="label", embeddings=feats, seed=seed)


def pixel_frame(X: np.ndarray, y: np.ndarray) -> pd.DataFrame:
    """The images as a table of 0-255 pixel values, the way a small-image data set is often stored."""
    frame = pd.DataFrame(
        (X.reshape(len(y), -1) * 255).round().astype(np.int16), columns=[f"p{i}" for i in range(X[0].size)]
    )
    frame["label"] = y
    return frame


def run_pixels(
    name: str, X: np.ndarray, y: np.ndarray, tr: np.ndarray, te: np.ndarray, attack: str, rate: float, seed: int
) -> dict[str, Any]:
    """The scan of the pixel table itself (no model): trigger discovery sees a patch as out-of-range pixels."""
    t0 = time.perf_counter()
    n_classes = int(y.max()) + 1
    target = seed % n_classes
    if attack == "none":
        px, py, mask = X[tr], y[tr], np.zeros(len(tr), dtype=bool)
    else:
        p = poison(X[tr], y[tr], attack, rate, target, seed)
        px, py, mask = p.X, p.y, p.mask
    result = pg.scan(pixel_frame(px, py), label="label", seed=seed)
    flagged = result.rows["flagged"].to_numpy()
    rec: dict[str, Any] = {
        "dataset": name,
        "attack": attack,
        "rate": rate,
        "seed": seed,
        "view": "pixels",
        "poisoned_rows": int(mask.sum()),
        "auroc_scan": auroc(mask, result.rows["score"].to_numpy()),
        "flag_recall": float(flagged[mask].mean()) if mask.any() else None,
        "flag_precision": float(mask[flagged].mean()) if flagged.any() and mask.any() else None,
        "clean_flagged": float(flagged[~mask].mean()),
        "verdict": result.verdict,
        "triggers": [t.describe() for t in result.triggers],
    }
    if attack != "none":
        model = train_cnn(px, py, n_classes=n_classes, seed=seed)
        rec["asr"] = asr(model, X[te], y[te], attack, target, seed)
        sanitized = train_cnn(px[~flagged], py[~flagged], n_classes=n_classes, seed=seed)
        rec["sanitized_asr"] = asr(sanitized, X[te], y[te], attack, target, seed)
        rec["sanitized_accuracy"] = float(np.mean(predict(sanitized, X[te]) == y[te]))
    rec["seconds"] = round(time.perf_counter() - t0, 1)
    return rec


def summarise_pixels(records: list[dict[str, Any]], out: Path, command: str) -> None:
    lines = [
        "# Image backdoors found in the pixel table (no model)",
        "",
        f"Command: `{command}`. CPU only. The training split (4,000 images) as a table of 784 pixel columns (0-255), "
        "scanned as it is; the CNN (as in `representation.md`) is trained on it and on the rows the scan keeps.",
        "",
        "| dataset | attack | rate | seed | ASR | scan AUROC | flag recall | flag precision | clean flagged | verdict | ASR after scan | acc. after scan | trigger found |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        trig = "; ".join(t[:90] + ("..." if len(t) > 90 else "") for t in r.get("triggers") or []) or "-"
        lines.append(
            f"| {r['dataset']} | {r['attack']} | {r['rate']:.0%} | {r['seed']} | {fmt(r.get('asr'), 2)} | {fmt(r.get('auroc_scan'))} | "
            f"{fmt(r.get('flag_recall'), 2)} | {fmt(r.get('flag_precision'), 2)} | {r['clean_flagged']:.2%} | {r['verdict']} | "
            f"{fmt(r.get('sanitized_asr'), 2)} | {fmt(r.get('sanitized_accuracy'))} | {trig} |"
        )
    out.write_text("\n".join(lines) + "\n")


def run_one(
    name: str,
    X: np.ndarray,
    y: np.ndarray,
    tr: np.ndarray,
    te: np.ndarray,
    clean_model: Any,
    attack: str,
    rate: float,
    seed: int,
    train: Callable[[np.ndarray, np.ndarray], Any] | None = None,
) -> dict[str, Any]:
    """One poisoned run; ``train(X, y)`` fits the model (default: the small CNN on CPU)."""
    t0 = time.perf_counter()
    n_classes = int(y.max()) + 1
    target = seed % n_classes
    if train is None:

        def train(Xs: np.ndarray, ys: np.ndarray) -> Any:
            return train_cnn(Xs, ys, n_classes=n_classes, seed=seed)

    p = poison(X[tr], y[tr], attack, rate, target, seed)
    t_train = time.perf_counter()
    model = train(p.X, p.y)
    t_train = time.perf_counter() - t_train
    acc = float(np.mean(predict(model, X[te]) == y[te]))
    attack_sr = asr(model, X[te], y[te], attack, target, seed)
    t_feats = time.perf_counter()
    feats = penultimate_features(model, p.X[:, None], device=str(next(model.parameters()).device))
    t_feats = time.perf_counter() - t_feats
    t_scan = time.perf_counter()
    result = scan_features(feats, p.y, seed)
    t_scan = time.perf_counter() - t_scan
    rows = result.rows
    flagged = rows["flagged"].to_numpy()
    mask = p.mask
    eps = float(mask.sum() / max((p.y == target).sum(), 1))  # the poisoned share of the target class, as in the paper
    ss = published_spectral_signatures(feats, p.y, eps)
    ac = published_activation_clustering(feats, p.y, seed=seed)
    # oracle: the clean model's disbelief in each row's (possibly flipped) label
    oracle = 1.0 - proba(clean_model, p.X)[np.arange(len(p.y)), p.y]
    sanitized = train(p.X[~flagged], p.y[~flagged])
    # what the scan suggests when it reports a class without flagging it: retrain without its review rows too
    review = rows["review"].to_numpy() if "review" in rows else np.zeros(len(flagged), dtype=bool)
    reviewed = train(p.X[~(flagged | review)], p.y[~(flagged | review)]) if review.any() else None
    ss_removed = removed_mask(ss, p.y, eps)
    # at 20% poison the target's share is two thirds, and 1.5 x eps removes every row of every class
    kept = ~ss_removed
    ss_model = train(p.X[kept], p.y[kept]) if len(np.unique(p.y[kept])) > 1 else None
    split_info = result.info["detectors"].get("representation_split", {}).get("classes") or [{}]
    top = split_info[0]
    rec = {
        "dataset": name,
        "attack": attack,
        "rate": rate,
        "seed": seed,
        "target": target,
        "poisoned_rows": int(mask.sum()),
        "accuracy": acc,
        "asr": attack_sr,
        "auroc_scan": auroc(mask, rows["score"].to_numpy()),
        "auroc_spectral": auroc(mask, que_class_scores(feats, p.y)),
        "auroc_isolation": auroc(mask, rows["isolation_score"].to_numpy()),
        "auroc_deep_knn": auroc(mask, rows["deep_knn_score"].to_numpy()),
        "auroc_split": auroc(mask, rows["representation_split_score"].to_numpy()),
        "split_pvalue": top.get("pvalue"),
        "split_z": top.get("z"),
        "auroc_spectral_signatures_published": auroc(mask, ss),
        "auroc_activation_clustering_published": auroc(mask, ac),
        "auroc_oracle": auroc(mask, oracle),
        "flag_recall": float(flagged[mask].mean()),
        "flag_precision": float(mask[flagged].mean()) if flagged.any() else None,
        "clean_flagged": float(flagged[~mask].mean()),
        "ss_removal_recall": float(ss_removed[mask].mean()),
        "ac_recall": float((ac[mask] > 0).mean()),
        "ac_clean_flagged": float((ac[~mask] > 0).mean()),
        "verdict": result.verdict,
        # per detector: rows under its flag level and the level it flagged at (where a surplus of flags comes from)
        "flagged_by": {k: v.get("flagged") for k, v in result.info["detectors"].items()},
        "flag_levels": {k: v.get("flag_level") for k, v in result.info["detectors"].items()},
        "likely_target": top.get("class"),
        "estimated_rate_in_target": top.get("share"),
        "true_rate_in_target": float(mask.sum() / max((p.y == target).sum(), 1)),
        "sanitized_accuracy": float(np.mean(predict(sanitized, X[te]) == y[te])),
        "sanitized_asr": asr(sanitized, X[te], y[te], attack, target, seed),
        "ss_sanitized_asr": asr(ss_model, X[te], y[te], attack, target, seed) if ss_model is not None else None,
        "review_rows": int(review.sum()),
        "review_poisoned": int((review & mask).sum()),
        "reviewed_asr": asr(reviewed, X[te], y[te], attack, target, seed) if reviewed is not None else None,
        "reviewed_accuracy": float(np.mean(predict(reviewed, X[te]) == y[te])) if reviewed is not None else None,
        "seconds": round(time.perf_counter() - t0, 1),
        "seconds_train": round(t_train, 1),
        "seconds_features": round(t_feats, 1),
        "seconds_scan": round(t_scan, 1),
    }
    return rec


def unpoisoned(name: str, X: np.ndarray, y: np.ndarray, tr: np.ndarray, clean_model: Any, seed: int) -> dict[str, Any]:
    feats = penultimate_features(clean_model, X[tr][:, None], device=str(next(clean_model.parameters()).device))
    t_scan = time.perf_counter()
    result = scan_features(feats, y[tr], seed)
    t_scan = time.perf_counter() - t_scan
    ac = published_activation_clustering(feats, y[tr], seed=seed)
    top = (result.info["detectors"].get("representation_split", {}).get("classes") or [{}])[0]
    return {
        "dataset": name,
        "attack": "none",
        "rate": 0.0,
        "seed": seed,
        "clean_flagged": float(result.rows["flagged"].mean()),
        "verdict": result.verdict,
        "ac_clean_flagged": float((ac > 0).mean()),
        "flagged_by": {k: v["flagged"] for k, v in result.info["detectors"].items()},
        "split_class": top.get("class"),
        "split_z": top.get("z"),
        "split_pvalue": top.get("pvalue"),
        "seconds_scan": round(t_scan, 1),
    }


def fmt(v: Any, digits: int = 3) -> str:
    return "-" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.{digits}f}"


def _review(r: dict[str, Any]) -> str:
    """Rows named for review (of them poisoned) | ASR and accuracy of the model retrained without them and the flags."""
    if not r.get("review_rows"):
        return "- | -"
    return (
        f"{r['review_rows']} ({r['review_poisoned']}) | {fmt(r['reviewed_asr'], 2)}, {fmt(r['reviewed_accuracy'], 3)}"
    )


def summarise(records: list[dict[str, Any]], out: Path, command: str, header: str | None = None) -> None:
    df = pd.DataFrame.from_records(records)
    header = header or (
        f"Machine: {platform.machine()}, {platform.system()}, Python {platform.python_version()}; CPU only (no GPU "
        "was lent to this run). A small CNN (2 conv blocks, 64-unit penultimate layer, 4 epochs) is trained on each "
        "poisoned training split (4,000 images)"
    )
    lines = [
        "# Representation benchmark: image backdoors through a model's features",
        "",
        f"Command: `{command}`. {header.rstrip('.')}; its penultimate features are the embeddings. "
        "AUROC of each method's row score against the truth; `SS` and `AC` are spectral signatures and activation "
        "clustering as published, on the same features; the oracle is the same model trained on the clean rows (1 - p(label)).",
        "",
        "| dataset | attack | rate | seed | ASR | scan | split (in scan) | split class p | isolation (in scan) | deep k-NN (in scan) | QUE (ours, not in scan) | SS published | AC published | oracle | flag recall | flag precision | clean flagged | ASR after scan | ASR after SS | acc. after scan | split target (est. share / true) | review rows (poisoned) | ASR, acc. after flagged + review |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    poisoned = df[df["attack"] != "none"]
    for r in poisoned.to_dict("records"):
        lines.append(
            f"| {r['dataset']} | {r['attack']} | {r['rate']:.0%} | {r['seed']} | {fmt(r['asr'], 2)} | {fmt(r['auroc_scan'])} | "
            f"{fmt(r.get('auroc_split'))} | {fmt(r.get('split_pvalue'), 4)} | {fmt(r['auroc_isolation'])} | {fmt(r['auroc_deep_knn'])} | {fmt(r['auroc_spectral'])} | {fmt(r['auroc_spectral_signatures_published'])} | "
            f"{fmt(r['auroc_activation_clustering_published'])} | {fmt(r['auroc_oracle'])} | {fmt(r['flag_recall'], 2)} | "
            f"{fmt(r['flag_precision'], 2)} | {fmt(r['clean_flagged'] * 100, 2)}% | {fmt(r['sanitized_asr'], 2)} | "
            f"{fmt(r['ss_sanitized_asr'], 2)} | {fmt(r['sanitized_accuracy'], 3)} | {r['likely_target']} "
            f"({fmt(r['estimated_rate_in_target'], 2)} / {fmt(r['true_rate_in_target'], 2)}) | "
            f"{_review(r)} |"
        )
    clean = df[df["attack"] == "none"]
    if len(clean):
        lines += [
            "",
            "## Unpoisoned data (features of the model trained on clean rows)",
            "",
            "| dataset | seed | scan flagged | verdict | AC published flagged | split: most split class (z, p) | flags per detector |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in clean.to_dict("records"):
            lines.append(
                f"| {r['dataset']} | {r['seed']} | {r['clean_flagged']:.2%} | {r['verdict']} | {r['ac_clean_flagged']:.2%} | "
                f"{r.get('split_class', '-')} ({fmt(r.get('split_z'), 1)}, {fmt(r.get('split_pvalue'), 3)}) | "
                + ", ".join(f"{k} {v}" for k, v in (r.get("flagged_by") or {}).items())
                + " |"
            )
    if len(poisoned):
        g = poisoned.groupby("attack")[
            [
                "auroc_scan",
                "auroc_split",
                "auroc_spectral",
                "auroc_spectral_signatures_published",
                "auroc_activation_clustering_published",
                "auroc_oracle",
                "sanitized_asr",
                "asr",
            ]
        ].mean()
        lines += [
            "",
            "## Mean per attack (all rates and data sets)",
            "",
            "| attack | scan | split (in scan) | QUE (ours) | SS published | AC published | oracle | ASR before | ASR after scan |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for a, r in g.iterrows():
            lines.append(
                f"| {a} | {fmt(r['auroc_scan'])} | {fmt(r['auroc_split'])} | {fmt(r['auroc_spectral'])} | {fmt(r['auroc_spectral_signatures_published'])} | "
                f"{fmt(r['auroc_activation_clustering_published'])} | {fmt(r['auroc_oracle'])} | {fmt(r['asr'], 2)} | {fmt(r['sanitized_asr'], 2)} |"
            )
        working = poisoned[poisoned["asr"] >= 0.5]
        if len(working):
            w = working.groupby(["attack", "rate"]).agg(
                runs=("seed", "size"),
                scan=("auroc_scan", "mean"),
                split=("auroc_split", "mean"),
                ss=("auroc_spectral_signatures_published", "mean"),
                ac=("auroc_activation_clustering_published", "mean"),
                recall=("flag_recall", "mean"),
                asr=("asr", "mean"),
                asr_after=("sanitized_asr", "mean"),
                asr_ss=("ss_sanitized_asr", "mean"),
            )
            lines += [
                "",
                "## Runs where the backdoor works (ASR >= 0.5), per attack and rate (all data sets and seeds)",
                "",
                "| attack | rate | runs | scan | split (in scan) | SS published | AC published | flag recall | ASR before | ASR after scan | ASR after SS |",
                "|---|---|---|---|---|---|---|---|---|---|---|",
            ]
            for (a, rate), r in w.iterrows():
                lines.append(
                    f"| {a} | {rate:.0%} | {int(r['runs'])} | {fmt(r['scan'])} | {fmt(r['split'])} | {fmt(r['ss'])} | "
                    f"{fmt(r['ac'])} | {fmt(r['recall'], 2)} | {fmt(r['asr'], 2)} | {fmt(r['asr_after'], 2)} | "
                    f"{fmt(r['asr_ss'], 2)} |"
                )
    out.write_text("\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="+", default=["mnist", "fashion_mnist"])
    ap.add_argument("--attacks", nargs="+", default=list(ATTACKS))
    ap.add_argument("--rates", nargs="+", type=float, default=list(RATES))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--quick", action="store_true", help="mnist, 5%% only")
    ap.add_argument("--resume", action="store_true", help="keep the records already in the results file")
    ap.add_argument("--summarise", action="store_true", help="only rewrite the summary from the records")
    ap.add_argument("--pixels", action="store_true", help="scan the pixel table itself instead of CNN features")
    ap.add_argument(
        "--tag", default=None, help="suffix for the result files (representation-<tag>.md): a partial rerun"
    )
    args = ap.parse_args()
    import torch

    torch.set_num_threads(2)
    if args.quick:
        args.datasets, args.rates = ["mnist"], [0.05]
    RESULTS.mkdir(exist_ok=True)
    suffix = (
        ("-pixels" if args.pixels else "") + ("-quick" if args.quick else "") + (f"-{args.tag}" if args.tag else "")
    )
    jsonl, md = RESULTS / f"representation{suffix}.jsonl", RESULTS / f"representation{suffix}.md"
    command = "python benchmarks/representation/run.py " + " ".join(sys.argv[1:])
    summary = summarise_pixels if args.pixels else summarise
    records = (
        [json.loads(x) for x in jsonl.read_text().splitlines()]
        if (args.resume or args.summarise) and jsonl.exists()
        else []
    )
    if args.summarise:
        summary(records, md, command)
        return
    done = {(r["dataset"], r["attack"], r["rate"], r["seed"]) for r in records}
    mode = "a" if args.resume else "w"
    with jsonl.open(mode) as fh:
        for name in args.datasets:
            X, y = load(name)
            for seed in args.seeds:
                tr, te = split(y, seed)
                clean_model = None
                for attack in ["none", *args.attacks]:
                    for rate in [0.0] if attack == "none" else args.rates:
                        if (name, attack, rate, seed) in done:
                            continue
                        if args.pixels:
                            rec = run_pixels(name, X, y, tr, te, attack, rate, seed)
                        else:
                            if clean_model is None:
                                clean_model = train_cnn(X[tr], y[tr], n_classes=int(y.max()) + 1, seed=seed)
                            rec = (
                                unpoisoned(name, X, y, tr, clean_model, seed)
                                if attack == "none"
                                else run_one(name, X, y, tr, te, clean_model, attack, rate, seed)
                            )
                        records.append(rec)
                        fh.write(json.dumps(rec) + "\n")
                        fh.flush()
                        print(
                            f"{name} {attack} {rate} seed {seed}: "
                            + ", ".join(
                                f"{k}={fmt(v) if isinstance(v, float) else v}"
                                for k, v in rec.items()
                                if k.startswith(
                                    (
                                        "auroc_scan",
                                        "auroc_split",
                                        "auroc_spectral",
                                        "clean_flagged",
                                        "asr",
                                        "sanitized_asr",
                                        "verdict",
                                        "flag_recall",
                                    )
                                )
                            ),
                            flush=True,
                        )
    summary(records, md, command)
    print(f"wrote {jsonl} and {md}")


if __name__ == "__main__":
    main()
