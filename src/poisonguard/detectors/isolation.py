"""Global isolation: rows that are easy to isolate from all others (Liu, Ting and Zhou 2008).

Catches out-of-distribution junk whatever its label. The forest works per column: numbers as signed
log(1 + robust distance from the median), categories as their codes, missing values at the column median. Its
random splits are drawn between a column's own extremes, so a row far out is cut off in a few splits. (On the
metric view, whose one-hot categories and PCA serve distances, a block of junk rows 10-30 robust scales out hid
in plain sight; on raw numbers, the natural heavy tails of count data looked like junk.) The forest is fitted on a sample;
every row is scored in batches; the p-value uses the tail model in ``stats`` so that a large block of junk rows
cannot hide itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
from sklearn.ensemble import IsolationForest

from ..context import ScanContext
from ..stats import TailNull
from .base import Detector, DetectorOutput, explain, positive_int, register


@register("isolation")
class IsolationDetector(Detector):
    description = "the row is unusual compared with all rows (isolation forest)"
    refits_on_transfer = True
    constraints: ClassVar[dict[str, tuple[Callable[[Any], bool], str]]] = {
        "n_estimators": (positive_int, "a positive integer")
    }

    def _fit(self, ctx: ScanContext) -> None:
        ctx.encode()
        X = ctx.tree_X
        assert X is not None
        rng = np.random.default_rng(ctx.seed + 11)
        sample = rng.choice(ctx.n, min(ctx.n, 100_000), replace=False)
        with np.errstate(all="ignore"):
            head = X[sample[:20_000]]  # column statistics settle on 20,000 rows
            fill = np.nanmedian(head, axis=0)
            q25, q75 = np.nanpercentile(head, [25, 75], axis=0)
            sd = np.nanstd(head, axis=0)
        self.fill_ = np.where(np.isfinite(fill), fill, 0.0)
        scale = np.where(q75 - q25 > 0, q75 - q25, np.where(sd > 0, sd, 1.0))
        self.scale_ = np.where(np.isfinite(scale), scale, 1.0)
        self.numeric_ = (
            ~np.asarray(ctx.encoder.tree_categorical, dtype=bool) if ctx.encoder else np.ones(X.shape[1], bool)
        )
        Xs = self._view(X, sample)
        self.forest_ = IsolationForest(
            # 100 trees settle the score well; on very large data 50 do, at half the scoring cost
            n_estimators=int(self.param("n_estimators", 100 if ctx.n <= 300_000 else 50)),
            max_samples=min(256, len(sample)),
            random_state=ctx.seed,
        ).fit(Xs)
        # the forest scores its own sample; that distribution defines the null body
        self.null_ = TailNull.fit(-self.forest_.score_samples(Xs[:20_000]), shape=True, trim=True)

    def _transfer(self, reference: ScanContext, ctx: ScanContext) -> None:
        """A forest fitted on trusted rows only splits within their range, so a new row far beyond it is isolated
        no faster than the trusted extremes. Refit the trees on the trusted sample plus the new rows (keeping the
        trusted view: fill values and scales) and take the null from the trusted rows' scores alone, so clean
        new rows are still judged like trusted ones."""
        assert reference.tree_X is not None and ctx.tree_X is not None
        rng = np.random.default_rng(ctx.seed + 13)
        trusted = rng.choice(reference.n, min(reference.n, 100_000), replace=False)
        new = rng.choice(ctx.n, min(ctx.n, 100_000), replace=False)
        Xt = self._view(reference.tree_X, trusted)
        self.forest_ = IsolationForest(
            n_estimators=self.forest_.n_estimators,
            max_samples=min(256, len(trusted) + len(new)),
            random_state=ctx.seed,
        ).fit(np.vstack([Xt, self._view(ctx.tree_X, new)]))
        self.null_ = TailNull.fit(-self.forest_.score_samples(Xt[:20_000]), shape=True, trim=True)

    def _view(self, X: np.ndarray, rows: np.ndarray) -> np.ndarray:
        part = X[rows]  # float32 copy
        fill = self.fill_.astype(np.float32)
        np.copyto(part, np.broadcast_to(fill, part.shape), where=np.isnan(part))
        num = self.numeric_
        z = (part[:, num] - fill[num]) / self.scale_[num].astype(np.float32)
        part[:, num] = np.sign(z) * np.log1p(np.abs(z))
        return part

    def _score(self, ctx: ScanContext, rows: np.ndarray) -> DetectorOutput:
        assert ctx.tree_X is not None
        stat = -self.forest_.score_samples(self._view(ctx.tree_X, rows))
        pv = self.null_.pvalue(stat)
        reasons = explain(
            pv,
            lambda i: (
                "unusual row overall: fewer than "
                + np.char.mod("%.2g", 100 * pv[i]).astype(object)
                + "% of rows look this odd"
            ),
        )
        return DetectorOutput(scores=1.0 - pv, pvalues=pv, reasons=reasons)
