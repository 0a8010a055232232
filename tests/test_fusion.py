"""Fusion: scores, flags at the false-alarm rate, gating, reasons and the verdict (property-based)."""

from __future__ import annotations

import numpy as np
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from poisonguard.fusion import excess, fuse, top_reasons, verdict

unit = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)


@st.composite
def fusion_inputs(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    n = draw(st.integers(min_value=1, max_value=12))
    d = draw(st.integers(min_value=1, max_value=6))
    # mix of ordinary, tiny and exact 0/1 p-values
    p_value = st.one_of(unit, st.floats(min_value=0.0, max_value=1e-3), st.sampled_from([0.0, 1.0]))
    pvalues = draw(arrays(np.float64, (n, d), elements=p_value))
    weights = draw(arrays(np.float64, d, elements=st.floats(min_value=0.1, max_value=10.0)))
    gated = draw(arrays(np.bool_, d))
    fpr = draw(st.floats(min_value=1e-4, max_value=0.49))
    return pvalues, weights, gated, fpr


PROPERTY = settings(max_examples=80, deadline=None)


@PROPERTY
@given(fusion_inputs())
def test_fuse_scores_flags_and_levels(inputs) -> None:
    pvalues, weights, gated, fpr = inputs
    f = fuse(pvalues, weights, gated, fpr)
    n, d = pvalues.shape
    assert f.score.shape == f.pvalue.shape == f.flagged.shape == (n,)
    assert ((f.score >= 0) & (f.score <= 1)).all()
    assert ((f.pvalue >= 0) & (f.pvalue <= 1)).all()
    np.testing.assert_array_equal(f.flagged, f.pvalue <= fpr)
    np.testing.assert_allclose(f.levels, weights / weights.sum() * fpr)
    # the score threshold separates flagged rows from the others, and the score ranks rows like the p-value
    assert 0.0 <= f.threshold < 1.0
    assert (f.score[f.flagged] >= f.threshold - 1e-12).all()
    assert (f.score[~f.flagged] <= f.threshold + 1e-12).all()
    smaller = f.pvalue[:, None] < f.pvalue[None, :]
    assert (f.score[:, None] >= f.score[None, :])[smaller].all()
    np.testing.assert_array_equal(np.sort(f.order, axis=1), np.tile(np.arange(d), (n, 1)))
    # the false-alarm split: a row that some detector puts at or below its level is flagged, and no other
    below = (pvalues <= f.levels[None, :] * (1 + 1e-12)).any(axis=1)
    np.testing.assert_array_equal(f.flagged[~below], False)
    np.testing.assert_array_equal(f.flagged[(pvalues < f.levels[None, :] * (1 - 1e-9)).any(axis=1)], True)


@PROPERTY
@given(fusion_inputs(), st.data())
def test_lowering_a_pvalue_never_lowers_the_score(inputs, data: st.DataObject) -> None:
    pvalues, weights, gated, fpr = inputs
    n, d = pvalues.shape
    i = data.draw(st.integers(0, n - 1))
    j = data.draw(st.integers(0, d - 1))
    lower = data.draw(st.floats(min_value=0.0, max_value=pvalues[i, j]))
    before = fuse(pvalues, weights, gated, fpr)
    changed = pvalues.copy()
    changed[i, j] = lower
    after = fuse(changed, weights, gated, fpr)
    assert after.score[i] >= before.score[i]
    assert after.flagged[i] >= before.flagged[i]
    others = np.arange(n) != i
    np.testing.assert_array_equal(after.score[others], before.score[others])


@PROPERTY
@given(fusion_inputs(), st.data())
def test_a_gated_detector_above_its_level_does_not_change_the_score(inputs, data: st.DataObject) -> None:
    pvalues, weights, gated, fpr = inputs
    assume(gated.any())
    j = data.draw(st.sampled_from(np.flatnonzero(gated).tolist()))
    base = fuse(pvalues, weights, gated, fpr)
    quiet = pvalues[:, j] > base.levels[j]
    assume(quiet.any())
    changed = pvalues.copy()
    new = data.draw(arrays(np.float64, int(quiet.sum()), elements=st.floats(min_value=base.levels[j], max_value=1.0)))
    changed[quiet, j] = np.maximum(new, np.nextafter(base.levels[j], 2.0))
    after = fuse(changed, weights, gated, fpr)
    np.testing.assert_array_equal(after.score, base.score)
    # and silencing it altogether (p = 1) is the same as its staying quiet
    changed[quiet, j] = 1.0
    np.testing.assert_array_equal(fuse(changed, weights, gated, fpr).score, base.score)


@PROPERTY
@given(fusion_inputs())
def test_an_ungated_detector_always_counts(inputs) -> None:
    pvalues, weights, gated, fpr = inputs
    f = fuse(pvalues, weights, gated, fpr)
    w = weights / weights.sum()
    for j in np.flatnonzero(~gated):
        bound = 1.0 - np.minimum(1.0, pvalues[:, j] / w[j])
        assert (f.score >= bound - 1e-12).all()


@PROPERTY
@given(fusion_inputs(), st.integers(min_value=0, max_value=4), st.floats(min_value=0.0, max_value=1.0), st.data())
def test_top_reasons_only_from_significant_detectors_and_at_most_top(
    inputs, top: int, level: float, data: st.DataObject
) -> None:
    pvalues, weights, gated, fpr = inputs
    n, d = pvalues.shape
    empty = data.draw(arrays(np.bool_, (n, d)))
    reasons = np.array([[f"reason of d{j}" for j in range(d)]] * n, dtype=object)
    reasons[empty] = ""
    order = fuse(pvalues, weights, gated, fpr).order
    out = top_reasons(reasons, pvalues, order, top=top, level=level)
    assert out.shape == (n,) and out.dtype == object
    for i in range(n):
        said = [] if out[i] == "" else out[i].split("; ")
        assert len(said) <= top
        detectors = [int(r.removeprefix("reason of d")) for r in said]
        # exactly the first `top` detectors in the row's order that are significant and have something to say
        expected = [j for j in order[i, :top] if pvalues[i, j] <= level and reasons[i, j] != ""]
        assert detectors == expected


def test_top_reasons_follows_the_order_given() -> None:
    reasons = np.array([["a", "b", "c"], ["a", "b", "c"]], dtype=object)
    pvalues = np.array([[0.01, 0.02, 0.03], [0.01, 0.5, 0.03]])
    order = np.array([[2, 0, 1], [1, 2, 0]])
    out = top_reasons(reasons, pvalues, order, top=2, level=0.05)
    assert out.tolist() == ["c; a", "c"]


@PROPERTY
@given(
    n=st.integers(min_value=1_000, max_value=200_000),
    levels=st.lists(st.floats(min_value=1e-4, max_value=0.02), min_size=1, max_size=6),
)
def test_verdict_is_clean_when_every_detector_flags_what_clean_data_would(n: int, levels: list[float]) -> None:
    excesses = [excess(f"d{j}", round(level * n), n, level) for j, level in enumerate(levels)]
    fpr = sum(levels)
    n_flagged = sum(e.flagged for e in excesses)
    level, evidence = verdict(excesses, n_flagged, n, fpr, [])
    assert level == "clean"
    assert evidence and "false-alarm rate" in evidence[-1]


@PROPERTY
@given(
    n=st.integers(min_value=1_000, max_value=200_000),
    levels=st.lists(st.floats(min_value=1e-4, max_value=0.02), min_size=1, max_size=6),
    data=st.data(),
)
def test_verdict_is_poisoned_for_a_large_excess(n: int, levels: list[float], data: st.DataObject) -> None:
    guilty = data.draw(st.integers(0, len(levels) - 1))
    counts = [round(level * n) for level in levels]
    counts[guilty] = int(2 * levels[guilty] * n + 0.02 * n + 20)
    excesses = [excess(f"d{j}", c, n, lv) for j, (c, lv) in enumerate(zip(counts, levels, strict=True))]
    level, evidence = verdict(excesses, sum(counts), n, sum(levels), [])
    assert level == "poisoned"
    assert any(e.startswith(f"d{guilty}: ") for e in evidence)


def test_verdict_is_suspicious_for_a_worse_source_on_otherwise_clean_data() -> None:
    excesses = [excess("d0", 10, 1_000, 0.01)]
    level, evidence = verdict(excesses, 10, 1_000, 0.01, ["vendor-b"])
    assert level == "suspicious"
    assert any("vendor-b" in e for e in evidence)


def test_excess_counts_flags_beyond_the_expected_rate() -> None:
    ex = excess("d", flagged=50, n=1_000, level=0.01)
    assert ex.expected == 10
    assert ex.fraction == 0.04
    assert 0.0 < ex.low < 0.04 < ex.high
    assert ex.pvalue < 1e-10
    none = excess("d", flagged=0, n=1_000, level=0.01)
    assert none.pvalue == 1.0 and none.fraction == 0.0 and none.low == 0.0


def test_a_detector_with_a_plain_excess_earns_a_larger_level() -> None:
    """A tenth of the rows with p-values around 1e-3 (a junk block judged by a null it stretched) get flagged;
    uniform p-values (clean data) keep the detector's own level."""
    rng = np.random.default_rng(0)
    n = 2_000
    clean = rng.uniform(size=(n, 2))
    base = fuse(clean, np.array([4.0, 1.0]), np.array([False, True]), 0.01)
    np.testing.assert_allclose(base.levels, [0.008, 0.002])
    junk = clean.copy()
    block = rng.choice(n, n // 10, replace=False)
    junk[block, 1] = rng.uniform(5e-4, 4e-3, size=len(block))
    f = fuse(junk, np.array([4.0, 1.0]), np.array([False, True]), 0.01)
    assert f.levels[1] > base.levels[1] and f.levels[0] == base.levels[0]
    assert f.flagged[block].mean() > 0.95
    # the price: clean rows among the flags, at most about the FDR (here the clean p-values are uniform, the
    # worst case; a detector's conservative null gives fewer)
    clean_rows = np.setdiff1d(np.arange(n), block)
    assert f.flagged[clean_rows].sum() / f.flagged.sum() < 0.3
    # without adaptation the block stays mostly below the flag line
    assert fuse(junk, np.array([4.0, 1.0]), np.array([False, True]), 0.01, adapt=False).flagged[block].mean() < 0.5


def test_rows_a_trigger_explains_earn_no_other_detector_a_larger_level() -> None:
    """A fifth of the rows carry a trigger: the trigger detector flags them, and a second detector sees them too
    (tiny p-values). Counted, they raise the second detector's level to its cap, and its false-discovery allowance
    goes to clean rows; explained, they leave its level where clean data puts it."""
    rng = np.random.default_rng(1)
    n = 5_000
    P = rng.uniform(size=(n, 3))
    stamped = rng.choice(n, n // 5, replace=False)
    P[stamped, 1] = 1e-12  # the trigger
    P[stamped, 2] = rng.uniform(1e-9, 1e-6, size=len(stamped))  # another detector that also sees the stamp
    w, gated = np.array([4.0, 1.0, 1.0]), np.array([False, True, True])
    clean = np.setdiff1d(np.arange(n), stamped)
    counted = fuse(P, w, gated, 0.01)
    assert counted.levels[2] > 0.01 and counted.flagged[clean].mean() > 0.02
    mask = np.zeros(n, dtype=bool)
    mask[stamped] = True
    explained = fuse(P, w, gated, 0.01, explained=mask)
    np.testing.assert_allclose(explained.levels, [0.01 * 4 / 6, 0.01 / 6, 0.01 / 6])
    assert explained.flagged[stamped].all()
    assert explained.flagged[clean].mean() <= 0.015


def test_a_detector_that_may_not_adapt_keeps_its_level_but_testifies_at_the_earned_one() -> None:
    """The same block seen by a detector marked not to adapt (its clean rows' p-values are disturbed by the
    poison): its flag level stays, the level it would have earned is reported, and the scan's verdict counts
    the excess there."""
    rng = np.random.default_rng(0)
    n = 2_000
    P = rng.uniform(size=(n, 2))
    block = rng.choice(n, n // 10, replace=False)
    P[block, 1] = rng.uniform(5e-4, 4e-3, size=len(block))
    w, gated = np.array([4.0, 1.0]), np.array([False, True])
    free = fuse(P, w, gated, 0.01)
    held = fuse(P, w, gated, 0.01, adapts=np.array([True, False]))
    np.testing.assert_allclose(held.levels, [0.008, 0.002])
    assert held.earned[1] == free.levels[1] > held.levels[1]
    assert held.flagged[block].mean() < 0.5 < free.flagged[block].mean()
    ex = excess("d", int((P[:, 1] <= held.earned[1]).sum()), n, float(held.earned[1]), flags=False)
    level, evidence = verdict([ex], int(held.flagged.sum()), n, 0.01, [])
    assert level == "poisoned"
    assert "not flagged at that level" in evidence[0]


@PROPERTY
@given(fusion_inputs(), st.data())
def test_a_lead_ranks_rows_right_after_the_flagged_ones_and_changes_no_flag(inputs, data: st.DataObject) -> None:
    pvalues, weights, gated, fpr = inputs
    n, d = pvalues.shape
    lead_value = st.one_of(st.just(np.inf), st.floats(min_value=0.0, max_value=1.0))
    lead = data.draw(arrays(np.float64, (n, d), elements=lead_value))
    plain = fuse(pvalues, weights, gated, fpr)
    f = fuse(pvalues, weights, gated, fpr, lead=lead)
    np.testing.assert_array_equal(f.flagged, plain.flagged)
    np.testing.assert_array_equal(f.pvalue, plain.pvalue)
    assert (f.score >= plain.score - 1e-12).all()  # a lead only raises a row
    assert (f.score[~f.flagged] <= f.threshold + 1e-12).all()
    led = np.isfinite(lead).any(axis=1) & ~f.flagged
    # within twice the flag level's distance of the threshold: above every row that is neither flagged nor led
    # and whose fused ratio is more than twice the false-alarm rate
    assert (f.score[led] >= 2 * f.threshold - 1 - 1e-9).all()
    if f.led_by is not None:
        np.testing.assert_array_equal(f.led_by[~led], -1)
        assert (f.led_by[led] >= 0).all()
