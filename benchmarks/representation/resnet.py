"""The representation benchmark at GPU size: ResNet-18 on the full Fashion-MNIST (issue #7).

    python benchmarks/representation/resnet.py --data-dir ../shared/datasets/fashion_mnist [--epochs 6]
        [--attacks badnets blend] [--rates 0.01 0.1] [--seeds 0] [--budget-s 480]

The same runs and measures as ``run.py`` (scan on the penultimate features, spectral signatures and activation
clustering as published, the oracle, retraining without the flagged rows), with a ResNet-18 (512 penultimate
features) trained on all 60,000 training images and tested on the 10,000 test images. It needs a GPU to finish in
minutes; ``--device cpu --n-train 1500 --n-test 300 --epochs 1`` is a smoke test. Runs start only while ``--budget-s`` has not
passed, and every record is written as soon as it exists, so a lease that ends early still leaves results.

Raw records: ``representation-resnet.jsonl``; summary: ``representation-resnet.md`` (in ``--out-dir``).
"""

from __future__ import annotations

import argparse
import gzip
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from images import predict, train_resnet  # noqa: E402
from run import fmt, run_one, summarise, unpoisoned  # noqa: E402

from poisonguard.torch_features import penultimate_features  # noqa: E402

RESULTS = HERE.parent / "results"
COMMAND = "python benchmarks/representation/resnet.py --data-dir DIR --out-dir DIR --epochs 6 --budget-s 380"


def describe(records: list[dict]) -> str:
    """The model, data and machine behind the records, for the summary's header."""
    rec = records[0]
    accs = sorted({round(r["clean_accuracy"], 3) for r in records})
    acc = f"{accs[0]:.3f}" if len(accs) == 1 else f"{accs[0]:.3f}-{accs[-1]:.3f}"
    gpu = f" ({rec['gpu']})" if rec.get("gpu") else ""
    return (
        f"ResNet-18 (512 penultimate features, {rec['epochs']} epochs, SGD one-cycle, bf16 autocast) trained on "
        f"{rec['n_train']:,} Fashion-MNIST training images (clean test accuracy {acc}), "
        f"tested on the 10,000 test images; training and feature extraction on {rec['device']}{gpu}, torch "
        f"{rec['torch']}; the scan on {rec['cpus']} CPU cores, Python {rec['python']}"
    )


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (the MNIST format), gzipped: a big-endian header of dimensions, then unsigned bytes."""
    raw = gzip.decompress(path.read_bytes())
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_fashion(data_dir: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    files = (
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    )
    missing = [f for f in files if not (data_dir / f).is_file()]
    if missing:
        print(
            f"error: {data_dir} lacks {', '.join(missing)}; pass --data-dir the Fashion-MNIST folder", file=sys.stderr
        )
        sys.exit(2)
    Xtr = read_idx(data_dir / "train-images-idx3-ubyte.gz").astype(np.float32) / 255.0
    ytr = read_idx(data_dir / "train-labels-idx1-ubyte.gz").astype(np.int64)
    Xte = read_idx(data_dir / "t10k-images-idx3-ubyte.gz").astype(np.float32) / 255.0
    yte = read_idx(data_dir / "t10k-labels-idx1-ubyte.gz").astype(np.int64)
    return Xtr, ytr, Xte, yte


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, default=HERE.parents[2] / "shared" / "datasets" / "fashion_mnist")
    ap.add_argument("--out-dir", type=Path, default=RESULTS)
    ap.add_argument("--attacks", nargs="+", default=["badnets", "blend"])
    ap.add_argument("--rates", nargs="+", type=float, default=[0.01, 0.1])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--n-train", type=int, default=0, help="a random subset of the training images (0: all)")
    ap.add_argument("--n-test", type=int, default=0, help="a random subset of the test images (0: all)")
    ap.add_argument("--device", default=None, help="default: cuda when available")
    ap.add_argument("--budget-s", type=float, default=1e9, help="start no run after this many seconds")
    ap.add_argument("--summarise", action="store_true", help="only rewrite the summary from the records")
    ap.add_argument("--no-unpoisoned", action="store_true", help="skip the scan of the clean model's features")
    args = ap.parse_args()
    jsonl, md = args.out_dir / "representation-resnet.jsonl", args.out_dir / "representation-resnet.md"
    if args.summarise:
        records = [json.loads(x) for x in jsonl.read_text().splitlines()]
        summarise(records, md, COMMAND, header=describe(records))
        return
    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    machine = {
        "device": device,
        "gpu": torch.cuda.get_device_name(0) if device.startswith("cuda") else None,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpus": __import__("os").cpu_count(),
    }
    print(machine, flush=True)
    t_start = time.perf_counter()
    Xtr, ytr, Xte, yte = load_fashion(args.data_dir)
    if args.n_train:
        keep = np.sort(np.random.default_rng(0).permutation(len(ytr))[: args.n_train])
        Xtr, ytr = Xtr[keep], ytr[keep]
    if args.n_test:
        keep = np.sort(np.random.default_rng(1).permutation(len(yte))[: args.n_test])
        Xte, yte = Xte[keep], yte[keep]
    X = np.concatenate([Xtr, Xte])
    y = np.concatenate([ytr, yte])
    tr, te = np.arange(len(ytr)), np.arange(len(ytr), len(y))
    n_classes = int(y.max()) + 1
    args.out_dir.mkdir(parents=True, exist_ok=True)
    records = []
    with jsonl.open("w") as fh:
        for seed in args.seeds:

            def train(Xs: np.ndarray, ys: np.ndarray, seed: int = seed) -> object:
                return train_resnet(Xs, ys, n_classes=n_classes, seed=seed, epochs=args.epochs, device=device)

            t0 = time.perf_counter()
            clean_model = train(X[tr], y[tr])
            clean_acc = float(np.mean(predict(clean_model, X[te]) == y[te]))
            print(
                f"clean ResNet-18 seed {seed}: accuracy {clean_acc:.3f}, {time.perf_counter() - t0:.1f} s", flush=True
            )
            if device.startswith("cuda"):
                # the extractor's GPU path against its CPU path, on the same model and rows
                t1 = time.perf_counter()
                on_gpu = penultimate_features(clean_model, X[tr][:2000, None], device=device)
                gpu_s = time.perf_counter() - t1
                on_cpu = penultimate_features(clean_model, X[tr][:2000, None], device="cpu")
                clean_model.to(device)
                machine["features_gpu_vs_cpu_max_abs_diff"] = float(np.abs(on_gpu - on_cpu).max())
                machine["features_gpu_scale"] = float(np.abs(on_cpu).max())
                print(
                    f"features on {device} ({gpu_s:.2f} s for 2,000) vs cpu: max |diff| "
                    f"{machine['features_gpu_vs_cpu_max_abs_diff']:.2e} (max |feature| {machine['features_gpu_scale']:.2f})",
                    flush=True,
                )
            runs = [] if args.no_unpoisoned else [("none", 0.0)]
            runs += [(a, r) for r in args.rates for a in args.attacks]
            for attack, rate in runs:
                if time.perf_counter() - t_start > args.budget_s:
                    print(f"budget spent: {attack} {rate} seed {seed} not started", flush=True)
                    continue
                rec = (
                    unpoisoned("fashion_mnist_60k", X, y, tr, clean_model, seed)
                    if attack == "none"
                    else run_one("fashion_mnist_60k", X, y, tr, te, clean_model, attack, rate, seed, train=train)
                )
                rec.update(model="resnet18", epochs=args.epochs, n_train=len(tr), clean_accuracy=clean_acc, **machine)
                records.append(rec)
                fh.write(json.dumps(rec) + "\n")
                fh.flush()
                print(
                    f"{attack} {rate} seed {seed}: "
                    + ", ".join(
                        f"{k}={fmt(v) if isinstance(v, float) else v}"
                        for k, v in rec.items()
                        if k.startswith(("auroc", "asr", "sanitized", "clean_flagged", "flag_", "seconds", "split_p"))
                    ),
                    flush=True,
                )
    if records:
        summarise(records, md, COMMAND, header=describe(records))
    print(f"wrote {jsonl} and {md}", flush=True)


if __name__ == "__main__":
    main()
