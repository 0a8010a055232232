"""Class-conditional outliers: a row that sits closer to another class than to the class it claims.

In the metric view, standardised per column, each class gets a robust centre (the coordinate-wise median).
The statistic is how far past the midpoint between the claimed class's centre and the nearest other centre the
row lies, along the line between them: the difference of the squared distances to the two centres over twice
their separation. A flipped or mislabelled row in a separable region scores high; its p-value comes from the
data's own distribution with an extrapolated tail.

A row scores at most what a row at the other class's centre scores (half the separation): beyond that centre it
is no nearer the other class, only farther out. And it must also be clearly nearer the other centre: the log of
the ratio of its distances to the two centres, in units of that pair's typical ratio, has a null of its own, and
the row's p-value is the larger of the two. With a rare class (fraud-like, 1-2% of the rows) the line points
wherever that class's median falls, and the majority's own sub-populations out along it made a second mode the
exponential tail could not hold: bank_marketing's clients of the periods when many said yes, far past the 'yes'
centre (5-6% of clean rows below p = 0.01), spambase's ham far out to the side and barely nearer the spam
centre (2.5%); both samples were called poisoned. Far from both centres, a row's distances are nearly equal.

Each pair is measured along its own line: as a difference of squared distances in one unit for every pair, rows
between two classes whose centres nearly coincide (adult's 'race' as the label: 'White' and 'Amer-Indian-Eskimo') made a
thin, long tail that the null extrapolated from the other pairs' body, and 2% of clean rows fell below 1e-3. On
two classes the two statistics differ by a constant factor, so the p-values are the same.
"""

from __future__ import annotations

import numpy as np

from ..context import ScanContext
from ..stats import TailNull
from ._text import fmt_num, quote
from .base import Detector, DetectorOutput, explain, register

SAMPLE = 200_000
TINY = 1e-12
PAIR_MIN_ROWS = 30


@register("class_outlier")
class ClassOutlierDetector(Detector):
    description = "the row lies far from its claimed class and closer to another class"

    def _fit(self, ctx: ScanContext) -> None:
        ctx.encode()
        X = ctx.metric_X
        rng = np.random.default_rng(ctx.seed + 7)
        sample = np.sort(rng.choice(ctx.n, min(ctx.n, SAMPLE), replace=False))
        Xs = X[sample].astype(np.float64)
        self.center_ = np.median(Xs, axis=0)
        sd = Xs.std(axis=0)
        self.scale_ = np.where(sd > 1e-9, sd, 1.0)
        Z = (Xs - self.center_) / self.scale_
        ys = ctx.y[sample]
        # Rows that carry a discovered trigger stay out of the class centres and the null: a heavy backdoor can
        # outnumber a small class's own rows, and its median would then make the genuine rows look misplaced.
        stamped = np.zeros(ctx.n, dtype=bool)
        for t in ctx.cache.get("triggers", []):
            stamped[t.rows] = True
        genuine = ~stamped[sample]
        n_classes = ctx.data.n_classes
        self.centers_ = np.zeros((n_classes, X.shape[1]))
        for c in range(n_classes):
            own = ys == c
            if (own & genuine).any():
                own &= genuine
            if own.any():
                self.centers_[c] = np.median(Z[own], axis=0)
        if genuine.sum() >= len(genuine) // 2:
            Z, ys = Z[genuine], ys[genuine]
        d2 = self._d2(Z)
        # the null is fitted to the uncapped statistic: fitted to the capped one, a few thousand rows between
        # classes whose centres nearly coincide piled up at their tiny caps and narrowed its body (adult under
        # 'education': 0.9% of clean rows below 1e-3, none uncapped)
        past, _, ratio, near = self._stat(d2, ys)
        self.null_ = TailNull.fit(past)
        # the ratio's unit per pair of classes: its typical size among the rows of one class whose nearest other
        # class is the other (where too few rows say, over all rows)
        size = np.abs(ratio)
        self.unit_ = np.full((n_classes, n_classes), max(float(np.median(size)), TINY))
        pair = ys * n_classes + near
        counts = np.bincount(pair, minlength=n_classes * n_classes)
        for code in np.flatnonzero(counts >= PAIR_MIN_ROWS):
            self.unit_.flat[code] = max(float(np.median(size[pair == code])), TINY)
        self.ratio_null_ = TailNull.fit(ratio / self.unit_[ys, near])

    def _d2(self, Z: np.ndarray) -> np.ndarray:
        return (Z**2).sum(axis=1)[:, None] - 2 * Z @ self.centers_.T + (self.centers_**2).sum(axis=1)[None, :]

    def _stat(self, d2: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """How far past the midpoint the row lies, the most that counts (at the other centre), the log of the
        ratio of its distances to its own and to the nearest other centre, and which class that is."""
        rows = np.arange(len(y))
        other = d2.copy()
        other[rows, y] = np.inf
        near = other.argmin(axis=1)
        own, alt = d2[rows, y], other[rows, near]
        sep = np.sqrt(((self.centers_[y] - self.centers_[near]) ** 2).sum(axis=1))
        ratio = 0.5 * np.log(np.maximum(own, TINY) / np.maximum(alt, TINY))
        return (own - alt) / np.maximum(2.0 * sep, 1e-9), sep / 2.0, ratio, near

    def _score(self, ctx: ScanContext, rows: np.ndarray) -> DetectorOutput:
        Z = (ctx.metric_X[rows].astype(np.float64) - self.center_) / self.scale_
        y = ctx.y[rows]
        d2 = self._d2(Z)
        past, cap, log_ratio, near = self._stat(d2, y)
        stat = np.minimum(past, cap)
        # A row nearer its own class's centre than any other is no class outlier, however the null's tail falls
        # (when most rows sit deep in their class, one level with both centres is in that tail, with no reason).
        # Otherwise it must be far past the midpoint and clearly nearer the other centre, each in its own null's
        # tail (the larger p-value of the two).
        pv = np.where(
            stat > 0,
            np.maximum(self.null_.pvalue(stat), self.ratio_null_.pvalue(log_ratio / self.unit_[y, near])),
            1.0,
        )
        cls = ctx.data.classes
        ratio = np.exp(log_ratio)

        def build(i: np.ndarray) -> np.ndarray:
            txt = (
                "lies "
                + fmt_num(ratio[i])
                + "x farther from the typical "
                + quote(cls[y[i]])
                + " row than from the typical "
                + quote(cls[near[i]])
                + " row"
            )
            return np.where(ratio[i] > 1.0, txt, "")

        reasons = explain(pv, build)
        return DetectorOutput(scores=1.0 - pv, pvalues=pv, reasons=reasons)
