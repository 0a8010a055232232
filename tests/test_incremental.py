"""Incremental scans: new rows judged by detectors fitted on trusted rows only, with a batch test and sources."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from conftest import make_table
from poisonguard.errors import InputError
from poisonguard.incremental import Reference, fit_reference, scan_incremental
from synth import messages

N_TRUSTED, N_NEW, N_FLIP = 900, 450, 30


@pytest.fixture(scope="module")
def tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    full = make_table(N_TRUSTED + N_NEW, seed=11)
    full.insert(0, "uid", np.arange(len(full)))
    full["vendor"] = "in-house"
    trusted = full.iloc[:N_TRUSTED].reset_index(drop=True)
    new = full.iloc[N_TRUSTED:].reset_index(drop=True)
    new["vendor"] = np.where(np.arange(N_NEW) % 2 == 0, "acme", "globex")
    return trusted, new


@pytest.fixture(scope="module")
def ref(tables: tuple[pd.DataFrame, pd.DataFrame]) -> Reference:
    return fit_reference(tables[0], label="label", id="uid", source="vendor", seed=0)


def flip(frame: pd.DataFrame, rows: np.ndarray) -> pd.DataFrame:
    out = frame.copy()
    out.loc[rows, "label"] = out.loc[rows, "label"].map({"churn": "stay", "stay": "churn"}).to_numpy()
    return out


def test_clean_batch_is_not_significant(ref: Reference, tables: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    res = scan_incremental(tables[1], baseline=ref, label="label", seed=0)
    batch = res.summary["batch"]
    assert res.summary["scored"] == N_NEW and (res.rows["status"] == "added").all()
    assert not batch["significant"] and batch["pvalue"] > 0.05 and 0.4 < batch["auc"] < 0.6
    assert res.verdict == "clean"
    assert res.rows["flagged"].mean() <= 0.03


def test_poisoned_batch_is_flagged_and_significant(ref: Reference, tables: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    rng = np.random.default_rng(3)
    planted = np.sort(rng.choice(N_NEW, N_FLIP, replace=False))
    res = scan_incremental(flip(tables[1], planted), baseline=ref, label="label", seed=0)
    truth = np.isin(res.rows["row"].to_numpy(), planted)
    assert roc_auc_score(truth, res.rows["score"]) > 0.95
    flagged = res.rows["flagged"].to_numpy()
    assert flagged[truth].mean() >= 0.7 and flagged[~truth].mean() <= 0.03
    batch = res.summary["batch"]
    assert batch["significant"] and batch["pvalue"] < 1e-6 and batch["excess_flagged_fraction"] > 0.03
    assert res.verdict == "poisoned"


def test_only_new_and_changed_rows_are_scored(ref: Reference, tables: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    trusted, new = tables
    changed = flip(trusted, np.array([5, 6, 7]))  # relabelled trusted rows: the classic channel
    snapshot = pd.concat([changed, new.iloc[:40]], ignore_index=True).sample(frac=1.0, random_state=2)
    snapshot = snapshot.reset_index(drop=True)
    res = scan_incremental(snapshot, baseline=ref, label="label", seed=0)
    assert res.summary["scored"] == 43 and res.summary["diff"]["unchanged"] == N_TRUSTED - 3
    rows = res.rows.set_index("id")
    assert sorted(rows.index[rows["status"] == "changed"]) == [5, 6, 7]
    assert (rows.loc[[5, 6, 7], "flagged"]).all()
    assert res.summary["diff"]["label_changes"] == 3
    assert (snapshot.loc[res.rows["row"], "uid"].to_numpy() == res.rows["id"].to_numpy()).all()


def test_the_reference_is_fitted_on_trusted_rows_only(
    ref: Reference, tables: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    label_model = next(d for d in ref.detectors if d.name == "label_consistency")
    before = label_model.proba_
    scan_incremental(flip(tables[1], np.arange(0, N_NEW, 3)), baseline=ref, label="label", seed=0)
    assert label_model.proba_ is before and before.shape[0] == N_TRUSTED  # transfer leaves the fit alone
    assert ref.context.n == N_TRUSTED


def test_suspicion_is_attributed_to_the_poisoned_source(
    ref: Reference, tables: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    new = tables[1]
    acme = np.flatnonzero(new["vendor"].to_numpy() == "acme")
    res = scan_incremental(flip(new, acme[::8]), baseline=ref, label="label", seed=0)
    src = res.by_source.set_index("source")
    assert bool(src.loc["acme", "worse_than_trusted"]) and not bool(src.loc["globex", "worse_than_trusted"])
    assert src.loc["acme", "auc_vs_trusted"] > src.loc["globex", "auc_vs_trusted"]
    assert src.loc["acme", "flagged"] > 3 * max(src.loc["globex", "flagged"], 1)


def test_baseline_from_a_file_and_outputs(tables: tuple[pd.DataFrame, pd.DataFrame], tmp_path) -> None:
    trusted, new = tables
    path = tmp_path / "trusted.csv"
    trusted.to_csv(path, index=False)
    res = scan_incremental(flip(new, np.arange(0, 60, 2)), baseline=path, label="label", id="uid", seed=0)
    assert res.summary["trusted"]["rows"] == N_TRUSTED
    written = res.save(tmp_path)
    assert [p.name for p in written] == ["rows.csv", "flagged.csv", "summary.json"]
    assert len(pd.read_csv(tmp_path / "flagged.csv")) == int(res.rows["flagged"].sum())


def test_a_class_the_trusted_data_never_had_is_an_input_error(
    ref: Reference, tables: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    new = tables[1].copy()
    new.loc[7, "label"] = "cancel"
    with pytest.raises(InputError, match=r"label column 'label' holds 1 values the trusted data never has .*row 7"):
        scan_incremental(new, baseline=ref, label="label")


def test_a_snapshot_with_nothing_new_scores_nothing(ref: Reference, tables: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    res = scan_incremental(tables[0].iloc[::-1], baseline=ref, label="label")
    assert res.summary["scored"] == 0 and len(res.rows) == 0
    assert res.verdict == "clean" and res.summary["batch"]["pvalue"] == 1.0


def test_conformal_p_values_are_shares_of_trusted_rows() -> None:
    from poisonguard.incremental import conformal

    cal = np.array([[0.01], [0.2], [0.2], [0.5], [1.0]])
    p = conformal(np.array([[0.01], [0.2], [0.35], [0.005], [1.0]]), cal)[:, 0]
    assert np.allclose(p[:2], [2 / 6, 4 / 6])  # (trusted rows at or below + 1) / (n + 1)
    assert 4 / 6 < p[2] < 5 / 6 and 0 < p[3] < p[0] and p[4] == 1.0  # interpolated, order kept
    uniform = np.random.default_rng(0).uniform(size=(2000, 1)) ** 3  # a miscalibrated null
    fresh = np.random.default_rng(1).uniform(size=(2000, 1)) ** 3
    assert abs((conformal(fresh, uniform) <= 0.05).mean() - 0.05) < 0.015


def test_transfer_needs_a_fitted_detector(ref: Reference) -> None:
    from poisonguard.detectors import get_detector
    from poisonguard.errors import NotFittedError

    with pytest.raises(NotFittedError, match="before transfer"):
        get_detector("class_outlier").transfer(ref.context, ref.context)


def test_junk_text_in_a_new_batch_is_judged_against_the_trusted_words() -> None:
    """A new row's word is rare when no trusted row holds it, a trusted row's when no other trusted row does:
    the same rule on both sides, so the trusted rows calibrate the new ones and clean new messages stay clean."""
    trusted, _ = messages(seed=1, n=1500, n_junk=0)
    new, junk = messages(seed=2, n=400, n_junk=20)
    ref = fit_reference(trusted, label="label", types={"text": "text"}, seed=0)
    res = scan_incremental(new, baseline=ref, label="label", types={"text": "text"}, seed=0)
    flagged = res.rows.set_index("row")["flagged"].reindex(np.arange(len(new))).to_numpy()
    truth = np.isin(np.arange(len(new)), junk)
    assert flagged[truth].mean() >= 0.9 and flagged[~truth].mean() <= 0.03
    assert res.summary["detectors"]["isolation"]["text_view"] == ["text"]


def test_confident_flips_that_the_whole_data_learns_are_found_against_the_snapshot() -> None:
    """A fifth of a batch flipped where a clean model is surest: scanned with the trusted rows, the flips are
    learned (the union's model sides with them and few are flagged); judged by models of the trusted rows alone,
    every one is flagged, and each flagged row names the detector that flagged it."""
    import poisonguard as pg
    from poisonguard.attacks import get_attack

    full = make_table(N_TRUSTED + N_NEW, seed=11)
    trusted, new = full.iloc[:N_TRUSTED].reset_index(drop=True), full.iloc[N_TRUSTED:].reset_index(drop=True)
    poisoned = get_attack("confident_flip").apply(pg.load_dataset(new, label="label"), rate=0.2, seed=0)
    planted = np.flatnonzero(poisoned.mask)
    res = scan_incremental(poisoned.frame, baseline=fit_reference(trusted, label="label", seed=0), label="label")
    truth = np.isin(res.rows["row"].to_numpy(), planted)
    flagged = res.rows["flagged"].to_numpy()
    assert flagged[truth].mean() >= 0.95 and res.verdict == "poisoned"
    assert not res.rows.loc[flagged, "reasons"].eq("nothing unusual").any()
    whole = pg.scan(pd.concat([trusted, poisoned.frame], ignore_index=True), label="label", seed=0)
    assert whole.rows["flagged"].to_numpy()[N_TRUSTED:][planted].mean() <= 0.5
