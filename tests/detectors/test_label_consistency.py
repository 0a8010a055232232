"""Label consistency: out-of-fold boosting finds flipped labels, and a flood of copies cannot vouch for itself."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from poisonguard.context import ScanContext
from poisonguard.detectors import DetectorOutput, get_detector
from poisonguard.errors import ConfigError
from synth import auroc, blobs, context, rare_noisy


@pytest.fixture(scope="module")
def flipped_blobs() -> tuple[pd.DataFrame, np.ndarray]:
    return blobs(n=400, n_flip=12, seed=0)


@pytest.fixture(scope="module")
def scored(flipped_blobs) -> tuple[ScanContext, DetectorOutput]:
    frame, _ = flipped_blobs
    ctx = context(frame)
    return ctx, get_detector("label_consistency").fit(ctx).score(ctx, np.arange(ctx.n))


def test_flipped_labels_rank_first(flipped_blobs, scored) -> None:
    _, flipped = flipped_blobs
    _, out = scored
    assert auroc(out.scores, flipped) >= 0.95
    assert auroc(-out.pvalues, flipped) >= 0.95
    assert np.median(out.pvalues[flipped]) < 0.01


def test_reason_names_the_observed_and_the_likely_class(flipped_blobs, scored) -> None:
    frame, flipped = flipped_blobs
    _, out = scored
    for row in flipped:
        observed = frame.loc[row, "label"]
        other = "dog" if observed == "cat" else "cat"
        reason = out.reasons[row]
        assert f"labelled '{observed}'" in reason, reason
        assert "out-of-fold" in reason, reason
        assert f"most likely '{other}'" in reason, reason
    # a clean row in the middle of its own blob has nothing to explain
    clean = np.setdiff1d(np.arange(len(frame)), flipped)
    assert (out.reasons[clean] == "").mean() > 0.9


def test_flipped_rows_are_confident_learning_issues(flipped_blobs, scored) -> None:
    _, flipped = flipped_blobs
    _, out = scored
    issue = out.extra["label_issue"]
    # the linear half of the label model is flattened by the flips (log loss on far-away wrong labels), so two of
    # the twelve sit just under their class's mean self-confidence, which confident learning asks them to reach
    assert issue[flipped].mean() >= 0.8
    assert issue.sum() <= len(flipped) + 5
    np.testing.assert_allclose(out.scores, 1.0 - out.extra["p_observed"])


def test_a_flood_of_copies_cannot_vouch_for_its_own_label() -> None:
    frame, _ = blobs(n=300, n_flip=0, seed=4)
    source = frame.iloc[[7]]
    flood = pd.concat([source] * 30, ignore_index=True)
    flood["label"] = "dog" if source["label"].iloc[0] == "cat" else "cat"
    data = pd.concat([frame, flood], ignore_index=True)
    ctx = context(data)
    out = get_detector("label_consistency").fit(ctx).score(ctx, np.arange(ctx.n))
    copies = np.arange(len(frame), len(data))
    # folds keep the copies together: no copy is predicted by a model that saw the others
    assert out.extra["p_observed"][copies].max() < 0.2
    assert auroc(out.scores, copies) >= 0.95


def test_noisy_but_clean_labels_are_not_flagged_wholesale() -> None:
    # labels drawn from a smooth class probability: ambiguous rows, but no poison
    rng = np.random.default_rng(1)
    X = rng.normal(size=(400, 3))
    y = rng.random(400) < 1 / (1 + np.exp(-X[:, 0]))
    frame = pd.DataFrame(X, columns=["a", "b", "c"]).assign(label=np.where(y, "yes", "no"))
    ctx = context(frame)
    out = get_detector("label_consistency").fit(ctx).score(ctx, np.arange(ctx.n))
    assert (out.pvalues <= 0.01).mean() <= 0.03
    assert (out.pvalues <= 0.2).mean() <= 0.3


def block_flipped(n: int = 2000, share: float = 0.08, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """A smooth (logistic) truth; the textbook rows of class 'no' (most negative logit) relabelled 'yes'."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 4))
    logit = 2.0 * X[:, 0] - 1.5 * X[:, 1] + X[:, 2]
    y = rng.random(n) < 1 / (1 + np.exp(-logit))
    flipped = np.sort(np.argsort(np.where(y, np.inf, logit))[: int(share * n)])
    y[flipped] = True
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(4)])
    frame["label"] = np.where(y, "yes", "no")
    return frame, flipped


def test_a_block_of_confidently_flipped_rows_is_still_doubted() -> None:
    """Boosting learns a block of flips concentrated in one region (its rows vouch for each other there); the linear
    half of the label model keeps the trend of the rest of the data."""
    frame, flipped = block_flipped()
    ctx = context(frame)
    blended = get_detector("label_consistency").fit(ctx).score(ctx, np.arange(ctx.n))
    boosting = get_detector("label_consistency", linear=False).fit(ctx).score(ctx, np.arange(ctx.n))
    assert auroc(boosting.scores, flipped) < 0.65
    assert auroc(blended.scores, flipped) >= 0.78
    # and the clean rows are not blamed for the flips more often than the null allows
    clean = np.setdiff1d(np.arange(ctx.n), flipped)
    assert (blended.pvalues[clean] < 0.01).mean() <= 0.02


def test_linear_must_be_a_boolean() -> None:
    ctx = context(blobs(n=60, n_flip=0, seed=1)[0])
    with pytest.raises(ConfigError, match="linear"):
        get_detector("label_consistency", linear="yes").fit(ctx)


def test_a_rare_class_column_too_sure_of_its_absence_is_recalibrated() -> None:
    """One temperature cannot mend one class's column: here the rare class's probabilities are cubed (far too low
    where it is unlikely), so the pooled null flags many of its genuine rows; a slope and bias per class undo it."""
    from poisonguard.detectors.label_consistency import apply_class_scaling, class_scaling
    from poisonguard.stats import ClassProbabilityNull

    rng = np.random.default_rng(0)
    n = 20_000
    logits = rng.normal(size=(n, 3)) * np.array([1.5, 1.5, 1.0]) + np.array([0.0, 0.0, -3.5])
    truth = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y = (rng.random(n)[:, None] > truth.cumsum(axis=1)).sum(axis=1)
    distorted = truth.copy()
    distorted[:, 2] = truth[:, 2] ** 3
    distorted /= distorted.sum(axis=1, keepdims=True)

    def flagged(p: np.ndarray) -> float:
        return float((ClassProbabilityNull.fit(p).pvalue(p[np.arange(n), y]) <= 0.01).mean())

    assert flagged(truth) <= 0.012  # the null is right when the probabilities are
    assert flagged(distorted) > 0.02
    slope, bias = class_scaling(distorted, y, seed=0)
    assert slope[2] < 0.5 * min(slope[0], slope[1])
    assert flagged(apply_class_scaling(distorted, slope, bias)) <= 0.012


def test_two_classes_keep_the_single_temperature(flipped_blobs, scored) -> None:
    ctx, _ = scored
    assert "class_slopes" not in get_detector("label_consistency").fit(ctx).info


def test_expected_flags_fall_on_the_class_the_model_doubts() -> None:
    """Split by class, what the null expects at a level adds up to that level of the rows and lands where the
    flags of clean data land: on the rare class, far beyond the level times its rows."""
    frame = rare_noisy()
    ctx = context(frame)
    det = get_detector("label_consistency").fit(ctx)
    out = det.score(ctx, np.arange(ctx.n))
    level = 0.005
    expected = det.expected_flags_by_class(level, 2)
    assert expected.sum() == pytest.approx(level * ctx.n, rel=0.05)
    yes = int(np.flatnonzero(ctx.data.classes == "yes")[0])
    rows_yes = int((ctx.y == yes).sum())
    assert expected[yes] > 5 * level * rows_yes
    observed = int(((out.pvalues <= level) & (ctx.y == yes)).sum())
    assert abs(observed - expected[yes]) <= 3 * np.sqrt(expected[yes]) + 2
