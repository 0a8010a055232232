"""The public API: ``poisonguard.scan`` on a DataFrame and the ``ScanResult`` it returns."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pandas.testing as pdt
import pytest

import poisonguard
from poisonguard.detectors import DEFAULT_DETECTORS
from synth import blobs, rare_noisy

N = 400
N_POISON = 40
VENDORS = ["acme", "bolt", "crux", "shady"]


def vendor_table(n_poison: int) -> tuple[pd.DataFrame, np.ndarray]:
    """400 rows from four vendors (100 each); 'shady' holds all ``n_poison`` flipped labels."""
    frame, _ = blobs(n=N, n_flip=0, seed=11)
    frame["vendor"] = np.repeat(VENDORS, N // len(VENDORS))
    rng = np.random.default_rng(11)
    poison = np.sort(rng.choice(np.flatnonzero(frame["vendor"] == "shady"), n_poison, replace=False))
    frame.loc[poison, "label"] = frame.loc[poison, "label"].map({"cat": "dog", "dog": "cat"})
    return frame, poison


@pytest.fixture(scope="module")
def vendored() -> tuple[pd.DataFrame, np.ndarray]:
    return vendor_table(N_POISON)


@pytest.fixture(scope="module")
def pristine(vendored) -> pd.DataFrame:
    return vendored[0].copy(deep=True)


@pytest.fixture(scope="module")
def result(vendored, pristine) -> poisonguard.ScanResult:
    return poisonguard.scan(vendored[0], label="label", source="vendor", seed=0)


@pytest.fixture(scope="module")
def vendor_scan(vendored, result):
    """``vendor_scan(n_poison)``: the poison positions and scan of ``vendor_table(n_poison)``, each run once."""
    scans = {N_POISON: (vendored[1], result)}

    def get(n_poison: int) -> tuple[np.ndarray, poisonguard.ScanResult]:
        if n_poison not in scans:
            frame, poison = vendor_table(n_poison)
            scans[n_poison] = (poison, poisonguard.scan(frame, label="label", source="vendor", seed=0))
        return scans[n_poison]

    return get


POISON_SIZES = [30, N_POISON]


def test_rows_are_aligned_with_the_input(vendored, result) -> None:
    frame, _ = vendored
    rows = result.rows
    assert len(rows) == len(frame)
    np.testing.assert_array_equal(rows["row"].to_numpy(), np.arange(len(frame)))
    np.testing.assert_array_equal(rows["label"].astype(str).to_numpy(), frame["label"].to_numpy())
    np.testing.assert_array_equal(rows["source"].to_numpy(), frame["vendor"].to_numpy())


def test_rows_have_scores_flags_reasons_and_one_score_per_detector(result) -> None:
    rows = result.rows
    expected = {"score", "flagged", "reasons"} | {f"{d}_score" for d in DEFAULT_DETECTORS}
    assert expected <= set(rows.columns)
    assert rows["flagged"].dtype == bool
    assert rows["score"].between(0, 1).all()
    for d in DEFAULT_DETECTORS:
        assert rows[f"{d}_score"].between(0, 1).all(), d
    assert rows["reasons"].map(lambda r: isinstance(r, str) and r != "").all()
    assert (rows.loc[~rows["flagged"], "reasons"] == "nothing unusual").mean() > 0.5


@pytest.mark.parametrize("n_poison", POISON_SIZES)
def test_the_poison_is_found(n_poison: int, vendor_scan) -> None:
    poison, res = vendor_scan(n_poison)
    flagged = res.rows["flagged"].to_numpy()
    assert flagged[poison].mean() >= 0.8
    clean = np.setdiff1d(np.arange(N), poison)
    assert flagged[clean].mean() <= 0.03
    assert res.verdict == "poisoned"
    est = res.summary["estimated_poisoned_fraction"]
    assert est["low"] <= n_poison / N <= est["high"] + 0.02


def test_flagged_lists_the_flagged_rows_most_suspicious_first(result) -> None:
    top = result.flagged
    assert top["flagged"].all()
    assert len(top) == result.rows["flagged"].sum() == result.summary["flagged"]
    assert top["score"].is_monotonic_decreasing


def test_summary_has_the_verdict_and_the_estimate(result) -> None:
    s = result.summary
    assert s["verdict"] in ("clean", "suspicious", "poisoned")
    assert s["verdict"] == result.verdict
    assert s["flagged"] == int(result.rows["flagged"].sum())
    assert s["rows"] == N
    est = s["estimated_poisoned_fraction"]
    assert 0.0 <= est["low"] <= est["value"] <= est["high"] <= 1.0
    assert est["detector"] in DEFAULT_DETECTORS


def test_clean_data_drops_the_flagged_rows_and_leaves_the_input_alone(vendored, pristine, result) -> None:
    frame, _ = vendored
    clean = result.clean_data()
    assert len(clean) == len(frame) - result.summary["flagged"]
    assert list(clean.columns) == list(frame.columns)
    kept = result.rows.loc[~result.rows["flagged"], "row"].to_numpy()
    pdt.assert_frame_equal(clean.reset_index(drop=True), frame.iloc[kept].reset_index(drop=True))
    clean.iloc[:, 0] = 0.0  # editing the copy must not reach the input
    pdt.assert_frame_equal(frame, pristine)


def test_to_json_writes_valid_json(result, tmp_path: Path) -> None:
    path = tmp_path / "summary.json"
    result.to_json(path)
    loaded = json.loads(path.read_text())
    assert loaded["verdict"] == result.verdict
    assert loaded["flagged"] == result.summary["flagged"]
    assert {r["source"] for r in loaded["by_source"]} == set(VENDORS)
    assert len(loaded["by_class"]) == 2


@pytest.mark.parametrize("n_poison", POISON_SIZES)
def test_by_source_points_at_the_vendor_that_holds_the_poison(n_poison: int, vendor_scan) -> None:
    _, res = vendor_scan(n_poison)
    by = res.by_source
    assert by is not None
    assert sorted(by["source"]) == VENDORS
    by = by.set_index("source")
    assert (by["rows"] == N // len(VENDORS)).all()
    assert by.loc["shady", "flagged"] >= 0.8 * n_poison
    assert by.loc["shady", "worse_than_rest"]
    assert not by.drop(index="shady")["worse_than_rest"].any()
    assert any("shady" in e for e in res.summary["evidence"])


def test_no_source_means_no_breakdown_by_source(vendored) -> None:
    res = poisonguard.scan(vendored[0].drop(columns="vendor"), label="label", detectors=["isolation"])
    assert res.by_source is None
    assert "source" not in res.rows.columns
    assert [c for c in res.rows.columns if c.endswith("_score")] == ["isolation_score"]


def test_same_seed_gives_identical_rows(vendored, result) -> None:
    again = poisonguard.scan(vendored[0], label="label", source="vendor", seed=0)
    pdt.assert_frame_equal(again.rows, result.rows)
    assert again.summary["verdict"] == result.summary["verdict"]


def test_another_seed_still_runs(vendored) -> None:
    other = poisonguard.scan(vendored[0], label="label", source="vendor", seed=7)
    assert len(other.rows) == N
    assert other.verdict in ("clean", "suspicious", "poisoned")
    assert other.summary["seed"] == 7


def test_public_names() -> None:
    assert sorted(poisonguard.__all__) == [
        "ConfigError",
        "Contract",
        "Dataset",
        "DetectorError",
        "Diff",
        "EvaluationResult",
        "IncrementalResult",
        "InputError",
        "Ledger",
        "LedgerError",
        "NotFittedError",
        "PoisonguardError",
        "Reference",
        "ScanResult",
        "Trigger",
        "Version",
        "__version__",
        "check_contract",
        "diff",
        "evaluate",
        "fit_reference",
        "infer_contract",
        "load_dataset",
        "row_fingerprints",
        "scan",
        "scan_incremental",
    ]
    for name in poisonguard.__all__:
        assert hasattr(poisonguard, name), name


def test_a_label_value_held_by_one_row_of_a_large_table_is_scanned() -> None:
    """Beyond 10,000 rows boosting stops early on a stratified holdout, which needs two rows of each class: a
    label value that occurs once (real tables have them) made the label model, the trigger check and the
    attacks' reference model fail; the red team leaves such rows out."""
    from poisonguard.attacks import get_attack

    rng = np.random.default_rng(0)
    n = 14_000  # folds of the label model and the trigger check's training rows both pass 10,000
    X = rng.normal(size=(n, 3))
    y = np.where(X[:, 0] > 0, "a", "b").astype(object)
    y[:3] = ["c", "d", "e"]
    frame = pd.DataFrame(X, columns=["x0", "x1", "x2"]).assign(label=y)
    frame.loc[5:200, ["x1", "x2"]] = [9.0, -9.0]  # a stamp, so that the trigger check fits its blind model
    frame.loc[5:200, "label"] = "a"
    result = poisonguard.scan(frame, label="label", seed=0)
    assert result.rows["flagged"].to_numpy()[5:201].mean() > 0.9
    data = poisonguard.load_dataset(frame, label="label")
    assert get_attack("boundary_flip").apply(data, rate=0.02, seed=0).mask.sum() == 280
    from poisonguard.redteam import split_and_baseline

    sim = split_and_baseline(data, seed=0, test_size=0.2, model=None, fpr=0.01)
    assert sim.train.n_rows + sim.test.n_rows == n - 3 and sim.baseline["accuracy"] > 0.95


def test_flags_on_a_doubted_rare_class_are_not_counted_as_poison() -> None:
    """Clean fraud-like data: the label model is least sure of the rare class's rows, so the flags of clean data
    gather there (a tenth of the class here). The class table expects them, estimates no poison, and a note says
    so before anyone drops them; the common class is expected to get its share of the other detectors' budget."""
    result = poisonguard.scan(rare_noisy(), label="label", seed=0)
    by = result.by_class.set_index("label")
    assert by.loc["yes", "flagged"] >= 5
    assert by.loc["yes", "expected_flagged"] > 5 * 0.01 * by.loc["yes", "rows"]
    assert by.loc["yes", "estimated_poisoned_fraction"] < 0.02
    assert any("class 'yes' are flagged" in note for note in result.summary["notes"])
