"""Duplicates and conflicts: floods of near-copies, and identical rows that carry different labels.

Near-copies are rows within a tiny distance of each other in the metric view (5% of the median distance to the
nearest distinct row), joined into groups. A group is a flood when its size is improbable under a Poisson model
whose rate is the data's own duplication rate (floored, so natural pairs and triples stay quiet). Identical
features with different labels are conflicts; the rows holding the minority label are the suspects.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import poisson

from ..context import ScanContext, duplicate_groups
from ._text import fmt_int, quote
from .base import Detector, DetectorOutput, register

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
        }

    def _score(self, ctx: ScanContext, rows: np.ndarray) -> DetectorOutput:
        m = self.near_size_[rows]
        p_flood = np.where(m > 1, poisson.sf(m - 2, self.rate_), 1.0)
        share = self.own_share_[rows]
        p_conflict = np.where(share < 1, share, 1.0)
        pv = np.minimum(1.0, 2 * np.minimum(p_flood, p_conflict))
        cls = ctx.data.classes
        exact = self.exact_size_[rows]
        flood_txt = np.where(
            m > 2, "one of " + fmt_int(m) + " near-identical rows (" + fmt_int(exact) + " exact copies)", ""
        )
        conflict_txt = np.where(
            share < 1,
            "identical features to "
            + fmt_int(exact - 1)
            + " other rows, mostly labelled "
            + quote(cls[self.majority_[rows]]),
            "",
        )
        sep = np.where((flood_txt != "") & (conflict_txt != ""), "; ", "")
        reasons = flood_txt + sep + conflict_txt
        return DetectorOutput(
            scores=1.0 - pv,
            pvalues=pv,
            reasons=reasons.astype(object),
            extra={"duplicate_group": self.groups_.near[rows]},
        )
