"""Duplicates and conflicts: floods of near-copies, and identical rows that carry different labels.

Near-copies are rows within a tiny distance of each other in the metric view (5% of the median distance to the
nearest distinct row), joined into groups. A group is a flood when
- its size is improbable under a Poisson model whose rate is the data's own duplication rate (floored, so natural
  pairs and triples stay quiet) and its label goes against what the rest of the data says (the label model, run
  first, tells); or
- whatever its label, its size is improbable even under a heavy (zeta) tail fitted to how often the data
  duplicates itself: real data repeats records (spam sent many times, template rows), but an attacker who floods
  a region with hundreds of copies of a few rows leaves groups far beyond that tail. The rows of such a group
  that carry its majority label are the suspects (a flood's copies, not the row they copy). Rows that hold
  nothing but their columns' usual values, bar a few (``LOW_INFORMATION``), are left to the first test:
  near-empty records (a message of one word, a form left at its defaults) coincide however the data duplicates
  itself elsewhere (spambase, 400 rows: two groups of 14 and 15 near-empty emails, each row with one to three
  values off its column's mode, were called a flood), and copies of such a row under the label the data gives
  it move no model.
Identical features with different labels are conflicts; the rows holding the minority label are the suspects.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import brentq
from scipy.special import zeta
from scipy.stats import poisson

from ..context import ScanContext, duplicate_groups
from ..stats import sidak
from ._text import fmt_int, quote
from .base import Detector, DetectorOutput, explain, register

MIN_RATE = 0.25
# a row off its columns' usual values in at most this share of them (and at most ``LOW_INFORMATION_MIN`` of
# them on narrow tables) holds too little to tell a copy from a coincidence
LOW_INFORMATION, LOW_INFORMATION_MIN = 0.05, 1
# groups needed before the tail is read from the ratio of triples to pairs (fewer: a few floods would set it)
MIN_GROUPS_FOR_PAIR_TAIL = 30
USUAL_SAMPLE = 20_000


def _zeta_exponent(ratio: float, k0: int) -> float:
    """Exponent ``s`` of a zeta law (``P(k) ~ k ** -s``, k >= 1) with ``P(k > k0 | k >= k0) = ratio``."""

    def gap(s: float) -> float:
        return float(zeta(s, k0 + 1) / zeta(s, k0)) - ratio

    lo, hi = 1.0001, 80.0
    if gap(lo) <= 0:
        return lo
    if gap(hi) >= 0:
        return hi
    return float(brentq(gap, lo, hi))


def group_size_pvalues(sizes: np.ndarray) -> np.ndarray:
    """P-value per group (``sizes``: rows per group, singletons included) that the data's own duplication would
    make any group this large.

    The number of extra copies in a group follows a zeta (discrete power) law, the classic model of repeat
    counts, its exponent read from how the counts fall off at the smallest sizes: triples against pairs, and
    where there are enough of them, groups of four against triples; the heavier of the two tails is used. With
    few groups, the exponent comes from the share of rows that have any copy. All read only the smallest sizes,
    so a few huge floods cannot set their own null. Sidak over all groups: a natural group is as likely to be
    the large one as any other.
    """
    sizes = np.asarray(sizes, dtype=np.float64)
    n_groups = float((sizes > 0).sum())
    at_least = [float((sizes >= m).sum()) for m in range(5)]
    if at_least[2] < MIN_GROUPS_FOR_PAIR_TAIL:
        s = _zeta_exponent((at_least[2] + 0.5) / (n_groups + 1), 1)
        sf = zeta(s, np.maximum(sizes, 1.0)) / zeta(s, 1.0)
    else:
        sf = np.zeros_like(sizes)
        for m0 in (2, 3):
            if at_least[m0] < MIN_GROUPS_FOR_PAIR_TAIL:
                break
            s = _zeta_exponent((at_least[m0 + 1] + 0.5) / (at_least[m0] + 1), m0 - 1)
            extra = np.maximum(sizes - 1, m0 - 1)
            sf = np.maximum(sf, at_least[m0] / n_groups * zeta(s, extra) / zeta(s, m0 - 1))
    sf = np.where(sizes > 1, np.minimum(sf, 1.0), 1.0)
    return sidak(sf, int(n_groups))


def off_usual_counts(X: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, int]:
    """Per row, in how many columns it holds something other than the column's usual value, and how many columns
    have one: the value held by at least half of the groups of copies (each group counted once, so a flood cannot
    make its own values usual). Missing is a value."""
    _, first = np.unique(groups, return_index=True)
    # the candidate value is read on at most USUAL_SAMPLE groups (evenly spaced), then counted on all of them:
    # a continuous column (an embedding's) is not sorted in full only to find that it has no usual value
    probe = first[:: max(1, len(first) // USUAL_SAMPLE)]
    out = np.zeros(X.shape[0], dtype=np.int64)
    usual = 0
    for j in range(X.shape[1]):
        values, counts = np.unique(X[probe, j], return_counts=True, equal_nan=True)
        top = int(counts.argmax())
        if counts[top] < 0.4 * len(probe):
            continue
        v = values[top]
        hit = np.isnan(X[:, j]) if np.isnan(v) else X[:, j] == v
        if hit[first].sum() < 0.5 * len(first):
            continue
        usual += 1
        out += ~hit
    return out, usual


def low_information(X: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Rows of a table whose columns mostly have a usual value (sparse counts, flags, defaults) that hold it in
    all but ``LOW_INFORMATION`` of those columns (``LOW_INFORMATION_MIN`` at least)."""
    off, usual = off_usual_counts(X, groups)
    if usual < 0.5 * X.shape[1]:
        return np.zeros(X.shape[0], dtype=bool)
    return off <= max(LOW_INFORMATION_MIN, int(LOW_INFORMATION * usual))


@register("duplicates")
class DuplicatesDetector(Detector):
    description = "floods of near-identical rows, and identical rows with different labels"

    def _fit(self, ctx: ScanContext) -> None:
        g = duplicate_groups(ctx)
        y, n_classes = ctx.y, ctx.data.n_classes
        self.near_size_ = np.bincount(g.near)[g.near]
        self.exact_size_ = np.bincount(g.exact)[g.exact]
        self.rate_ = max(float(np.mean(self.near_size_ - 1)), MIN_RATE)
        # A group of copies is a flood only when its label goes against the rest of the data: the label model's
        # folds keep a group together, so its out-of-fold p(label) for the group says what the *other* rows
        # imply. Natural duplicates (repeated messages, coarse records) agree with their surroundings.
        oof = ctx.cache.get("oof_proba")
        if oof is not None:
            p_obs = oof[np.arange(ctx.n), y]
            mean_p = np.bincount(g.near, weights=p_obs) / np.bincount(g.near)
            self.against_ = mean_p[g.near] < 0.5
        else:
            self.against_ = np.ones(ctx.n, dtype=bool)
        # a group far beyond the data's own duplication tail is a flood whatever its label; its majority-label
        # rows are the copies (the row they copy may carry another label)
        sizes = np.bincount(g.near)
        near_key = g.near * n_classes + y
        near_counts = np.bincount(near_key, minlength=sizes.size * n_classes).reshape(-1, n_classes)
        # (not for groups of near-empty rows, which coincide naturally: see the module docstring)
        empty = np.bincount(g.near, weights=low_information(ctx.tree_X, g.near), minlength=sizes.size) > sizes / 2
        by_size = (near_counts.argmax(axis=1)[g.near] == y) & ~empty[g.near]
        self.p_size_ = np.where(by_size, group_size_pvalues(sizes)[g.near], 1.0)
        # label counts inside each exact group: share of the row's own label
        key = g.exact * n_classes + y
        own = np.bincount(key, minlength=(int(g.exact.max()) + 1) * n_classes)[key]
        self.own_share_ = own / self.exact_size_
        group_counts = np.bincount(key, minlength=(int(g.exact.max()) + 1) * n_classes).reshape(-1, n_classes)
        self.majority_ = group_counts.argmax(axis=1)[g.exact]
        self.groups_ = g
        self.info = {
            "epsilon": round(g.epsilon, 6),
            "duplicate_rate": round(self.rate_, 4),
            "rows_in_exact_groups": int((self.exact_size_ > 1).sum()),
            "rows_in_near_groups": int((self.near_size_ > 1).sum()),
            "conflicting_rows": int((self.own_share_ < 1).sum()),
            "rows_in_groups_against_the_data": int(((self.near_size_ > 1) & self.against_).sum()),
            "rows_in_improbably_large_groups": int((self.p_size_ < 0.001).sum()),
            "rows_in_groups_of_near_empty_rows": int(((self.near_size_ > 1) & empty[g.near]).sum()),
        }

    def _transfer(self, reference: ScanContext, ctx: ScanContext) -> None:
        """Copies grouped within the new rows, judged by the trusted duplication rate (a flood in the new rows
        would otherwise raise the rate it is judged by) and the trusted label model (run first)."""
        rate = self.rate_
        self._fit(ctx)
        self.rate_ = rate
        self.info["duplicate_rate"] = round(rate, 4)

    def _score(self, ctx: ScanContext, rows: np.ndarray) -> DetectorOutput:
        m = self.near_size_[rows]
        p_flood = np.where((m > 1) & self.against_[rows], poisson.sf(m - 2, self.rate_), 1.0)
        p_flood = np.minimum(p_flood, self.p_size_[rows])
        share = self.own_share_[rows]
        p_conflict = np.where(share < 1, share, 1.0)
        pv = np.minimum(1.0, 2 * np.minimum(p_flood, p_conflict))
        cls = ctx.data.classes
        exact = self.exact_size_[rows]
        majority = self.majority_[rows]

        def build(i: np.ndarray) -> np.ndarray:
            flood = np.where(
                m[i] > 2,
                "one of " + fmt_int(m[i]) + " near-identical rows (" + fmt_int(exact[i]) + " exact copies)",
                "",
            )
            conflict = np.where(
                share[i] < 1,
                "identical features to "
                + fmt_int(exact[i] - 1)
                + " other rows, mostly labelled "
                + quote(cls[majority[i]]),
                "",
            )
            sep = np.where((flood != "") & (conflict != ""), "; ", "")
            return flood + sep + conflict

        # conflicts are worth a sentence even when they are not significant on their own
        reasons = explain(np.where((share < 1) | (m > 2), 0.0, pv), build)
        return DetectorOutput(
            scores=1.0 - pv,
            pvalues=pv,
            reasons=reasons.astype(object),
            extra={"duplicate_group": self.groups_.near[rows]},
        )
