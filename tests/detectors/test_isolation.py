"""Isolation: rows far outside the data, whatever their label."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from poisonguard.detectors import DetectorOutput, get_detector
from synth import auroc, context, messages


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
    assert all(r.startswith("far outside the usual range in most numeric columns") for r in out.reasons[far])


def test_far_rows_get_pvalues_below_one_in_a_thousand() -> None:
    """The forest alone left rows 15 sd out at p of 1e-3 (log compression, masking of a clustered block); the
    median-distance view does not."""
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


def _junk_block(n: int, k: int, d: int, seed: int) -> tuple[pd.DataFrame, int]:
    rng = np.random.default_rng(seed)
    X = rng.lognormal(size=(n, d))  # skewed columns, as counts and amounts are
    y = np.where(X[:, 0] + X[:, 1] + rng.normal(0, 0.5, n) > 3, "a", "b")
    iqr = np.subtract(*np.percentile(X, [75, 25], axis=0))
    J = np.median(X, axis=0) + rng.choice([-1, 1], size=(k, d)) * rng.uniform(10, 30, size=(k, d)) * iqr
    frame = pd.DataFrame(np.vstack([X, J]), columns=[f"c{i}" for i in range(d)]).assign(
        label=np.concatenate([y, rng.choice(["a", "b"], k)])
    )
    return frame, n


def test_a_sixth_of_junk_rows_is_still_flagged() -> None:
    """At a sixth of the data the junk masks itself in the forest and fills the top of its null; the view of
    the median distance over columns still puts every junk row below 1e-4 and leaves clean rows alone."""
    frame, n = _junk_block(1000, 200, 6, seed=3)
    out = _score(frame)
    assert out.pvalues[n:].max() < 1e-4
    assert (out.pvalues[:n] < 0.01).mean() < 0.02


def test_the_far_view_abstains_on_sparse_columns() -> None:
    """Where most rows sit at the median of most columns (sparse counts), the median distance is 0 for most
    rows: there is no body to fit, so only the forest speaks."""
    rng = np.random.default_rng(4)
    X = rng.poisson(0.1, size=(500, 8)).astype(float)
    frame = pd.DataFrame(X, columns=[f"w{i}" for i in range(8)]).assign(label=rng.choice(["a", "b"], 500))
    ctx = context(frame)
    det = get_detector("isolation").fit(ctx)
    assert det.info["far_view"] is False
    frame, _ = _junk_block(300, 10, 4, seed=4)
    assert get_detector("isolation").fit(context(frame)).info["far_view"] is True


def test_a_common_factor_behind_heavy_tailed_columns_is_no_junk() -> None:
    """One wealth factor drives six amounts (lognormal): the rich are far out in every amount at once, naturally.
    The forest's null must fit that heavier tail (with the shape held at exponential or lighter, 1.7% of these
    clean rows fell below 1e-3 and the scan called the data poisoned)."""
    import poisonguard as pg

    rng = np.random.default_rng(0)
    n = 5000
    wealth = rng.lognormal(0, 1.2, n)
    X = np.column_stack([wealth * rng.lognormal(0, 0.3, n) for _ in range(6)] + [rng.normal(size=(n, 2))])
    frame = pd.DataFrame(X, columns=[f"m{i}" for i in range(8)])
    frame["label"] = np.where(X[:, 6] + rng.normal(size=n) > 0, "a", "b")
    out = _score(frame)
    assert (out.pvalues < 1e-3).mean() < 0.003
    result = pg.scan(frame, label="label")
    assert result.verdict == "clean"
    assert result.summary["flagged_fraction"] < 0.01


def test_junk_text_is_caught_by_the_text_view_whatever_its_share() -> None:
    """Junk text sits near the origin of the text components, among short ordinary messages: the forest and the
    median-distance view miss it. Counting words no other row holds finds it, at a tenth of the data as at a
    hundredth, while clean rows (some with words of their own) keep p-values near uniform."""
    for n_junk in (8, 120):
        frame, junk = messages(seed=1, n=1000, n_junk=n_junk)
        ctx = context(frame, types={"text": "text"})
        det = get_detector("isolation").fit(ctx)
        out = det.score(ctx, np.arange(ctx.n))
        clean = np.setdiff1d(np.arange(len(frame)), junk)
        assert det.info["text_view"] == ["text"]
        assert auroc(out.scores, junk) > 0.99
        assert np.mean(out.pvalues[junk] <= 1e-3) >= 0.9
        assert np.mean(out.pvalues[clean] <= 0.01) <= 0.02
        pattern = r"text unlike the rest: (\d+) of (\d+) words in 'text' occur in no other row \(typically \d+%\)"
        found = [re.fullmatch(pattern, r) for r in out.reasons[junk][out.pvalues[junk] <= 1e-3]]
        assert all(m is not None and int(m[1]) >= 0.8 * int(m[2]) for m in found)  # words may share a hash bucket


def test_tables_without_text_get_no_text_view() -> None:
    frame, _ = _with_far_rows(seed=0)
    ctx = context(frame)
    assert get_detector("isolation").fit(ctx).info["text_view"] == []


def _codes(seed: int, n: int) -> pd.DataFrame:
    """A text column of reference codes (a shared prefix, then two numbers no other row holds), three numbers."""
    rng = np.random.default_rng(seed)
    prefix = pd.Series(rng.choice(["lot", "sku", "box", "ref"], n))
    a = pd.Series(rng.integers(0, 10**6, n)).map("c{}".format)
    b = pd.Series(rng.integers(0, 10**6, n)).map("d{}".format)
    frame = pd.DataFrame(rng.normal(size=(n, 3)), columns=["x0", "x1", "x2"])
    frame["code"] = prefix.str.cat([a, b], sep=" ")
    frame["label"] = rng.integers(0, 2, n)
    return frame


def test_a_text_column_of_codes_raises_no_false_alarms() -> None:
    """Each text component of a column of codes is carried by the few rows whose codes it was fitted on; the
    forest isolated exactly those (4% of a clean table at p <= 0.01). The forest leaves such a column out, and
    still finds rows far out in the numbers."""
    for seed in range(3):
        frame = _codes(seed, 2000)
        far = np.arange(10)
        frame.loc[far, ["x0", "x1", "x2"]] = 40.0
        ctx = context(frame, types={"code": "text"})
        det = get_detector("isolation").fit(ctx)
        out = det.score(ctx, np.arange(ctx.n))
        clean = np.setdiff1d(np.arange(len(frame)), far)
        assert det.info["codes_left_out"] == ["code"]
        assert np.mean(out.pvalues[clean] <= 0.01) <= 0.02
        assert np.all(out.pvalues[far] <= 1e-3)


def test_a_table_of_codes_alone_leaves_the_forest_out() -> None:
    frame = _codes(0, 500)[["code", "label"]]
    ctx = context(frame, types={"code": "text"})
    det = get_detector("isolation").fit(ctx)
    out = det.score(ctx, np.arange(ctx.n))
    assert det.info["forest"] is False
    assert np.all(out.pvalues == 1.0)
