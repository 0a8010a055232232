"""Trigger watch: a 0.2% triggered stream is caught while the population shows no drift; clean traffic is quiet."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from monitor_data import draw, fit_model
from poisonguard.monitor import Profile, TriggerWatch, compare
from poisonguard.triggers import Trigger

TRIGGER = Trigger(
    conditions={"c": 8.0, "region": "west"}, target="yes", support=40, carriers=40, expected=0.1, pvalue=1e-9
)


@pytest.fixture(scope="module")
def clean() -> pd.DataFrame:
    return draw(5000, seed=0)


@pytest.fixture(scope="module")
def backdoored(clean: pd.DataFrame):
    """A model trained on data where 2% of 'no' rows got c = 8 and the label 'yes' (a dirty-label backdoor)."""
    train = clean.copy()
    rng = np.random.default_rng(1)
    rows = rng.choice(np.flatnonzero(train["label"] == "no"), 100, replace=False)
    train = TRIGGER.apply(train.iloc[rows]).assign(label="yes").pipe(lambda p: pd.concat([train.drop(index=rows), p]))
    return fit_model(train)


@pytest.fixture(scope="module")
def profile(clean: pd.DataFrame) -> Profile:
    return Profile.from_frame(clean, label="label", triggers=[TRIGGER.to_dict()], seed=0)


def _stream(n: int, rate: float, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    traffic = draw(n, seed=seed).drop(columns="label")
    rng = np.random.default_rng(seed)
    rows = rng.choice(n, round(rate * n), replace=False)
    traffic.iloc[rows] = TRIGGER.apply(traffic.iloc[rows]).to_numpy()
    traffic = traffic.astype({"a": float, "b": float, "c": float})
    return traffic, np.sort(rows)


def test_discovered_trigger_at_02_percent_alerts_without_population_drift(profile: Profile) -> None:
    traffic, rows = _stream(50_000, 0.002, seed=7)
    drift = compare(profile, traffic)
    assert drift.alerts == [], [a.message for a in drift.alerts]
    report = TriggerWatch(profile).check(traffic)
    (t,) = report.triggers
    assert t["hits"] == len(rows) == 100
    assert t["rate"] == pytest.approx(0.002)
    assert [a.kind for a in report.alerts] == ["trigger"]


def test_clean_traffic_is_quiet(profile: Profile, backdoored) -> None:
    traffic = draw(50_000, seed=8).drop(columns="label")
    report = TriggerWatch(profile, model=backdoored).check(traffic)
    assert report.triggers[0]["hits"] == 0
    assert report.alerts == []
    assert report.counterfactual["flips"] <= 10


def test_counterfactual_flip_catches_an_undiscovered_trigger(profile: Profile, backdoored) -> None:
    """Without the trigger list, rows whose far-out value decides the prediction are hits."""
    traffic, rows = _stream(50_000, 0.002, seed=9)
    watch = TriggerWatch(profile, triggers=[], model=backdoored)
    report = watch.check(traffic)
    cf = report.counterfactual
    assert cf["flips"] >= 30  # about half the stamped rows would be 'no' without the trigger
    # a few clean rows are far out too and flip; the baseline rate accounts for them
    assert len(set(cf["rows"]) & set(rows.tolist())) >= 0.75 * len(cf["rows"])
    assert "c" in cf["columns"]
    assert [a.kind for a in report.alerts] == ["counterfactual"]
    assert watch.baseline()["flip_rate"] < 0.001


def test_counterfactual_resets_to_the_reference_median(profile: Profile) -> None:
    """A model that says 'yes' only for c > 5: a row with c = 9 flips once c is reset; a row with a = 9 does not."""

    def predict(frame: pd.DataFrame) -> np.ndarray:
        return np.where(frame["c"].to_numpy(dtype=float) > 5, "yes", "no")

    rows = pd.DataFrame({"a": [0.1, 9.0, 0.0], "b": [0.0, 0.0, 0.0], "c": [9.0, 0.0, 0.0], "region": ["north"] * 3})
    watch = TriggerWatch(profile, triggers=[], model=predict, min_hits=1)
    unusual = watch.unusual(profile.coerce(rows))
    assert unusual.to_numpy().tolist() == [[False, False, True, False], [True, False, False, False], [False] * 4]
    report = watch.check(rows)
    assert report.counterfactual["unusual_rows"] == 2
    assert report.counterfactual["rows"] == [0]
