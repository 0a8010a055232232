"""Save a ResNet-18's features of poisoned Fashion-MNIST for offline work on the representation detectors.

    python benchmarks/representation/dump_features.py --data-dir DIR --out-dir DIR [--dims 32] [--per-file 4]

Trains the same ResNet-18 as ``resnet.py`` (all 60,000 training images, a GPU) once per run, clean and poisoned,
and saves per run the training rows' penultimate features projected on their top ``--dims`` principal directions
(float16; ``representation_split`` reads 32), the labels the model was trained on, the poison mask, the target
and the attack's success rate. Training takes seconds per model on a GPU, while the scan on 60,000 rows takes
minutes on a CPU: this keeps a GPU lease short and leaves the detector work to a CPU. Nothing here is committed;
the files are data.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from images import asr, poison, predict, train_resnet  # noqa: E402
from resnet import load_fashion  # noqa: E402

from poisonguard.representation import global_reduce  # noqa: E402
from poisonguard.torch_features import penultimate_features  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--out-dir", type=Path, required=True)
    ap.add_argument("--attacks", nargs="+", default=["badnets", "blend"])
    ap.add_argument("--rates", nargs="+", type=float, default=[0.01, 0.05, 0.1])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    ap.add_argument("--clean-seeds", nargs="*", type=int, default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--dims", type=int, default=32)
    ap.add_argument("--per-file", type=int, default=4, help="runs per .npz file")
    ap.add_argument("--n-train", type=int, default=0, help="a random subset of the training images (0: all)")
    ap.add_argument("--budget-s", type=float, default=1e9, help="start no run after this many seconds")
    args = ap.parse_args()
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    t_start = time.perf_counter()
    Xtr, ytr, Xte, yte = load_fashion(args.data_dir)
    if args.n_train:
        keep = np.sort(np.random.default_rng(0).permutation(len(ytr))[: args.n_train])
        Xtr, ytr = Xtr[keep], ytr[keep]
    n_classes = int(ytr.max()) + 1
    runs = [("none", 0.0, s) for s in args.clean_seeds]
    runs += [(a, r, s) for s in args.seeds for r in args.rates for a in args.attacks]
    args.out_dir.mkdir(parents=True, exist_ok=True)
    batch: dict[str, np.ndarray] = {}
    meta = []
    part = 0

    def flush() -> None:
        nonlocal part, batch
        if batch:
            np.savez(args.out_dir / f"features_{part}.npz", **batch)
            part, batch = part + 1, {}

    for attack, rate, seed in runs:
        if time.perf_counter() - t_start > args.budget_s:
            print(f"budget spent: {attack} {rate} seed {seed} not started", flush=True)
            continue
        t0 = time.perf_counter()
        target = seed % n_classes
        if attack == "none":
            X, y, mask = Xtr, ytr, np.zeros(len(ytr), dtype=bool)
        else:
            p = poison(Xtr, ytr, attack, rate, target, seed)
            X, y, mask = p.X, p.y, p.mask
        model = train_resnet(X, y, n_classes=n_classes, seed=seed, epochs=args.epochs, device=device)
        acc = float(np.mean(predict(model, Xte) == yte))
        success = asr(model, Xte, yte, attack, target, seed) if attack != "none" else None
        feats = penultimate_features(model, X[:, None], device=device)
        key = f"{attack}_{rate}_{seed}"
        batch[f"{key}__Z"] = global_reduce(feats, args.dims).astype(np.float16)
        batch[f"{key}__y"] = y.astype(np.int8)
        batch[f"{key}__mask"] = mask
        meta.append(
            {
                "key": key,
                "attack": attack,
                "rate": rate,
                "seed": seed,
                "target": target if attack != "none" else None,
                "accuracy": acc,
                "asr": success,
                "file": f"features_{part}.npz",
                "seconds": round(time.perf_counter() - t0, 1),
            }
        )
        print(json.dumps(meta[-1]), flush=True)
        if len(batch) >= 3 * args.per_file:
            flush()
    flush()
    (args.out_dir / "features.json").write_text(json.dumps(meta, indent=1))


if __name__ == "__main__":
    main()
