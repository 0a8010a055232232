"""Duplicates and conflicts: floods of near-copies, and identical rows that carry different labels.

Near-copies are rows within a tiny distance of each other in the metric view (5% of the median distance to the
nearest distinct row), joined into groups. A group is a flood when its size is improbable under a Poisson model
whose rate is the data's own duplication rate (floored, so natural pairs and triples stay quiet) and its label
goes against what the rest of the data says (the label model, run first, tells). Identical
features with different labels are conflicts; the rows holding the minority label are the suspects.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import poisson

from ..context import ScanContext, duplicate_groups
from ._text import fmt_int, quote
from .base import Detector, DetectorOutput, explain, register

MIN_RATE = 0.25


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
