"""The representation-split detector: a class whose rows fall in two groups, judged against the other classes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

import poisonguard as pg
from poisonguard.representation import class_splits, split_row_pvalues


def classes(
    n_classes: int = 10, per_class: int = 300, d: int = 24, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.random.Generator]:
    """Gaussian classes with their own correlated covariance (clean classes differ in shape, not just mean) in
    the first ``d - 4`` features; the last four are units that clean rows barely use, as many of a ReLU layer's."""
    rng = np.random.default_rng(seed)
    parts, ys = [], []
    k = d - 4
    for c in range(n_classes):
        A = rng.normal(size=(k, k)) / np.sqrt(k)
        content = rng.normal(size=(per_class, k)) @ A + rng.normal(scale=3.0, size=k)
        parts.append(np.hstack([content, np.abs(rng.normal(scale=0.3, size=(per_class, 4)))]))
        ys.append(np.full(per_class, c))
    return np.vstack(parts), np.concatenate(ys), rng


def backdoor(E: np.ndarray, y: np.ndarray, rng: np.random.Generator, rate: float, target: int = 3) -> tuple:
    """Rows of other classes relabelled to the target; the trigger switches on the units clean rows leave idle
    and the rows keep their source class's content, as a network's features of triggered images do."""
    E, y = E.copy(), y.copy()
    rows = rng.choice(np.flatnonzero(y != target), int(rate * len(y)), replace=False)
    E[rows, -4:] += rng.uniform(1.5, 2.5, size=4)
    y[rows] = target
    mask = np.zeros(len(y), dtype=bool)
    mask[rows] = True
    return E, y, mask


def test_finds_the_target_class_and_rate_at_low_and_high_shares() -> None:
    for rate in (0.02, 0.1, 0.2):  # 2% of the data is a sixth of the target class; 20% is two thirds of it
        E, y, rng = classes(seed=1)
        E, y, mask = backdoor(E, y, rng, rate)
        splits = class_splits(E, y, seed=0)
        top = min(splits, key=lambda s: s.pvalue)
        assert top.label == 3
        true_share = mask[y == 3].mean()
        assert abs(top.share - true_share) < 0.03
        assert top.pvalue < 1e-3
        p = np.ones(len(y))
        for s in splits:
            p[s.rows] = split_row_pvalues(s)
        assert roc_auc_score(mask, -np.log(p)) > 0.99
        # the other classes stay unremarkable
        assert all(s.pvalue > 0.01 for s in splits if s.label != 3)


def test_scan_flags_the_poison_and_explains_it() -> None:
    E, y, rng = classes(seed=2)
    E, y, mask = backdoor(E, y, rng, 0.05)
    result = pg.scan(pd.DataFrame({"label": y.astype(str)}), label="label", embeddings=E, seed=0)
    info = result.info["detectors"]["representation_split"]
    assert info["classes"][0]["class"] == "3"
    flagged = result.rows["flagged"].to_numpy()
    assert flagged[mask].mean() > 0.95
    assert flagged[~mask].mean() < 0.02
    assert result.verdict == "poisoned"
    reason = result.rows.loc[mask & flagged, "reasons"].iloc[0]
    assert "sets apart from the rest of the class" in reason and "'3'" in reason


def test_clean_classes_are_not_split_and_few_classes_abstain() -> None:
    E, y, _ = classes(seed=3)
    result = pg.scan(pd.DataFrame({"label": y}), label="label", embeddings=E, seed=0)
    assert result.info["detectors"]["representation_split"]["flagged"] == 0
    E, y, _ = classes(n_classes=3, seed=4)
    result = pg.scan(pd.DataFrame({"label": y}), label="label", embeddings=E, seed=0)
    info = result.info["detectors"]["representation_split"]
    assert "abstained" in info and info["flagged"] == 0


def test_deterministic_per_seed() -> None:
    E, y, rng = classes(seed=5)
    E, y, _ = backdoor(E, y, rng, 0.05)
    a = class_splits(E, y, seed=7)
    b = class_splits(E, y, seed=7)
    assert all(np.array_equal(s.suspect, t.suspect) and s.pvalue == t.pvalue for s, t in zip(a, b, strict=True))


def test_a_significant_split_without_flags_makes_the_verdict_suspicious() -> None:
    from poisonguard.detectors.representation_split import finding
    from poisonguard.scanner import _findings

    def judge(classes: list[dict], level: str, evidence: list[str]) -> tuple[str, list[str]]:
        line = finding(classes)
        return _findings({"representation_split": {"finding": line} if line else {}}, level, evidence)

    row = {"class": "7", "rows": 800, "separate_group": 120, "share": 0.15, "separation": 9.1, "z": 6.8}
    level, evidence = judge([{**row, "pvalue": 0.004}], "clean", ["0 rows flagged"])
    assert level == "suspicious" and "'7'" in evidence[0] and "120 rows (15% of the class)" in evidence[0]
    level, evidence = judge([{**row, "pvalue": 0.3}], "clean", ["0 rows flagged"])
    assert level == "clean" and evidence == ["0 rows flagged"]
    # short of the level at which rows are flagged, still reported: the class, its group, what to do
    level, evidence = judge([{**row, "pvalue": 0.3}, {**row, "class": "2", "pvalue": 0.03}], "clean", ["0 rows"])
    assert level == "suspicious" and "'2'" in evidence[0] and "short of the 0.01 level" in evidence[0]
    assert "120 rows (15% of the class)" in evidence[0] and "representation_split_score column" in evidence[0]
    assert "too weak to flag" not in evidence[0]
    level, evidence = judge([{**row, "pvalue": 0.06}], "clean", ["0 rows flagged"])
    assert level == "clean"
    level, evidence = judge([{**row, "pvalue": 1e-4}], "poisoned", ["label: 90 rows"])
    assert level == "poisoned" and len(evidence) == 2
    assert _findings({"representation_split": {"abstained": "2 classes"}}, "clean", []) == ("clean", [])


def test_a_reported_class_leads_the_ranking_without_flagging(tmp_path: Path) -> None:
    """A split short of the flag level but reported: its separate group ranks right after the flagged rows."""
    E, y, rng = classes(seed=2)
    E, y, mask = backdoor(E, y, rng, 0.05)
    frame = pd.DataFrame({"label": y.astype(str)})
    # the label model learns the trigger like any feature: the split alone sees this poison
    declared = pg.scan(
        frame, label="label", embeddings=E, seed=0, detectors=["label_consistency", "representation_split"]
    )
    assert declared.rows["flagged"].to_numpy()[mask].mean() > 0.95
    # a level the class cannot reach: reported, not flagged
    spec = {"label_consistency": {}, "representation_split": {"alpha": 1e-12, "note": 0.5}}
    reported = pg.scan(frame, label="label", embeddings=E, seed=0, detectors=spec)
    info = reported.info["detectors"]["representation_split"]
    assert info["flagged"] == 0 and info["review_rows"] > 0
    assert reported.verdict == "suspicious" and "short of the 1e-12 level" in reported.summary["evidence"][0]
    rows = reported.rows
    flagged, score = rows["flagged"].to_numpy(), rows["score"].to_numpy()
    assert flagged[mask].mean() < 0.1
    # the poison leads the ranking all the same, just under the flag threshold, and says why
    assert roc_auc_score(mask, score) > 0.99
    led = mask & ~flagged
    assert (score[led] < reported.summary["threshold"]).all()
    assert "short of the level at which it would be flagged: review" in rows.loc[led, "reasons"].iloc[0]
    # without the lead the same flags rank the poison among the label model's doubts only, which rank it worse
    assert roc_auc_score(mask, score) > roc_auc_score(mask, rows["label_consistency_score"]) + 0.02
    # the rows named for review: listed, written out, and left out of the clean data on request
    review = rows["review"].to_numpy()
    assert not (review & flagged).any() and (review | flagged)[mask].mean() > 0.95 and review[~mask].mean() < 0.01
    assert len(reported.clean_data()) == len(frame) - flagged.sum()
    assert len(reported.clean_data(review=True)) == len(frame) - (flagged | review).sum()
    paths = reported.save(tmp_path)
    assert (tmp_path / "review.csv") in paths
    assert len(pd.read_csv(tmp_path / "review.csv")) == review.sum()
    from rich.console import Console

    from poisonguard.cli import print_summary

    console = Console(record=True, width=200)
    print_summary(console, reported, top=3)
    assert f"Top 3 of {review.sum()} rows to review (not flagged)" in console.export_text()
    from poisonguard.report.scan import ScanReportData, render

    page = render(ScanReportData.load(tmp_path))  # from the saved files, as `poisonguard report` reads them
    assert "Rows to review" in page and f"{review.sum():,} rows are not flagged" in page
    assert "Rows to review" not in render(ScanReportData.from_result(declared))
    declared.save(tmp_path)  # nothing under review: the earlier review.csv would be stale
    assert not (tmp_path / "review.csv").exists() and not declared.rows["review"].any()
