"""Class outliers: a row that lies closer to another class than to the class it claims."""

from __future__ import annotations

import numpy as np
import pandas as pd

from poisonguard.detectors import get_detector
from synth import auroc, blobs, context


def test_flipped_rows_in_separable_blobs_score_higher_than_clean() -> None:
    frame, flipped = blobs(n=400, n_flip=12, seed=2)
    ctx = context(frame)
    out = get_detector("class_outlier").fit(ctx).score(ctx, np.arange(ctx.n))
    assert auroc(out.scores, flipped) >= 0.9
    clean = np.setdiff1d(np.arange(ctx.n), flipped)
    assert np.median(out.pvalues[flipped]) < 0.001
    assert (out.pvalues[clean] <= 0.05).mean() <= 0.12
    for row in flipped:
        observed = frame.loc[row, "label"]
        other = "dog" if observed == "cat" else "cat"
        reason = out.reasons[row]
        assert f"farther from the typical '{observed}' row than from the typical '{other}' row" in reason, reason


def test_a_far_row_of_its_own_class_is_no_class_outlier() -> None:
    # far out, but on its own class's side: nearer to its own centre than to the other one
    frame, _ = blobs(n=200, n_flip=0, seed=3)
    row = int(np.flatnonzero(frame["label"] == "dog")[0])
    frame.loc[row, ["x0", "x1", "x2", "x3"]] = 6.0
    ctx = context(frame)
    out = get_detector("class_outlier").fit(ctx).score(ctx, np.array([row]))
    assert out.reasons[0] == ""
    assert out.pvalues[0] > 0.05


def test_a_10_percent_block_of_flipped_rows_cannot_hide_itself() -> None:
    frame, flipped = blobs(n=400, n_flip=40, seed=2)
    ctx = context(frame)
    out = get_detector("class_outlier").fit(ctx).score(ctx, np.arange(ctx.n))
    assert auroc(out.scores, flipped) >= 0.9  # the ranking survives ...
    assert np.median(out.pvalues[flipped]) < 0.001  # ... but the p-values do not


def test_a_backdoor_that_outnumbers_a_small_class_does_not_make_its_genuine_rows_outliers() -> None:
    """A trigger stamped on 'cat' rows relabelled 'dog', twice as many as the genuine dogs: once the trigger is
    discovered its rows leave the class centres, so the genuine dogs are not 'closer to cat than to dog'."""
    frame, _ = blobs(n=1000, n_flip=0, seed=4)
    rng = np.random.default_rng(4)
    dogs = np.flatnonzero(frame["label"] == "dog")
    frame = frame.drop(index=dogs[100:]).reset_index(drop=True)  # 100 genuine dogs, 500 cats
    stamped = rng.choice(np.flatnonzero(frame["label"] == "cat"), 200, replace=False)
    frame.loc[stamped, ["x0", "x1"]] = [30.0, -30.0]
    frame.loc[stamped, "label"] = "dog"
    genuine = np.flatnonzero(frame["label"] == "dog")
    genuine = np.setdiff1d(genuine, stamped)
    ctx = context(frame)
    get_detector("trigger_pattern").fit(ctx)
    assert ctx.cache["triggers"], "the stamp should be found first"
    out = get_detector("class_outlier").fit(ctx).score(ctx, np.arange(ctx.n))
    assert (out.pvalues[genuine] <= 0.01).mean() <= 0.05
    # (the stamped rows lie far from every centre, hardly nearer one than another: trigger_pattern's and
    # isolation's rows, not this detector's)
    blind = context(frame)  # without the trigger, the stamped rows set the dog centre
    out = get_detector("class_outlier").fit(blind).score(blind, np.arange(blind.n))
    assert (out.pvalues[genuine] <= 0.05).mean() > 0.5


def test_the_scan_finds_triggers_first_whatever_order_the_detectors_are_named_in() -> None:
    from poisonguard.io import load_dataset
    from poisonguard.scanner import scan_dataset

    frame, _ = blobs(n=600, n_flip=0, seed=5)
    rng = np.random.default_rng(5)
    dogs = np.flatnonzero(frame["label"] == "dog")
    frame = frame.drop(index=dogs[60:]).reset_index(drop=True)
    stamped = rng.choice(np.flatnonzero(frame["label"] == "cat"), 120, replace=False)
    frame.loc[stamped, ["x0", "x1"]] = [30.0, -30.0]
    frame.loc[stamped, "label"] = "dog"
    ds = load_dataset(frame, label="label")
    named_last = scan_dataset(ds, detectors=["class_outlier", "trigger_pattern"]).rows
    named_first = scan_dataset(ds, detectors=["trigger_pattern", "class_outlier"]).rows
    assert list(named_last.columns).index("class_outlier_score") < list(named_last.columns).index(
        "trigger_pattern_score"
    )
    np.testing.assert_array_equal(named_last["class_outlier_score"], named_first["class_outlier_score"])


def test_classes_whose_centres_nearly_coincide_raise_no_false_alarms() -> None:
    """A majority class whose centre nearly coincides with a small class's (a tenth of a standard deviation apart)
    and lies 1.5 from another's: most rows are nearest the first, a fifth nearest the second. Measured in one unit
    for every pair, the first pair's tiny differences set the null's body and the second pair's ordinary ones
    fell in its tail (as 'White' rows did between 'Amer-Indian-Eskimo' and 'Asian-Pac-Islander' with adult's race
    as the label); in each pair's own unit they are ordinary."""
    rng = np.random.default_rng(5)
    n = 4000
    y = rng.choice(4, n, p=[0.8, 0.05, 0.05, 0.1])
    centres = np.array([[0.0, 0.0, 0.0], [0.1, 0.0, 0.0], [0.0, 1.5, 0.0], [5.0, 5.0, 5.0]])
    X = centres[y] + rng.normal(size=(n, 3))
    frame = pd.DataFrame(X, columns=["a", "b", "c"]).assign(label=np.array(["u", "v", "w", "x"])[y])
    ctx = context(frame)
    p = get_detector("class_outlier").fit(ctx).score(ctx, np.arange(ctx.n)).pvalues
    assert (p <= 1e-3).mean() <= 2e-3, (p <= 1e-3).mean()
    assert (p <= 1e-2).mean() <= 2e-2, (p <= 1e-2).mean()
