"""Isolation: rows far outside the data, whatever their label."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from poisonguard.detectors import DetectorOutput, get_detector
from synth import context


def _with_far_rows(seed: int, n: int = 390, n_far: int = 10) -> tuple[pd.DataFrame, np.ndarray]:
    """``n`` standard-normal rows plus ``n_far`` rows 15 standard deviations out in every column."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n + n_far, 4))
    far = np.arange(n, n + n_far)
    X[far] += 15.0
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"]).assign(label=rng.choice(["x", "y"], n + n_far))
    return frame, far


def _score(frame: pd.DataFrame, **params) -> DetectorOutput:
    ctx = context(frame)
    return get_detector("isolation", **params).fit(ctx).score(ctx, np.arange(ctx.n))


def test_far_rows_rank_first_and_clean_rows_stay_roughly_uniform() -> None:
    frame, far = _with_far_rows(seed=0)
    out = _score(frame)
    clean = np.setdiff1d(np.arange(len(frame)), far)
    assert out.scores[far].min() > out.scores[clean].max()
    assert out.pvalues[far].max() < 0.01
    assert 0.0 <= (out.pvalues[clean] < 0.05).mean() <= 0.12
    assert 0.3 <= (out.pvalues[clean] < 0.5).mean() <= 0.7
    assert all(r.startswith("unusual row overall") for r in out.reasons[far])


@pytest.mark.xfail(
    reason="isolation p-values of rows 15 sd out stay around 1e-3 (0.0013-0.0032 for these seeds): the "
    "metric view's log1p compression and the forest's masking of a clustered block keep the statistic near "
    "the body, so these rows sit at or above isolation's flag level fpr/8",
    strict=True,
)
def test_far_rows_get_pvalues_below_one_in_a_thousand() -> None:
    for seed in (0, 1, 2):
        frame, far = _with_far_rows(seed=seed)
        out = _score(frame)
        assert out.pvalues[far].max() < 0.001, (seed, out.pvalues[far])


def test_n_estimators_is_passed_to_the_forest() -> None:
    frame, _ = _with_far_rows(seed=0, n=90)
    ctx = context(frame)
    det = get_detector("isolation", n_estimators=7).fit(ctx)
    assert len(det.forest_.estimators_) == 7


def test_a_block_of_junk_rows_is_flagged_by_the_scan() -> None:
    """A tenth of the rows 10-30 robust scales out, labels at random: the block stretches the isolation null,
    and the trimmed null plus fusion's earned level still flag it."""
    import poisonguard as pg

    rng = np.random.default_rng(1)
    n, k = 900, 100
    X = rng.normal(size=(n, 5))
    y = np.where(X[:, 0] + X[:, 1] + rng.normal(0, 0.5, n) > 0, "a", "b")
    J = rng.choice([-1, 1], size=(k, 5)) * rng.uniform(10, 30, size=(k, 5)) * 1.35
    frame = pd.DataFrame(np.vstack([X, J]), columns=list("pqrst")).assign(
        label=np.concatenate([y, rng.choice(["a", "b"], k)])
    )
    result = pg.scan(frame, label="label")
    flagged = result.rows["flagged"].to_numpy()
    assert flagged[n:].mean() > 0.95
    assert flagged[:n].mean() < 0.03
