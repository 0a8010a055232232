"""The representation split's class-level decision, alone: does it name the backdoor's target, and only then?

    .venv/bin/python benchmarks/representation/classes.py [--resnet-features DIR] [--quick]

``representation_split`` flags rows only in a class it *declares* (its split is far sharper than the other
classes', family-wise p <= ``SPLIT_ALPHA``), so this decision bounds what the scan can find in image data. The
full representation benchmark (``run.py``) measures it inside the scan but needs hours on a CPU; this one calls
``representation.class_splits`` directly, so a change to the decision is measured in minutes, on both sides:
- **unpoisoned real representations** (false declarations, and classes reported at p <= ``SPLIT_NOTE``): leaf embeddings (``representation="leaves"``) of the
  multi-class tasks of the shared tables (adult's education, relationship, marital status, workclass, occupation,
  race; bank_marketing's job and education) at 2,000 and 8,000 rows, and the pixels of MNIST and Fashion-MNIST
  (4,000 images), 3 seeds each; natural segments (married couples split by husband and wife, say) split sharply
  too, and no row there is poison;
- **poisoned CNN features** (declarations of the target): the small CNN of ``run.py`` trained on each poisoned
  training split (MNIST 5k and Fashion-MNIST 5k; BadNets, blend, clean-label at 1/5/10/20%; 3 seeds) and on the
  clean split; needs the torch extra (``pip install torch==2.13.0``);
- optionally the ResNet-18 features that ``dump_features.py`` saved on a GPU (``--resnet-features DIR``).

Per run: the most split class, its z and p, whether it is declared, whether it is the target, the AUROC of the
split's projection within the target class, the estimated and true poison share of the target, and whether a
class other than the target is declared (a false declaration). Results: ``representation-classes.md`` and
``.jsonl`` in ``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
from datasets import LOADERS, SHARED, available  # noqa: E402

import poisonguard as pg  # noqa: E402
from poisonguard.context import ScanContext  # noqa: E402
from poisonguard.io import load_dataset  # noqa: E402
from poisonguard.representation import SPLIT_ALPHA, SPLIT_NOTE, class_splits  # noqa: E402

RESULTS = HERE.parent / "results"
TABULAR = [
    ("adult", "education"),
    ("adult", "relationship"),
    ("adult", "marital_status"),
    ("adult", "workclass"),
    ("adult", "occupation"),
    ("adult", "race"),
    ("bank_marketing", "job"),
    ("bank_marketing", "education"),
]
SEEDS = (0, 1, 2)


def _task_frame() -> Any:
    spec = importlib.util.spec_from_file_location("clean_tasks_run", HERE.parent / "clean_tasks" / "run.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module.task_frame


def decide(E: np.ndarray, y: np.ndarray, seed: int, mask: np.ndarray | None = None, target: int | None = None) -> dict:
    """The class-level decision on one representation, with the truth where there is one."""
    t0 = time.perf_counter()
    splits = class_splits(E, y, seed=seed)
    rec: dict[str, Any] = {"classes_judged": len(splits), "seconds": 0.0}
    if not splits:
        return rec
    top = min(splits, key=lambda s: s.pvalue)
    declared = [s for s in splits if s.pvalue <= SPLIT_ALPHA]
    rec.update(
        top_class=int(top.label),
        top_z=round(top.z, 2),
        top_p=float(f"{top.pvalue:.3g}"),
        top_share=round(top.share, 3),
        declared=[int(s.label) for s in declared],
        reported=bool(top.pvalue <= SPLIT_NOTE),
    )
    if target is not None and mask is not None:
        t = next((s for s in splits if s.label == target), None)
        rec["target_declared"] = bool(t is not None and t.pvalue <= SPLIT_ALPHA)
        rec["other_declared"] = [int(s.label) for s in declared if s.label != target]
        rec["target_named"] = bool(top.label == target and top.pvalue <= SPLIT_NOTE)
        if t is not None:
            m = mask[t.rows]
            rec.update(
                target_z=round(t.z, 2),
                target_p=float(f"{t.pvalue:.3g}"),
                target_separation=round(t.separation, 2),
                split_auroc=round(float(roc_auc_score(m, t.projection)), 4) if 0 < m.sum() < len(m) else None,
                estimated_share=round(t.share, 3),
                true_share=round(float(m.mean()), 3),
            )
    else:
        rec["false_declared"] = [int(s.label) for s in declared]
    rec["seconds"] = round(time.perf_counter() - t0, 2)
    return rec


def null_runs(quick: bool) -> list[dict]:
    task_frame = _task_frame()
    out = []
    sizes = (2000,) if quick else (2000, 8000)
    seeds = SEEDS[:1] if quick else SEEDS
    for name, label in TABULAR:
        for n in sizes:
            for seed in seeds:
                df = task_frame(name, label, n, seed)
                if df is None:
                    continue
                ds = load_dataset(df, label=label)
                E = ScanContext(data=ds, seed=seed, representation_kind="leaves").representation()
                rec = {"kind": "leaves", "dataset": name, "label": label, "rows": n, "seed": seed}
                rec.update(decide(E, ds.y, seed))
                out.append(rec)
                print(json.dumps(rec), flush=True)
    for name in ("mnist", "fashion_mnist"):
        df = LOADERS[name]() if name == "mnist" else LOADERS[name](n=5000)
        X = df.drop(columns="label").to_numpy(np.float32) / 255.0
        y = df["label"].to_numpy()
        for seed in seeds:
            idx = np.random.default_rng(seed).permutation(len(y))[:4000]
            rec = {"kind": "pixels", "dataset": name, "label": "label", "rows": 4000, "seed": seed}
            rec.update(decide(X[idx], y[idx], seed))
            out.append(rec)
            print(json.dumps(rec), flush=True)
    return out


def cnn_runs(quick: bool) -> list[dict]:
    from images import asr, poison, train_cnn
    from run import ATTACKS, RATES, load, split

    from poisonguard.torch_features import penultimate_features

    out = []
    for name in ("mnist",) if quick else ("mnist", "fashion_mnist"):
        X, y = load(name)
        n_classes = int(y.max()) + 1
        for seed in SEEDS[:1] if quick else SEEDS:
            tr, te = split(y, seed)
            target = seed % n_classes
            runs = [("none", 0.0)] + [(a, r) for a in ATTACKS for r in ((0.05,) if quick else RATES)]
            for attack, rate in runs:
                if attack == "none":
                    Xp, yp, mask = X[tr], y[tr], None
                else:
                    p = poison(X[tr], y[tr], attack, rate, target, seed)
                    Xp, yp, mask = p.X, p.y, p.mask
                model = train_cnn(Xp, yp, n_classes=n_classes, seed=seed)
                feats = penultimate_features(model, Xp[:, None], device="cpu")
                rec = {"kind": "cnn", "dataset": name, "attack": attack, "rate": rate, "seed": seed}
                if attack != "none":
                    rec["target"] = target
                    rec["asr"] = round(asr(model, X[te], y[te], attack, target, seed), 3)
                rec.update(decide(feats, yp, seed, mask, target if attack != "none" else None))
                out.append(rec)
                print(json.dumps(rec), flush=True)
    return out


def resnet_runs(folder: Path) -> list[dict]:
    meta = json.loads((folder / "features.json").read_text())
    out, files = [], {}
    for m in meta:
        z = files.setdefault(m["file"], np.load(folder / m["file"]))
        k = m["key"]
        E, y, mask = z[f"{k}__Z"].astype(np.float32), z[f"{k}__y"].astype(np.int64), z[f"{k}__mask"]
        rec = {"kind": "resnet18", "dataset": "fashion_mnist_60k", "attack": m["attack"], "rate": m["rate"]}
        rec["seed"] = m["seed"]
        if m["attack"] != "none":
            rec.update(target=m["target"], asr=round(m["asr"], 3))
        rec.update(decide(E, y, m["seed"], mask if m["attack"] != "none" else None, m["target"]))
        out.append(rec)
        print(json.dumps(rec), flush=True)
    return out


def _p(v: Any) -> str:
    return "-" if v is None else f"{v:.2g}"


def summarise(records: list[dict], command: str) -> str:
    lines = [
        "# Representation split: the class-level decision",
        "",
        f"Command: `{command}`. Machine: {platform.machine()}, Python {platform.python_version()}, poisonguard "
        f"{pg.__version__}. A class is declared (its separate group flagged) at family-wise p <= {SPLIT_ALPHA}. "
        "ResNet-18 features, where present, were computed on a GPU by `dump_features.py` (top 32 principal "
        "directions, float16); the decision itself runs here.",
        "",
    ]
    null = [r for r in records if "false_declared" in r]
    null = [r for r in null if r.get("classes_judged", 0) >= 5]
    n_false = sum(bool(r.get("false_declared")) for r in null)
    pois = [r for r in records if r.get("attack") not in (None, "none") and "target_declared" in r]
    working = [r for r in pois if r.get("asr", 0) >= 0.5 and r["attack"] != "clean_label"]
    lines += [
        f"**Unpoisoned: {n_false} of {len(null)} representations with a class declared, "
        f"{sum(bool(r.get('reported')) for r in null)} with one reported (p <= {SPLIT_NOTE}: verdict 'suspicious', "
        f"nothing flagged). Working dirty-label backdoors (ASR >= 0.5): target declared in "
        f"{sum(r['target_declared'] for r in working)} of {len(working)}, named (declared or reported) in "
        f"{sum(r.get('target_named', False) for r in working)}; another class declared in "
        f"{sum(bool(r['other_declared']) for r in pois)} of {len(pois)} poisoned runs.**",
        "",
        "## Unpoisoned",
        "",
        "| kind | data set | label | rows | seed | classes | most split class | z | p | declared | reported |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in null:
        lines.append(
            f"| {r['kind']} | {r['dataset']} | {r.get('label', 'label')} | {r.get('rows', '')} | {r['seed']} | "
            f"{r['classes_judged']} | {r.get('top_class')} | {r.get('top_z')} | {_p(r.get('top_p'))} | "
            f"{', '.join(map(str, r.get('false_declared', []))) or '-'} | {'yes' if r.get('reported') else '-'} |"
        )
    lines += [
        "",
        "## Poisoned",
        "",
        "| kind | data set | attack | rate | seed | ASR | target | target z | target p | declared | split AUROC "
        "| est. / true share | other classes declared |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in pois:
        lines.append(
            f"| {r['kind']} | {r['dataset']} | {r['attack']} | {r['rate']:.0%} | {r['seed']} | {r['asr']:.2f} | "
            f"{r['target']} | {r.get('target_z')} | {_p(r.get('target_p'))} | {'yes' if r['target_declared'] else 'no'}"
            f" | {r.get('split_auroc')} | {r.get('estimated_share')} / {r.get('true_share')} | "
            f"{', '.join(map(str, r['other_declared'])) or '-'} |"
        )
    lines += ["", "## Working dirty-label backdoors, per model and attack", ""]
    lines += [
        "| model | attack | runs | target declared | target named (declared or reported) | split AUROC >= 0.99 |",
        "|---|---|---|---|---|---|",
    ]
    for kind in sorted({r["kind"] for r in working}):
        for attack in sorted({r["attack"] for r in working}):
            sel = [r for r in working if r["kind"] == kind and r["attack"] == attack]
            if sel:
                good = sum((r.get("split_auroc") or 0) >= 0.99 for r in sel)
                named = sum(r.get("target_named", False) for r in sel)
                lines.append(
                    f"| {kind} | {attack} | {len(sel)} | {sum(r['target_declared'] for r in sel)} | {named} | {good} |"
                )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--resnet-features", type=Path, default=None, help="a folder written by dump_features.py")
    ap.add_argument("--quick", action="store_true", help="one seed, 2,000 rows, MNIST at 5%% only")
    ap.add_argument("--no-cnn", action="store_true", help="skip the CNN runs (no torch needed)")
    ap.add_argument("--out-dir", type=Path, default=RESULTS)
    ap.add_argument("--summarise", action="store_true", help="only rewrite the summary from the records")
    args = ap.parse_args()
    jsonl = args.out_dir / "representation-classes.jsonl"
    command = "python benchmarks/representation/classes.py --resnet-features DIR"
    if args.summarise:
        records = [json.loads(x) for x in jsonl.read_text().splitlines()]
        (args.out_dir / "representation-classes.md").write_text(summarise(records, command))
        return
    if not available():
        print(
            f"error: no data sets at {SHARED}; set POISONGUARD_DATASETS to the shared datasets folder", file=sys.stderr
        )
        sys.exit(2)
    if args.resnet_features and not (args.resnet_features / "features.json").is_file():
        print(
            f"error: {args.resnet_features} holds no features.json; pass a folder written by dump_features.py",
            file=sys.stderr,
        )
        sys.exit(2)
    records = null_runs(args.quick)
    if not args.no_cnn:
        records += cnn_runs(args.quick)
    if args.resnet_features:
        records += resnet_runs(args.resnet_features)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "representation-classes.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    command = "python benchmarks/representation/classes.py" + (" --resnet-features DIR" if args.resnet_features else "")
    (args.out_dir / "representation-classes.md").write_text(summarise(records, command))
    print(f"wrote {args.out_dir / 'representation-classes.md'}")


if __name__ == "__main__":
    main()
