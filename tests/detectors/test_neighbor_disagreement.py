"""Neighbour disagreement: a row whose nearest rows carry another label."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from poisonguard.detectors import get_detector
from synth import auroc, blobs, context


@pytest.fixture(scope="module")
def flipped_blobs() -> tuple[pd.DataFrame, np.ndarray]:
    return blobs(n=400, n_flip=12, seed=1)


@pytest.fixture(scope="module")
def noisy() -> pd.DataFrame:
    """Labels drawn from a smooth class probability: ambiguous rows, but no poison."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(400, 3))
    y = rng.random(400) < 1 / (1 + np.exp(-X[:, 0]))
    return pd.DataFrame(X, columns=["a", "b", "c"]).assign(label=np.where(y, "yes", "no"))


def test_flipped_labels_rank_first_and_say_how_many_neighbours_disagree(flipped_blobs) -> None:
    frame, flipped = flipped_blobs
    ctx = context(frame)
    out = get_detector("neighbor_disagreement").fit(ctx).score(ctx, np.arange(ctx.n))
    assert auroc(out.scores, flipped) >= 0.95
    assert auroc(-out.pvalues, flipped) >= 0.95
    for row in flipped:
        observed = frame.loc[row, "label"]
        other = "dog" if observed == "cat" else "cat"
        reason = out.reasons[row]
        assert f"labelled '{observed}'" in reason, reason
        assert "of its 10 nearest rows" in reason, reason
        assert reason.endswith(f"are '{other}'"), reason
    clean = np.setdiff1d(np.arange(len(frame)), flipped)
    assert (out.reasons[clean] == "").mean() > 0.95


def test_k_sets_the_neighbourhood_size(flipped_blobs) -> None:
    ctx = context(flipped_blobs[0])
    det = get_detector("neighbor_disagreement", k=5).fit(ctx)
    out = det.score(ctx, np.arange(ctx.n))
    assert det.info["k"] == 5
    said = out.reasons[out.reasons != ""]
    assert len(said) > 0
    assert all("of its 5 nearest rows" in r for r in said), said


@pytest.mark.xfail(
    reason="neighbour p-values have a floor of about prior/(k+1) on separable data (0.035 at k=10, 0.073 at "
    "k=5): the smoothed neighbour shares give every row's other class that much probability, so the pooled "
    "null calls a unanimously contradicted label ordinary and the detector never reaches its flag level fpr/8",
    strict=True,
)
def test_a_label_all_ten_neighbours_contradict_gets_a_small_pvalue(flipped_blobs) -> None:
    frame, flipped = flipped_blobs
    ctx = context(frame)
    det = get_detector("neighbor_disagreement").fit(ctx)
    out = det.score(ctx, flipped)
    assert all(r.startswith("labelled") and "10 of its 10 nearest rows" in r for r in out.reasons), out.reasons
    assert out.pvalues.max() < 0.01 / 8


def test_noisy_but_clean_labels_are_not_flagged_wholesale(noisy: pd.DataFrame) -> None:
    ctx = context(noisy)
    out = get_detector("neighbor_disagreement").fit(ctx).score(ctx, np.arange(ctx.n))
    assert (out.pvalues <= 0.01).mean() <= 0.03
    assert (out.pvalues <= 0.2).mean() <= 0.3


def test_a_label_the_columns_predict_poorly_is_not_beyond_the_null() -> None:
    """Five classes drawn from a weak, smooth class probability (one class holds a twentieth of the rows): ten
    neighbours often lack a row's class by chance. Read as exact probabilities, their shares put ten times the
    allowed rows below 1e-3 (a bank job title had 5 to 14 times); calibrated, clean rows stay within it."""
    rng = np.random.default_rng(3)
    n = 3000
    X = rng.normal(size=(n, 4))
    logits = 0.6 * X @ rng.normal(size=(4, 5)) + np.log([0.35, 0.25, 0.2, 0.15, 0.05])
    P = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y = (rng.random(n)[:, None] > np.cumsum(P, axis=1)[:, :-1]).sum(axis=1)
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"]).assign(label=np.array(list("vwxyz"))[y])
    ctx = context(frame)
    p = get_detector("neighbor_disagreement").fit(ctx).score(ctx, np.arange(ctx.n)).pvalues
    assert (p <= 1e-3).mean() <= 3e-3, (p <= 1e-3).mean()
    assert (p <= 1e-2).mean() <= 2e-2, (p <= 1e-2).mean()
