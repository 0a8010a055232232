"""Null models: p-values that are uniform on clean data and small on poison."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from poisonguard.stats import ClassProbabilityNull, RarityNull, TailNull, binom_interval

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


# ------------------------------------------------------------------------------------------ ClassProbabilityNull


def _simulated(alpha: float, n: int = 20_000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """3-class Dirichlet probabilities and labels drawn from them."""
    rng = np.random.default_rng(seed)
    proba = rng.dirichlet([alpha] * 3, size=n)
    y = (proba.cumsum(axis=1) > rng.random(n)[:, None]).argmax(axis=1)
    return proba, y


@pytest.mark.parametrize("alpha", [0.3, 1.0, 3.0])
def test_class_probability_pvalues_are_uniform_when_labels_follow_the_probabilities(alpha: float) -> None:
    proba, y = _simulated(alpha)
    null = ClassProbabilityNull.fit(proba)
    p = null.pvalue(proba[np.arange(len(y)), y])
    assert ((p >= 0) & (p <= 1 + 1e-6)).all()
    for a in (0.01, 0.05, 0.2):
        assert abs((p <= a).mean() - a) <= 0.01, (a, (p <= a).mean())


def test_class_probability_pvalues_grow_with_the_observed_probability() -> None:
    proba, _ = _simulated(1.0, n=2_000)
    null = ClassProbabilityNull.fit(proba)
    grid = np.linspace(0.0, 1.0, 1001)
    p = null.pvalue(grid)
    assert (np.diff(p) > 0).all()
    assert p[0] < 1e-6
    assert p[-1] == pytest.approx(1.0, abs=1e-6)


def test_a_label_the_model_rules_out_gets_a_tiny_pvalue() -> None:
    proba, _ = _simulated(1.0, n=2_000)
    null = ClassProbabilityNull.fit(proba)
    assert null.pvalue(np.array([1e-4]))[0] < 1e-3


# ---------------------------------------------------------------------------------------------------- TailNull


@settings(max_examples=60, deadline=None)
@given(
    sample=st.lists(finite, min_size=1, max_size=200),
    stats=st.lists(st.floats(min_value=-1e7, max_value=1e7, allow_nan=False), min_size=2, max_size=50),
)
def test_tail_pvalues_lie_in_0_1_and_never_grow_with_the_statistic(sample: list[float], stats: list[float]) -> None:
    null = TailNull.fit(np.array(sample))
    s = np.sort(np.array(stats))
    with np.errstate(over="ignore"):  # see test_tail_pvalue_of_a_statistic_far_below_the_body_is_silent
        p = null.pvalue(s)
    assert ((p > 0) & (p <= 1)).all()
    assert (np.diff(p) <= 1e-12).all(), (s, p)


def test_tail_pvalues_of_infinite_statistics_stay_positive() -> None:
    null = TailNull.fit(np.random.default_rng(0).normal(size=500))
    p = null.pvalue(np.array([1e300, np.inf]))
    assert ((p > 0) & (p < 1e-9)).all()


def test_tail_pvalue_of_a_statistic_far_below_the_body_is_silent() -> None:
    null = TailNull.fit(np.random.default_rng(0).uniform(size=1_000))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p = null.pvalue(np.array([-1_000.0]))
    assert p[0] == 1.0


@pytest.mark.parametrize("draw", ["normal", "exponential", "lognormal"])
def test_tail_pvalues_are_uniform_on_the_body_of_a_clean_sample(draw: str) -> None:
    rng = np.random.default_rng(1)
    s = getattr(rng, draw)(size=10_000)
    p = TailNull.fit(s).pvalue(s)
    assert abs((p <= 0.5).mean() - 0.5) <= 0.01
    assert abs((p <= 0.8).mean() - 0.8) <= 0.01


def test_tail_pvalues_are_conservative_on_a_gaussian_sample() -> None:
    s = np.random.default_rng(2).normal(size=20_000)
    p = TailNull.fit(s).pvalue(s)
    assert (p <= 0.001).mean() <= 0.002
    assert (p <= 0.05).mean() <= 0.06


def test_a_block_of_5_percent_extreme_rows_cannot_hide_itself() -> None:
    rng = np.random.default_rng(3)
    s = np.concatenate([rng.normal(size=9_500), 20 + rng.normal(size=500)])
    p = TailNull.fit(s).pvalue(s[-500:])
    assert p.max() < 1e-6


@pytest.mark.parametrize("offset", [10.0, 20.0, 50.0])
def test_a_block_of_10_percent_extreme_rows_cannot_hide_itself(offset: float) -> None:
    rng = np.random.default_rng(4)
    s = np.concatenate([rng.normal(size=9_000), offset + rng.normal(size=1_000)])
    p = TailNull.fit(s).pvalue(s[-1_000:])
    # nearly every block row is below a gated detector's flag level at the default fpr (0.01/8); far blocks,
    # every row of them, far below it
    if offset < 20:
        assert np.quantile(p, 0.95) < 0.01 / 8
    else:
        assert p.max() < 1e-6


# ----------------------------------------------------------------------------------------------- binom_interval


@given(n=st.integers(min_value=1, max_value=10**7), data=st.data())
def test_binom_interval_contains_the_estimate_and_stays_in_0_1(n: int, data: st.DataObject) -> None:
    k = data.draw(st.integers(min_value=0, max_value=n))
    lo, hi = binom_interval(k, n)
    assert 0.0 <= lo <= hi <= 1.0
    # up to rounding: see the exact-ends test below
    assert lo - 1e-12 <= k / n <= hi + 1e-12


def test_binom_interval_reaches_exactly_0_and_1_at_the_ends() -> None:
    for n in (6, 11, 21, 22):
        assert binom_interval(0, n)[0] == 0.0, n
        assert binom_interval(n, n)[1] == 1.0, n


def test_binom_interval_narrows_with_more_rows_and_handles_no_rows() -> None:
    assert binom_interval(0, 0) == (0.0, 1.0)
    lo_small, hi_small = binom_interval(10, 100)
    lo_big, hi_big = binom_interval(1000, 10_000)
    assert hi_big - lo_big < hi_small - lo_small
    assert lo_big < 0.1 < hi_big
    lo, hi = binom_interval(0, 1000)
    assert lo == 0.0 and 0.0 < hi < 0.01


def test_trimmed_tail_null_is_not_stretched_by_a_junk_block() -> None:
    rng = np.random.default_rng(0)
    clean = rng.normal(size=900)
    junk = rng.uniform(4.0, 6.0, size=100)
    s = np.concatenate([clean, junk])
    plain, trimmed = TailNull.fit(s, shape=True), TailNull.fit(s, shape=True, trim=True)
    assert np.median(trimmed.pvalue(junk)) < 1e-3 < np.median(plain.pvalue(junk))
    # on clean data trimming changes nothing
    a, b = TailNull.fit(clean, shape=True, trim=True), TailNull.fit(clean, shape=True)
    assert (a.q50, a.q75, a.k) == (b.q50, b.q75, b.k) and a.sample.size == b.sample.size


def test_separated_block_finds_a_far_block_and_not_a_heavy_tail() -> None:
    from poisonguard.stats import separated_block

    rng = np.random.default_rng(0)
    body = rng.lognormal(size=5000)
    assert separated_block(body) is None  # a heavy tail is continuous where 1% of rows lie beyond
    assert separated_block(np.r_[body, body.max() * 50]) is None  # one far row is not a block
    block = rng.uniform(80, 120, size=1000)  # a sixth of the data, far out
    edge = separated_block(np.r_[body, block])
    assert edge is not None and body.max() < edge <= block.min()
    assert separated_block(np.r_[body, rng.uniform(80, 120, size=5000)]) is None  # half the data is no block


# -------------------------------------------------------------------------------------------------- RarityNull


def test_rarity_null_is_calibrated_and_junk_rows_cannot_widen_it() -> None:
    """Clean rows: beta-binomial counts of rare words (mean 6%, clustered). Junk rows: every word rare. The fit
    must barely move as junk goes from none to a quarter of the rows, keep clean p-values calibrated, and put
    junk rows of a few words far below them."""
    rng = np.random.default_rng(0)
    n = 20_000
    total = rng.integers(1, 30, n)
    rare = rng.binomial(total, rng.beta(0.9, 14.0, n))
    base = RarityNull.fit(rare, total)
    assert base is not None
    assert base.mean == pytest.approx(0.9 / 14.9, rel=0.1)
    p = base.pvalue(rare, total)
    for level in (0.05, 0.01):
        assert np.mean(p <= level) <= level * 1.2
    junk_total = rng.integers(4, 30, n // 3)
    contaminated = RarityNull.fit(np.r_[rare, junk_total], np.r_[total, junk_total])
    assert contaminated is not None
    assert contaminated.a == pytest.approx(base.a, rel=0.1) and contaminated.b == pytest.approx(base.b, rel=0.1)
    assert contaminated.pvalue(junk_total, junk_total).max() < 1e-3
    # no rows with information (one word each) -> no null; rows without words are never suspicious
    assert RarityNull.fit(np.zeros(500, int), np.ones(500, int)) is None
    # a column of codes: most rows' words are their own; rare is the norm there, not junk
    codes_total = rng.integers(2, 5, 2000)
    assert RarityNull.fit(np.maximum(codes_total - rng.integers(0, 2, 2000), 0), codes_total) is None
    assert base.pvalue(np.array([0, 0]), np.array([0, 5])).tolist() == [1.0, 1.0]
