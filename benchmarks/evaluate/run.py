"""Evaluate benchmark: does ``poisonguard evaluate`` find a segment-targeted label flip that overall accuracy hides?

    PYTHONPATH=src .venv/bin/python benchmarks/evaluate/run.py          # 3 seeds, about 2 minutes on 2 cores

For each seed, UCI Adult (adult.data, 32,561 rows) is split 70/30 (stratified, seeded). The built-in model
(``FrameModel``: the scan's encoding plus gradient boosting) is trained on the clean training rows, on the same rows
after ``segment_targeted_flip`` (education = Bachelors; ``--rate`` of all training rows, taken from the segment's
'>50K' rows, get '<=50K'), and once more on the clean rows with another seed. Then

* ``evaluate(poisoned, test, baseline=clean)``: the overall accuracy change, whether the damaged segment is the top
  slice regression (and among the significant ones), its accuracy drop with its interval, the other slices flagged;
* ``evaluate(clean, test, baseline=clean with another seed)``: false discoveries, the regressions flagged when
  nothing was poisoned.

Raw records go to ``benchmarks/results/evaluate.jsonl``, the summary to ``benchmarks/results/evaluate.md``.
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

import numpy as np
import pandas as pd
from scipy.stats import binom
from sklearn.model_selection import train_test_split

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from datasets import adult  # noqa: E402

import poisonguard as pg  # noqa: E402
from poisonguard.attacks import get_attack  # noqa: E402
from poisonguard.io import load_dataset  # noqa: E402
from poisonguard.redteam import FrameModel  # noqa: E402
from poisonguard.slices import Condition, Slice  # noqa: E402
from poisonguard.stats import benjamini_hochberg  # noqa: E402

RESULTS = HERE.parent / "results"
# name -> (column, value, rate). Bachelors is the issue's example (16% of the rows): the model shrugs off a 2% flip
# and its accuracy there falls steeply between 2% and 2.5%, so three rates show where detection starts and what
# overall accuracy does meanwhile. Masters (5% of the rows) can lose more while overall accuracy stays within a point.
SCENARIOS = {
    "bachelors@0.02": ("education", "Bachelors", 0.02),
    "bachelors@0.0225": ("education", "Bachelors", 0.0225),
    "bachelors@0.025": ("education", "Bachelors", 0.025),
    "masters@0.01": ("education", "Masters", 0.01),
}


def _commit() -> str:
    import subprocess

    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE)
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def _fit(frame: pd.DataFrame, seed: int) -> FrameModel:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return FrameModel(seed=seed).fit(frame.drop(columns="label"), frame["label"])


def _position(records: list[dict[str, Any]], text: str) -> int | None:
    """1-based rank of the slice ``text`` in a ranked list, or None."""
    for i, r in enumerate(records, 1):
        if r["slice"] == text:
            return i
    return None


def one_seed(df: pd.DataFrame, seed: int, scenarios: list[str], n_boot: int) -> list[dict[str, Any]]:
    tr, te = train_test_split(np.arange(len(df)), test_size=0.3, random_state=seed, stratify=df["label"])
    train, test = df.iloc[tr].reset_index(drop=True), df.iloc[te].reset_index(drop=True)
    ds = load_dataset(train, label="label")
    clean = _fit(train, seed)
    clean_other = _fit(train, seed + 1000)
    named = sorted({f"{SCENARIOS[sc][0]}={SCENARIOS[sc][1]}" for sc in scenarios})
    null = pg.evaluate(clean_other, test, label="label", baseline=clean, seed=seed, n_boot=n_boot, slices=named)
    null_acc = next(r for r in null.comparison if r["metric"] == "accuracy")
    records = []
    for scenario in scenarios:
        column, value, rate = SCENARIOS[scenario]
        text = f"{column} = {value!r}"
        out = get_attack("segment_targeted_flip", column=column, value=value).apply(ds, rate=rate, seed=seed)
        in_segment = (train[column] == value).to_numpy()
        t0 = time.perf_counter()
        poisoned = _fit(out.frame, seed)
        fit_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        res = pg.evaluate(
            poisoned, test, label="label", baseline=clean, seed=seed, n_boot=n_boot, slices=[f"{column}={value}"]
        )
        user = res.user_slices[0]
        eval_s = time.perf_counter() - t0
        acc = next(r for r in res.comparison if r["metric"] == "accuracy")
        seg = next((r for r in res.slice_regressions if r["slice"] == text), None)
        sig_slices = [r for r in res.slice_regressions if r["significant"]]
        top = res.slice_regressions[0]["slice"] if res.slice_regressions else None
        seg_test = (test[column] == value).to_numpy()
        # a flagged slice that overlaps the segment inherits its damage; is it still worse without the segment rows?
        feats = test.drop(columns="label")
        truth = test["label"].to_numpy()
        right_new = poisoned.predict(feats) == truth
        right_base = clean.predict(feats) == truth
        p_rest = []
        for r in sig_slices:
            if text in r["slice"]:
                continue
            m = Slice(tuple(Condition(**c) for c in r["conditions"])).mask(feats) & ~seg_test
            worse, better = int((m & ~right_new & right_base).sum()), int((m & right_new & ~right_base).sum())
            p_rest.append(binom.sf(worse - 1, worse + better, 0.5) if worse + better else 1.0)
        still = int((benjamini_hochberg(np.asarray(p_rest)) <= 0.05).sum()) if p_rest else 0
        records.append(
            {
                "scenario": scenario,
                "segment": text,
                "seed": seed,
                "rate": rate,
                "flipped_rows": int(out.mask.sum()),
                "segment_train_rows": int(in_segment.sum()),
                "segment_flipped_share": float(out.mask[in_segment].mean()),
                "test_rows": len(test),
                "segment_test_rows": int(seg_test.sum()),
                "baseline_accuracy": acc["baseline"],
                "poisoned_accuracy": acc["new"],
                "accuracy_change_pt": 100 * acc["delta"],
                "accuracy_change_ci_pt": [100 * v for v in acc["ci"]],
                "accuracy_regression_significant": acc["significant"],
                "accuracy_p": acc["p_value"],
                "segment_rank_in_slice_regressions": _position(res.slice_regressions, text),
                "segment_significant": bool(seg and seg["significant"]),
                "segment_baseline_accuracy": seg["baseline"] if seg else None,
                "segment_poisoned_accuracy": seg["new"] if seg else None,
                "segment_drop_pt": 100 * seg["drop"] if seg else None,
                "segment_drop_ci_pt": [-100 * seg["ci"][1], -100 * seg["ci"][0]] if seg else None,
                "segment_q": seg["q_value"] if seg else None,
                "top_slice_regression": top,
                "top_slice_is_segment_or_part": bool(top and text in top),
                "significant_slice_regressions": res.settings["slice_regressions_found"],
                "significant_slices_listed": len(sig_slices),
                "outside_slices_still_worse_without_segment": still,
                "significant_slices_outside_segment": [r["slice"] for r in sig_slices if text not in r["slice"]],
                "significant_regressions": len(res.significant_regressions),
                "named_segment_significant": user["significant"],
                "named_segment_p": user["p_value"],
                "segment_rank_in_weak_slices": _position(res.weak_slices, text),
                "top_weak_slice": res.weak_slices[0]["slice"] if res.weak_slices else None,
                "slices_tested": res.settings["slices_tested"],
                "null_accuracy_change_pt": 100 * null_acc["delta"],
                "null_significant_regressions": len(null.significant_regressions),
                "null_significant_slice_regressions": null.settings["slice_regressions_found"],
                "null_named_slices_significant": sum(u["significant"] for u in null.user_slices),
                "null_flagged": [
                    f"{r['rule']}: {r['metric']} {r.get('slice') or ''}".strip() for r in null.significant_regressions
                ],
                "fit_seconds": round(fit_s, 1),
                "evaluate_seconds": round(eval_s, 1),
            }
        )
    return records


def _mean_sd(values: list[float]) -> str:
    v = np.asarray([x for x in values if x is not None], dtype=float)
    if v.size == 0:
        return "-"
    return f"{v.mean():.2f} ± {v.std(ddof=1) if v.size > 1 else 0:.2f}"


def _fmt(v: Any, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def write_markdown(records: list[dict[str, Any]], args: argparse.Namespace, path: Path) -> None:
    seeds = sorted({r["seed"] for r in records})
    lines = [
        "# Evaluate benchmark: segment-targeted flip on adult",
        "",
        f"Command: `PYTHONPATH=src python benchmarks/evaluate/run.py --seeds {' '.join(map(str, args.seeds))} "
        f"--n-boot {args.n_boot}` (commit {_commit()}; {platform.machine()}, Python {platform.python_version()}, "
        f"poisonguard {pg.__version__}).",
        "",
        "Data: UCI Adult `adult.data` (Becker & Kohavi 1996, CC BY 4.0), 32,561 rows, split 70/30 (stratified) per "
        "seed. Attack: `segment_targeted_flip` with `column='education'`: the rate is a share of all training rows, "
        "taken from the segment's '>50K' rows and relabelled '<=50K'. Model: the built-in `FrameModel` (the scan's "
        "encoding plus gradient boosting). The poisoned model is evaluated against the model trained on the clean "
        f"rows with the same seed ({args.n_boot} paired bootstrap resamples, alpha 0.05, slices of at least 1% of "
        "the test rows); the null comparison is the clean model of another seed against the clean model.",
        "",
        "Slices that do not name the segment but hold many of its rows (married men, managers, professionals: "
        "groups where degrees are common) inherit its damage and are flagged too; the benchmark removes the "
        "segment's rows from each and tests again, to count the ones that are worse for another reason.",
        "",
    ]
    for scenario in dict.fromkeys(r["scenario"] for r in records):
        rs = [r for r in records if r["scenario"] == scenario]
        n = len(rs)
        seg = rs[0]["segment"]
        lines += [
            f"## {seg}, rate {rs[0]['rate']}",
            "",
            f"- overall accuracy change below 1 point: {sum(abs(r['accuracy_change_pt']) < 1 for r in rs)} of {n} seeds",
            f"- {seg} among the significant slice regressions: {sum(r['segment_significant'] for r in rs)} of {n}",
            f"- top slice regression is {seg} or a part of it: {sum(r['top_slice_is_segment_or_part'] for r in rs)} "
            f"of {n} (exactly {seg}: {sum(r['segment_rank_in_slice_regressions'] == 1 for r in rs)})",
            f"- named in advance (`--slice {rs[0]['segment'].replace(' = ', '=').replace(chr(39), '')}`, tested alone): "
            f"significant in {sum(r['named_segment_significant'] for r in rs)} of {n} "
            f"(p {', '.join(format(r['named_segment_p'], '.2g') for r in rs)})",
            f"- overall accuracy regression significant (McNemar, Holm): "
            f"{sum(r['accuracy_regression_significant'] for r in rs)} of {n}",
            "",
            "| quantity | mean ± sd over seeds |",
            "|---|---|",
            f"| training rows flipped | {_mean_sd([r['flipped_rows'] for r in rs])} |",
            f"| share of the segment's training rows flipped | {_mean_sd([r['segment_flipped_share'] for r in rs])} |",
            f"| segment rows in the test split | {_mean_sd([r['segment_test_rows'] for r in rs])} |",
            f"| clean model accuracy (%) | {_mean_sd([100 * r['baseline_accuracy'] for r in rs])} |",
            f"| overall accuracy change (pt) | {_mean_sd([r['accuracy_change_pt'] for r in rs])} |",
            f"| segment accuracy drop (pt) | {_mean_sd([r['segment_drop_pt'] for r in rs])} |",
            f"| significant slice regressions | {_mean_sd([r['significant_slice_regressions'] for r in rs])} |",
            f"| of the top 20, slices without the segment in their conditions | "
            f"{_mean_sd([len(r['significant_slices_outside_segment']) for r in rs])} |",
            f"| of those, still significantly worse once the segment's rows are removed (McNemar, BH) | "
            f"{_mean_sd([r['outside_slices_still_worse_without_segment'] for r in rs])} |",
            f"| evaluate seconds (model + baseline, {args.n_boot} resamples) | "
            f"{_mean_sd([r['evaluate_seconds'] for r in rs])} |",
            "",
            "| seed | acc. change (pt) [95% CI] | acc. regression | segment rank | segment drop (pt) [95% CI] | q | "
            "top slice regression | significant slices (how many of the top 20 do not contain the segment) | top weak slice |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in rs:
            ci = r["accuracy_change_ci_pt"]
            sci = r["segment_drop_ci_pt"] or [None, None]
            outside = r["significant_slices_outside_segment"]
            lines.append(
                f"| {r['seed']} | {r['accuracy_change_pt']:+.2f} [{ci[0]:+.2f}, {ci[1]:+.2f}] | "
                f"{'significant' if r['accuracy_regression_significant'] else 'not significant'} "
                f"(p {r['accuracy_p']:.2g}) | {r['segment_rank_in_slice_regressions'] or '-'} | "
                f"{_fmt(r['segment_drop_pt'], '.1f')} [{_fmt(sci[0], '.1f')}, {_fmt(sci[1], '.1f')}] | "
                f"{_fmt(r['segment_q'], '.2g')} | {r['top_slice_regression'] or '-'} | "
                f"{r['significant_slice_regressions']} ({len(outside)} of the top {r['significant_slices_listed']}"
                f"{': ' + '; '.join(outside[:4]) if outside else ''}{' ...' if len(outside) > 4 else ''}) | "
                f"{r['top_weak_slice'] or '-'} |"
            )
        lines.append("")
    nulls = {r["seed"]: r for r in records}
    named_all = sorted({r["segment"] for r in records})
    lines += [
        "## Clean against clean (false discoveries)",
        "",
        f"Two clean models (seeds s and s + 1000), {len(seeds)} seeds: significant regressions of any kind in "
        f"{sum(nulls[s]['null_significant_regressions'] > 0 for s in seeds)} of {len(seeds)} comparisons; the "
        f"named segments ({', '.join(named_all)}) significant in "
        f"{sum(nulls[s]['null_named_slices_significant'] for s in seeds)} of {len(seeds) * len(named_all)} tests.",
        "",
        "| seed | acc. change (pt) | significant regressions | significant slice regressions | flagged |",
        "|---|---|---|---|---|",
    ]
    for s in seeds:
        r = nulls[s]
        lines.append(
            f"| {s} | {r['null_accuracy_change_pt']:+.2f} | {r['null_significant_regressions']} | "
            f"{r['null_significant_slice_regressions']} | {'; '.join(r['null_flagged']) or '-'} |"
        )
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--scenarios", nargs="+", default=list(SCENARIOS), choices=list(SCENARIOS))
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    df = adult()
    records = []
    for seed in args.seeds:
        for rec in one_seed(df, seed, args.scenarios, args.n_boot):
            records.append(rec)
            print(json.dumps(rec), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    with (args.out / "evaluate.jsonl").open("w") as fh:
        for rec in records:
            fh.write(json.dumps(rec) + "\n")
    write_markdown(records, args, args.out / "evaluate.md")
    print(f"wrote {args.out / 'evaluate.md'}")


if __name__ == "__main__":
    main()
