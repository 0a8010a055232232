"""Scale benchmark: one scan of 1,000,000 rows x 50 features against one HistGradientBoosting fit.

    .venv/bin/python benchmarks/scale.py [--rows 1000000] [--out benchmarks/results/scale.md]

Synthetic data (40 numeric, 10 categorical features, a nonlinear binary label, 2% of labels flipped) is written
once to a Parquet file; the model fit and the scan then each run in a fresh process that reads it, so that each
peak RSS is that step's own (data included). Targets on 2 cores: scan time / fit time <= 1.5, scan peak RSS <= 2 GB.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

N_NUM, N_CAT = 40, 10


def make_data(n: int, seed: int, path: Path) -> None:
    rng = np.random.default_rng(seed)
    num = rng.standard_normal((n, N_NUM)).astype(np.float64)
    num[:, 1] = 0.6 * num[:, 0] + 0.8 * num[:, 1]
    levels = [3 + 2 * j for j in range(N_CAT)]
    cats = np.column_stack([rng.integers(0, k, size=n) for k in levels])
    effects = [rng.normal(0, 0.7, size=k) for k in levels]
    logit = (
        1.2 * num[:, 0]
        - 0.9 * num[:, 2]
        + 0.8 * num[:, 3] * num[:, 4]
        + 0.7 * np.sin(2 * num[:, 5])
        + 0.5 * np.abs(num[:, 6])
        - 0.4
        + sum(effects[j][cats[:, j]] for j in range(4))
    )
    y = (rng.random(n) < 1 / (1 + np.exp(-2 * logit))).astype(np.int64)
    flip = np.zeros(n, dtype=bool)
    flip[rng.choice(n, int(0.02 * n), replace=False)] = True
    y_obs = np.where(flip, 1 - y, y)
    df = pd.DataFrame(num, columns=[f"x{i}" for i in range(N_NUM)])
    for j in range(N_CAT):
        df[f"c{j}"] = pd.Categorical.from_codes(cats[:, j], [f"v{v}" for v in range(levels[j])])
    df["label"] = y_obs
    df.to_parquet(path / "data.parquet")
    np.save(path / "flipped.npy", flip)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def phase_fit(path: Path) -> dict:
    from sklearn.ensemble import HistGradientBoostingClassifier

    df = pd.read_parquet(path / "data.parquet")
    X, y = df.drop(columns="label"), df["label"].to_numpy()
    t = time.perf_counter()
    HistGradientBoostingClassifier(categorical_features="from_dtype", random_state=0).fit(X, y)
    return {"seconds": time.perf_counter() - t, "peak_rss_mb": peak_rss_mb()}


def phase_scan(path: Path) -> dict:
    from sklearn.metrics import average_precision_score, roc_auc_score

    import poisonguard as pg

    df = pd.read_parquet(path / "data.parquet")
    flip = np.load(path / "flipped.npy")
    t = time.perf_counter()
    r = pg.scan(df, label="label", seed=0)
    secs = time.perf_counter() - t
    score = r.rows["score"].to_numpy()
    flagged = r.rows["flagged"].to_numpy()
    return {
        "seconds": secs,
        "peak_rss_mb": peak_rss_mb(),
        "auroc": float(roc_auc_score(flip, score)),
        "average_precision": float(average_precision_score(flip, score)),
        "flagged": int(flagged.sum()),
        "flag_precision": float(flip[flagged].mean()) if flagged.any() else None,
        "flag_recall": float(flagged[flip].mean()),
        "verdict": r.verdict,
        "detector_seconds": {k: v["seconds"] for k, v in r.info["detectors"].items()},
    }


def run_phase(name: str, path: Path) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--phase", name, "--dir", str(path)], check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def machine() -> str:
    cpu = "unknown cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB RAM, {platform.system()} {platform.machine()}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None)
    ap.add_argument("--phase", choices=["fit", "scan"], default=None)
    ap.add_argument("--dir", default=None)
    a = ap.parse_args()
    if a.phase:
        res = phase_fit(Path(a.dir)) if a.phase == "fit" else phase_scan(Path(a.dir))
        print(json.dumps(res))
        return
    import sklearn

    import poisonguard as pg

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp)
        t = time.perf_counter()
        make_data(a.rows, a.seed, path)
        print(f"data: {a.rows} rows in {time.perf_counter() - t:.1f} s", flush=True)
        fit = run_phase("fit", path)
        print(f"fit: {fit}", flush=True)
        scan = run_phase("scan", path)
        print(f"scan: {scan}", flush=True)
    ratio = scan["seconds"] / fit["seconds"]
    report = f"""# Scale benchmark

Command: `.venv/bin/python benchmarks/scale.py --rows {a.rows}` (or `make bench-scale`)

Machine: {machine()}; Python {platform.python_version()}, numpy {np.__version__}, pandas {pd.__version__},
scikit-learn {sklearn.__version__}, poisonguard {pg.__version__}. Date: {time.strftime("%Y-%m-%d")}.

Data: {a.rows:,} rows x 50 features (40 numeric, 10 categorical), nonlinear binary label, 2% of labels flipped
(seed {a.seed}). Each step runs in its own process reading the same Parquet file; peak RSS includes the data.

| step | wall time (s) | peak RSS (MB) |
|---|---|---|
| one HistGradientBoostingClassifier fit (defaults, native categoricals) | {fit["seconds"]:.1f} | {fit["peak_rss_mb"]:.0f} |
| `poisonguard.scan` (all default detectors) | {scan["seconds"]:.1f} | {scan["peak_rss_mb"]:.0f} |

**Ratio scan / fit: {ratio:.2f}** (target <= 1.5). **Scan peak RSS: {scan["peak_rss_mb"] / 1024:.2f} GB** (target <= 2 GB).

Per detector (s): {", ".join(f"{k} {v:.1f}" for k, v in scan["detector_seconds"].items())}.

Detection of the 2% flips: AUROC {scan["auroc"]:.4f}, average precision {scan["average_precision"]:.4f};
{scan["flagged"]} rows flagged (precision {scan["flag_precision"] or 0:.3f}, recall {scan["flag_recall"]:.3f});
verdict `{scan["verdict"]}`.
"""
    print(report)
    if a.out:
        Path(a.out).write_text(report)


if __name__ == "__main__":
    main()
