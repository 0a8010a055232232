"""Duplicates: floods of near-copies, and identical rows with different labels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from poisonguard.context import ScanContext
from poisonguard.detectors import DetectorOutput, get_detector
from poisonguard.detectors.duplicates import group_size_pvalues
from synth import blobs, context

N_BASE = 300
N_FLOOD = 30
FEATURES = ["x0", "x1", "x2", "x3"]


def _other(label: str) -> str:
    return "dog" if label == "cat" else "cat"


@pytest.fixture(scope="module")
def flooded() -> pd.DataFrame:
    """300 clean rows, 30 exact copies of row 5 with the opposite label, then one identical pair (row 9 copied
    once with the opposite label)."""
    frame, _ = blobs(n=N_BASE, n_flip=0, seed=5)
    flood = pd.concat([frame.iloc[[5]]] * N_FLOOD, ignore_index=True)
    flood["label"] = _other(frame.loc[5, "label"])
    twin = frame.iloc[[9]].copy()
    twin["label"] = _other(frame.loc[9, "label"])
    return pd.concat([frame, flood, twin], ignore_index=True)


@pytest.fixture(scope="module")
def scored(flooded) -> tuple[ScanContext, DetectorOutput]:
    ctx = context(flooded)
    return ctx, get_detector("duplicates").fit(ctx).score(ctx, np.arange(ctx.n))


def test_a_flood_of_copies_gets_the_highest_scores(scored) -> None:
    _, out = scored
    copies = np.arange(N_BASE, N_BASE + N_FLOOD)
    rest = np.setdiff1d(np.arange(len(out.scores)), np.r_[copies, 5])
    assert out.scores[copies].min() > out.scores[rest].max()
    assert out.pvalues[copies].max() < 1e-6
    for reason in out.reasons[copies]:
        assert f"one of {N_FLOOD + 1} near-identical rows ({N_FLOOD + 1} exact copies)" in reason, reason
    # the flood and the row it copies form one group
    groups = out.extra["duplicate_group"]
    assert len(set(groups[np.r_[copies, 5]])) == 1
    assert (groups[rest] != groups[5]).all()


def test_identical_rows_with_different_labels_are_a_conflict(flooded, scored) -> None:
    _, out = scored
    pair = [9, len(flooded) - 1]
    for row in pair:
        assert "identical features" in out.reasons[row], out.reasons[row]
    # the copies in the flood conflict with the row they copy, which carries the minority label
    assert "identical features to 30 other rows" in out.reasons[5]
    assert f"mostly labelled '{flooded.loc[N_BASE, 'label']}'" in out.reasons[5]


def test_clean_rows_say_nothing(flooded, scored) -> None:
    _, out = scored
    clean = np.setdiff1d(np.arange(N_BASE), [5, 9])
    assert (out.reasons[clean] == "").all()
    assert (out.pvalues[clean] == 1.0).all()


def _jittered_flood(seed: int, row: int) -> pd.DataFrame:
    """Clean blobs plus N_FLOOD copies of ``row`` (same label), each jittered by 1e-4."""
    frame, _ = blobs(n=N_BASE, n_flip=0, seed=seed)
    rng = np.random.default_rng(seed)
    flood = pd.concat([frame.iloc[[row]]] * N_FLOOD, ignore_index=True)
    flood[FEATURES] += rng.normal(scale=1e-4, size=(N_FLOOD, len(FEATURES)))
    return pd.concat([frame, flood], ignore_index=True)


def test_near_copies_are_grouped_like_exact_ones() -> None:
    data = _jittered_flood(seed=6, row=3)
    ctx = context(data)
    out = get_detector("duplicates").fit(ctx).score(ctx, np.arange(ctx.n))
    copies = np.arange(N_BASE, len(data))
    assert out.pvalues[copies].max() < 1e-6
    assert all("near-identical rows" in r for r in out.reasons[copies])
    assert len(set(out.extra["duplicate_group"][copies])) == 1


def test_jittered_copies_in_columns_with_a_tiny_spread_stay_one_group() -> None:
    """Heavy-tailed columns whose interquartile range is tiny (most values in a narrow band) stretch the metric
    view; copies jittered by 0.001 standard deviations must still be copies."""
    rng = np.random.default_rng(0)
    n, d = 400, 10
    band = rng.normal(0, 0.01, size=(n, d))
    tail = rng.exponential(50.0, size=(n, d))
    X = np.where(rng.random((n, d)) < 0.85, band, tail)
    cols = [f"c{i}" for i in range(d)]
    frame = pd.DataFrame(X, columns=cols).assign(label=rng.choice(["cat", "dog"], n))
    sd = frame[cols].std().to_numpy()
    copies = pd.concat([frame.iloc[[3]]] * 40, ignore_index=True)
    copies[cols] += rng.normal(0, 0.001, size=(40, d)) * sd
    copies["label"] = _other(frame.loc[3, "label"])
    ctx = context(pd.concat([frame, copies], ignore_index=True))
    out = get_detector("duplicates").fit(ctx).score(ctx, np.arange(ctx.n))
    groups = out.extra["duplicate_group"]
    assert len(set(groups[n:])) == 1
    assert out.pvalues[n:].max() < 1e-4


def test_group_size_pvalues_follow_the_datas_own_duplication() -> None:
    """Natural duplication (many pairs, some triples, a few larger groups) stays quiet; a group far beyond it
    does not, and a handful of huge groups cannot set their own null."""
    rng = np.random.default_rng(1)
    for exponent, alpha in ((4.0, 1e-3), (3.0, 0.01)):  # a heavier natural tail needs a larger flood
        natural = np.r_[np.ones(5000), rng.zipf(exponent, size=400) + 1]
        assert group_size_pvalues(natural).min() > 0.01
        flooded = np.r_[natural, [200, 220, 240]]
        p = group_size_pvalues(flooded)
        assert p[-3:].max() < alpha
        assert p[:-3].min() > 0.01
    # no natural duplicates at all: a single group of ten is already a flood; a pair is not
    assert group_size_pvalues(np.r_[np.ones(1000), 10])[-1] < 1e-3
    assert group_size_pvalues(np.r_[np.ones(1000), 2])[-1] > 0.05


def test_a_flood_that_agrees_with_the_data_is_still_a_flood() -> None:
    """Copies of a row that keep its label: the label model has nothing against them, but a group of 30 in
    data without duplicates is improbable. The group (copies and the row they copy) is flagged, nothing else."""
    data = _jittered_flood(seed=7, row=4)
    ctx = context(data)
    det = get_detector("duplicates").fit(ctx)
    det.against_[:] = False  # as if the label model agreed with every group
    out = det.score(ctx, np.arange(ctx.n))
    copies = np.arange(N_BASE, len(data))
    assert out.pvalues[copies].max() < 1e-4
    clean = np.setdiff1d(np.arange(N_BASE), [4])
    assert (out.pvalues[clean] == 1.0).all()
    assert det.info["rows_in_improbably_large_groups"] == N_FLOOD + 1


def _sparse_counts(seed: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """300 rows of 20 word counts, each zero in 80% of rows; then 15 near-empty rows (one word, once; one of them
    twice) and 30 copies of a full row (a count in every column), all with the label the data gives them."""
    rng = np.random.default_rng(seed)
    n, d = 300, 20
    X = np.where(rng.random((n, d)) < 0.8, 0.0, rng.integers(1, 6, size=(n, d)).astype(float))
    empty = np.zeros((15, d))
    empty[:, 0] = 1.0
    empty[0, 0] = 2.0
    full = np.repeat(rng.integers(1, 6, size=(1, d)).astype(float), 30, axis=0)
    cols = [f"w{j}" for j in range(d)]
    frame = pd.DataFrame(np.vstack([X, empty, full]), columns=cols)
    frame["label"] = "ham"
    frame.loc[: n // 3, "label"] = "spam"
    return frame, np.arange(n, n + 15), np.arange(n + 15, n + 45)


def test_near_empty_rows_coincide_without_being_a_flood() -> None:
    """Rows that hold nothing but their columns' usual value (zero) bar one coincide naturally (a one-word
    message): their number alone says nothing. Copies of a full row, with an agreeable label too, are still a
    flood."""
    frame, empty, full = _sparse_counts(3)
    ctx = context(frame)
    det = get_detector("duplicates").fit(ctx)
    det.against_[:] = False  # as if the label model agreed with every group
    out = det.score(ctx, np.arange(ctx.n))
    assert (out.pvalues[empty] == 1.0).all()
    assert out.pvalues[full].max() < 1e-4
    assert det.info["rows_in_groups_of_near_empty_rows"] >= 15
