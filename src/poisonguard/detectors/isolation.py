"""Global isolation: rows that are easy to isolate from all others (Liu, Ting and Zhou 2008).

Catches out-of-distribution junk whatever its label. The forest works per column: numbers as signed
log(1 + robust distance from the median), categories as their codes, missing values at the column median. Its
random splits are drawn between a column's own extremes, so a row far out is cut off in a few splits. (On the
metric view, whose one-hot categories and PCA serve distances, a block of junk rows 10-30 robust scales out hid
in plain sight; on raw numbers, the natural heavy tails of count data looked like junk.) The forest is fitted on a sample;
every row is scored in batches; the p-value uses the tail model in ``stats`` so that a large block of junk rows
cannot hide itself.

A block of junk that is a sixth of the data defeats both: its rows mask each other in the forest's samples, and
they fill the top of the null the forest is judged by (at a tenth they already set its tail shape). So a second,
simpler view runs beside the forest: how far a row lies from each numeric column's median in robust scales, its
*median* over the columns (a row far out in most of its columns at once; the medians and interquartile ranges it
is measured with survive a quarter of junk, and the median over columns ignores the natural outliers of one or
two heavy-tailed columns). A block at the top of that statistic that a wide empty gap sets apart
(``stats.separated_block``: a natural tail is continuous) is left out of the forest's fit and of both nulls.
Both tails may be heavier than exponential (a common factor behind heavy-tailed columns, the median of skewed
columns). The second view needs three numeric columns, and abstains where its statistic has no body to fit: a
quarter of the rows at 0 (sparse counts, pixels with a blank background), its median equal to its 75th
percentile (a few small integer columns), or a null that puts significantly more than 1% of its own rows below
1%. The row's p-value is the Bonferroni minimum of the two views.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
from scipy.stats import binom
from sklearn.ensemble import IsolationForest

from ..context import ScanContext
from ..stats import TailNull, separated_block
from .base import Detector, DetectorOutput, explain, positive_int, register

FAR_MIN_COLUMNS = 3
FAR_MAX_ZERO_SHARE = 0.25  # rows whose statistic is exactly 0 (at the median in most columns); above this, abstain
# A common factor behind several heavy-tailed columns (wealth behind every amount) gives the forest's scores a
# tail heavier than exponential; with the shape held at k >= 1, 1.7% of such clean rows fell below 1e-3
FOREST_MIN_K = 0.5
FAR_MIN_K = 0.5  # the median of skewed columns has a tail heavier than exponential; its shape is fitted


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
        self.far_null_: TailNull | None = None
        self.info = {}
        # A block of rows that the median distance sets apart by a wide empty gap is junk to both views: the
        # forest is fitted and its null taken without it (in the forest's sample it masks itself, and at a tenth
        # of the data it also sets the null's tail shape), and the far view's null is fitted below it.
        far = self._far(Xs) if int(self.numeric_.sum()) >= FAR_MIN_COLUMNS else None
        edge = None if far is None else separated_block(far)
        keep = np.ones(len(Xs), dtype=bool) if edge is None else far < edge
        self.info["block_rows_in_sample"] = int((~keep).sum())
        self.forest_ = IsolationForest(
            # 100 trees settle the score well; on very large data 50 do, at half the scoring cost
            n_estimators=int(self.param("n_estimators", 100 if ctx.n <= 300_000 else 50)),
            max_samples=min(256, int(keep.sum())),
            random_state=ctx.seed,
        ).fit(Xs[keep])
        # the forest scores its own sample; that distribution defines the null body
        self.null_ = TailNull.fit(
            -self.forest_.score_samples(Xs[keep][:20_000]), shape=True, trim=True, min_k=FOREST_MIN_K
        )
        if far is not None:
            body = far[keep]
            q50, q75 = np.quantile(body, [0.5, 0.75])
            if float(np.mean(far == 0)) <= FAR_MAX_ZERO_SHARE and q75 > q50:
                null = TailNull.fit(body, shape=True, min_k=FAR_MIN_K)
                # the null must describe its own rows: more of them at p <= 1% than chance allows means a body
                # too narrow for its tail (near-ties), and the view would flag clean rows
                c = int((null.pvalue(body) <= 0.01).sum())
                if binom.sf(c - 1, len(body), 0.01) > 1e-3:
                    self.far_null_ = null
        self.info["far_view"] = self.far_null_ is not None

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

    def _far(self, V: np.ndarray) -> np.ndarray:
        """Median over numeric columns of log(1 + robust distance from the column's median)."""
        return np.median(np.abs(V[:, self.numeric_]), axis=1).astype(np.float64)

    def _score(self, ctx: ScanContext, rows: np.ndarray) -> DetectorOutput:
        assert ctx.tree_X is not None
        V = self._view(ctx.tree_X, rows)
        pv = self.null_.pvalue(-self.forest_.score_samples(V))
        far_null = self.far_null_
        if far_null is None:
            p_far = np.ones_like(pv)
            scales = np.zeros_like(pv)
        else:
            far = self._far(V)
            p_far = far_null.pvalue(far)
            scales = np.expm1(far)
            pv = np.minimum(1.0, 2 * np.minimum(pv, p_far))
        by_far = p_far * 2 <= pv

        def build(i: np.ndarray) -> np.ndarray:
            overall = (
                "unusual row overall: fewer than "
                + np.char.mod("%.2g", 100 * pv[i]).astype(object)
                + "% of rows look this odd"
            )
            far_txt = (
                "far outside the usual range in most numeric columns (a median of "
                + np.char.mod("%.0f", scales[i]).astype(object)
                + " interquartile ranges from the typical value)"
            )
            return np.where(by_far[i], far_txt, overall)

        return DetectorOutput(scores=1.0 - pv, pvalues=pv, reasons=explain(pv, build))
