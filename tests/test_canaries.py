"""Canaries: seeded poison planted in a copy, rescanned, recall reported per family; the input is untouched."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.datasets import make_classification

import poisonguard
from poisonguard.canaries import FAMILIES, canary_count, plant


def _frame(n: int = 600) -> pd.DataFrame:
    X, y = make_classification(n_samples=n, n_features=6, n_informative=4, class_sep=2.5, random_state=0)
    df = pd.DataFrame(X, columns=[f"x{i}" for i in range(6)])
    df["colour"] = np.where(X[:, 0] > 0, "red", "blue")
    df["label"] = np.where(y == 1, "yes", "no")
    return df


def test_plant_marks_every_family_and_leaves_the_input_alone() -> None:
    df = _frame()
    before = df.copy(deep=True)
    ds = poisonguard.load_dataset(df, label="label")
    planted, truth = plant(ds, seed=0)
    pd.testing.assert_frame_equal(df, before)
    assert len(truth) == planted.n_rows
    k = canary_count(ds.n_rows)
    for family in FAMILIES:
        assert (truth == family).sum() == k, family
    # original rows that were not chosen are unchanged
    untouched = np.flatnonzero(truth[: ds.n_rows] == "")
    pd.testing.assert_frame_equal(
        planted.frame.iloc[untouched].reset_index(drop=True)[["x1", "x2"]],
        df.iloc[untouched].reset_index(drop=True)[["x1", "x2"]],
    )


def test_scan_reports_canary_recall_per_family() -> None:
    result = poisonguard.scan(_frame(), label="label", canaries=True, seed=0)
    report = result.summary["canaries"]
    assert set(report["families"]) == set(FAMILIES)
    assert report["planted"] == sum(f["planted"] for f in report["families"].values())
    assert 0.0 <= report["recall"] <= 1.0
    # far-out rows and floods of copies with the wrong label are what the scan is built to catch
    assert report["families"]["out_of_distribution"]["recall"] >= 0.8
    assert report["families"]["duplicate_flood"]["recall"] >= 0.8
    assert report["flagged_fraction_of_original_rows"] <= 0.05
