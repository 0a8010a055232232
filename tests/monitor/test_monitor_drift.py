"""Drift statistics against scipy, and the effect-size gate: a million unchanged rows raise nothing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.spatial.distance import jensenshannon

from monitor_data import draw
from poisonguard.errors import InputError
from poisonguard.monitor import DriftThresholds, Profile, compare
from poisonguard.monitor.drift import benjamini_hochberg, chi2_two_sample, js_distance, ks_test, psi, wasserstein


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return draw(20_000, seed=0)


@pytest.fixture(scope="module")
def profile(reference: pd.DataFrame) -> Profile:
    return Profile.from_frame(reference, label="label", predictions=reference["label"].to_numpy(), seed=0)


def test_statistics_match_scipy() -> None:
    rng = np.random.default_rng(0)
    p, q = np.array([10, 20, 30, 40]), np.array([25, 25, 25, 25])
    assert js_distance(p, q) == pytest.approx(jensenshannon(p / p.sum(), q / q.sum(), base=2))
    stat, pval = chi2_two_sample(p, q)
    ref = stats.chi2_contingency(np.vstack([p, q]), correction=False)
    assert stat == pytest.approx(ref.statistic) and pval == pytest.approx(ref.pvalue)
    a, b = rng.normal(0, 1, 500), rng.normal(0.3, 1, 700)
    d, pk = ks_test(a, b)
    ks = stats.ks_2samp(a, b, method="asymp")
    assert d == pytest.approx(ks.statistic) and pk == pytest.approx(ks.pvalue)
    assert wasserstein(a, b, 2.0) == pytest.approx(stats.wasserstein_distance(a, b) / 2.0)
    # PSI by hand: sum (q - p) ln(q / p)
    ps, qs = p / p.sum(), q / q.sum()
    assert psi(p, q) == pytest.approx(np.sum((qs - ps) * np.log(qs / ps)))
    # vectorised over rows
    assert np.allclose(psi(np.vstack([p, q]), np.vstack([q, q])), [psi(p, q), 0.0])
    assert benjamini_hochberg([0.01, 0.04, 0.03, 0.2]) == pytest.approx(
        stats.false_discovery_control([0.01, 0.04, 0.03, 0.2])
    )


def test_profile_roundtrip(profile: Profile, tmp_path) -> None:
    path = profile.save(tmp_path / "profile.json")
    back = Profile.load(path)
    assert back.to_dict() == profile.to_dict()
    assert set(back.columns) == {"a", "b", "c", "region"}
    assert back.columns["region"].kind == "categorical" and back.columns["a"].kind == "numeric"
    assert len(back.sample["a"]) == 5000  # bounded, seeded sample
    assert back.reference_accuracy == 1.0


def test_million_unchanged_rows_raise_no_alert(profile: Profile) -> None:
    new = draw(1_000_000, seed=1)
    report = compare(profile, new.drop(columns="label"), labels=new["label"], predictions=new["label"])
    assert report.alerts == []
    assert report.multivariate["auc"] < 0.55


def test_tiny_shift_on_a_million_rows_is_significant_but_no_alert(profile: Profile) -> None:
    """The known failure of p-value-only monitors: a shift of 0.05 sd is 'significant' at this size."""
    new = draw(1_000_000, seed=2, shift=0.05, region_p=np.array([0.41, 0.30, 0.20, 0.09]))
    report = compare(profile, new.drop(columns="label"), multivariate=False)
    by = {f["column"]: f for f in report.features}
    assert by["a"]["p_adjusted"] < 1e-4 and by["region"]["p_adjusted"] < 0.01
    assert report.alerts == []


def test_real_shift_alerts(profile: Profile) -> None:
    new = draw(2000, seed=3, shift=0.7, region_p=np.array([0.1, 0.2, 0.3, 0.4]))
    report = compare(profile, new.drop(columns="label"), labels=new["label"])
    kinds = {(a.kind, a.subject) for a in report.alerts}
    assert ("feature_drift", "a") in kinds and ("feature_drift", "region") in kinds
    assert ("multivariate_drift", "all features") in kinds
    assert ("label_drift", "label") in kinds
    assert ("feature_drift", "b") not in kinds and ("feature_drift", "c") not in kinds
    assert report.drifted == ["a", "region"]


def test_small_noisy_batch_does_not_alarm_on_effect_alone(profile: Profile) -> None:
    """A batch of 50 rows has a PSI near 0.1 from noise alone; the p-value gate keeps it quiet."""
    quiet = 0
    for seed in range(10, 20):
        new = draw(50, seed=seed)
        quiet += not compare(profile, new.drop(columns="label"), multivariate=False).alerts
    assert quiet >= 9


def test_prediction_drift_and_accuracy_drop(profile: Profile) -> None:
    new = draw(3000, seed=4)
    preds = np.where(np.random.default_rng(0).random(3000) < 0.3, "yes", new["label"])
    report = compare(profile, new.drop(columns="label"), labels=new["label"], predictions=preds, multivariate=False)
    kinds = {a.kind for a in report.alerts}
    assert "performance" in kinds and "prediction_drift" in kinds
    assert report.performance["accuracy"] < 0.9


def test_missing_column_and_bad_value_are_input_errors(profile: Profile) -> None:
    new = draw(100, seed=5)
    with pytest.raises(InputError, match=r"missing.*'c'"):
        compare(profile, new.drop(columns=["label", "c"]))
    new["a"] = new["a"].astype(object)
    new.loc[7, "a"] = "seven"
    with pytest.raises(InputError, match=r"column 'a' is numeric.*row 7"):
        compare(profile, new)
    with pytest.raises(InputError, match="alpha"):
        DriftThresholds(alpha=2)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(0, 1000), min_size=2, max_size=12).flatmap(
        lambda a: st.tuples(st.just(a), st.lists(st.integers(0, 1000), min_size=len(a), max_size=len(a)))
    )
)
def test_statistics_stay_in_range(counts) -> None:
    ref, cur = np.asarray(counts[0]), np.asarray(counts[1])
    assume(ref.sum() > 0 and cur.sum() > 0)
    assert psi(ref, cur) >= -1e-12
    assert 0.0 <= js_distance(ref, cur) <= 1.0
    stat, p = chi2_two_sample(ref, cur)
    assert stat >= 0 and 0.0 <= p <= 1.0
    assert psi(ref, ref) == pytest.approx(0.0) and js_distance(ref, ref) == pytest.approx(0.0, abs=1e-7)


def test_a_label_the_reference_never_had_is_an_alert_however_few(profile: Profile) -> None:
    from poisonguard.monitor.drift import label_report

    new = draw(2000, 5)
    labels = new["label"].to_numpy(dtype=object)
    labels[:6] = "maybe"  # 0.3% of the batch: too few for the label drift test
    report = compare(profile, new.drop(columns="label"), labels=labels, multivariate=False)
    assert not report.label["drifted"]
    (alert,) = [a for a in report.alerts if a.kind == "new_label"]
    assert alert.value == 6 and "'maybe'" in alert.message
    _, found = label_report(profile, labels, None)
    assert [a.kind for a in found] == ["new_label"]
    quiet = compare(profile, new.drop(columns="label"), labels=new["label"], multivariate=False)
    assert not [a for a in quiet.alerts if a.kind == "new_label"]
