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

Free text gets a third view. Its components (a projection of word weights) put a message of words nobody else
uses near the origin, among short ordinary messages, so junk text (keyboard mash, encoded blobs, another
alphabet) looked typical to both views above. The text view counts, per row, the words that no other row holds,
and judges the count by a beta-binomial null (``stats.RarityNull``, fitted on rows where at most half the words
are rare, so junk cannot widen it). With several text columns it takes the Bonferroni minimum over them, and the
row's p-value becomes the Bonferroni minimum of all the views that apply. A column whose words are mostly unique
to their row (codes, ids, names; ``stats.rare_is_the_norm``) gets no text view, and the forest leaves its
components out: each is carried by the few rows it was fitted on, and isolating them is no finding.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
from scipy.stats import binom
from sklearn.ensemble import IsolationForest

from ..context import ScanContext
from ..stats import RarityNull, TailNull, rare_is_the_norm, separated_block
from ._text import fmt_int
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
        # the far view reads the table's numeric columns, not text components: a projection of word weights has
        # no 'usual range' (on a column of codes it put 4% of clean rows 'far out in most numeric columns')
        self.far_cols_ = self.numeric_.copy()
        if ctx.encoder is not None and ctx.encoder.text:
            kinds = np.array([ctx.encoder.columns[c] for c in ctx.encoder.tree_sources])
            self.far_cols_ &= kinds != "text"
        self.info = {}
        self._fit_text(ctx)
        # The components of a column of codes are projections of words that no other row holds: each is carried
        # by the few rows whose codes it happened to be fitted on, and the forest isolates exactly those rows
        # (4% of a clean table at p <= 0.01). The forest leaves such columns out; the text view abstains there.
        self.forest_cols_ = np.ones(X.shape[1], dtype=bool)
        if ctx.encoder is not None and self.codes_:
            self.forest_cols_ &= ~np.isin(np.array(ctx.encoder.tree_sources), sorted(self.codes_))
        Xs = self._view(X, sample)
        self.far_null_: TailNull | None = None
        # A block of rows that the median distance sets apart by a wide empty gap is junk to both views: the
        # forest is fitted and its null taken without it (in the forest's sample it masks itself, and at a tenth
        # of the data it also sets the null's tail shape), and the far view's null is fitted below it.
        far = self._far(Xs) if int(self.far_cols_.sum()) >= FAR_MIN_COLUMNS else None
        edge = None if far is None else separated_block(far)
        keep = np.ones(len(Xs), dtype=bool) if edge is None else far < edge
        self.info["block_rows_in_sample"] = int((~keep).sum())
        self.forest_: IsolationForest | None = None
        if self.forest_cols_.any():
            self.forest_ = IsolationForest(
                # 100 trees settle the score well; on very large data 50 do, at half the scoring cost
                n_estimators=int(self.param("n_estimators", 100 if ctx.n <= 300_000 else 50)),
                max_samples=min(256, int(keep.sum())),
                random_state=ctx.seed,
            ).fit(self._forest_view(Xs[keep]))
            # the forest scores its own sample; that distribution defines the null body
            self.null_ = TailNull.fit(
                -self.forest_.score_samples(self._forest_view(Xs[keep][:20_000])),
                shape=True,
                trim=True,
                min_k=FOREST_MIN_K,
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
        self.info["forest"] = self.forest_ is not None

    def _fit_text(self, ctx: ScanContext) -> None:
        """Per text column: how many rows hold each hashed word, and the null for a row's count of rare words."""
        self.text_df_: dict[str, np.ndarray] = {}
        self.text_null_: dict[str, RarityNull] = {}
        self.codes_: set[str] = set()  # text columns whose words are mostly unique to their row
        # the rows whose words were counted: for them a word is rare when no other row holds it; for new rows (an
        # incremental scan scores them, and re-scores the trusted rows as its calibration) when no counted row does
        self.text_counted_: ScanContext | None = ctx
        enc = ctx.encoder
        self.info["text_view"] = []
        if enc is None or not enc.text:
            return
        frame = ctx.data.frame
        rng = np.random.default_rng(ctx.seed + 17)
        sample = np.sort(rng.choice(ctx.n, min(ctx.n, 50_000), replace=False))
        with ctx.progress.task("isolation: word frequencies", total=ctx.n * len(enc.text)) as advance:
            for col, model in enc.text.items():
                df = np.zeros(model.hasher.n_features, dtype=np.int64)
                for rows in ctx.chunks():
                    df += np.bincount(model.tokens(frame[col].iloc[rows]).indices, minlength=len(df))
                    advance(len(rows))
                self.text_df_[col] = df
                rare, total = self._rare_words(ctx, col, sample)
                if rare_is_the_norm(rare, total):
                    self.codes_.add(col)
                null = RarityNull.fit(rare, total, seed=ctx.seed)
                if null is not None:
                    self.text_null_[col] = null
        self.info["text_view"] = sorted(self.text_null_)
        if self.codes_:
            self.info["codes_left_out"] = sorted(self.codes_)

    def _rare_words(self, ctx: ScanContext, col: str, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        assert ctx.encoder is not None
        m = ctx.encoder.text[col].tokens(ctx.data.frame[col].iloc[rows])
        rare = (self.text_df_[col] <= (1 if ctx is self.text_counted_ else 0)).astype(np.float64)
        return np.rint(m @ rare).astype(np.int64), np.diff(m.indptr).astype(np.int64)

    def _transfer(self, reference: ScanContext, ctx: ScanContext) -> None:
        """A forest fitted on trusted rows only splits within their range, so a new row far beyond it is isolated
        no faster than the trusted extremes. Refit the trees on the trusted sample plus the new rows (keeping the
        trusted view: fill values and scales) and take the null from the trusted rows' scores alone, so clean
        new rows are still judged like trusted ones."""
        assert reference.tree_X is not None and ctx.tree_X is not None
        if self.forest_ is None:  # a table of codes alone: nothing for a forest to read
            return
        rng = np.random.default_rng(ctx.seed + 13)
        trusted = rng.choice(reference.n, min(reference.n, 100_000), replace=False)
        new = rng.choice(ctx.n, min(ctx.n, 100_000), replace=False)
        Xt = self._forest_view(self._view(reference.tree_X, trusted))
        self.forest_ = IsolationForest(
            n_estimators=self.forest_.n_estimators,
            max_samples=min(256, len(trusted) + len(new)),
            random_state=ctx.seed,
        ).fit(np.vstack([Xt, self._forest_view(self._view(ctx.tree_X, new))]))
        self.null_ = TailNull.fit(-self.forest_.score_samples(Xt[:20_000]), shape=True, trim=True)

    def _view(self, X: np.ndarray, rows: np.ndarray) -> np.ndarray:
        part = X[rows]  # float32 copy
        fill = self.fill_.astype(np.float32)
        np.copyto(part, np.broadcast_to(fill, part.shape), where=np.isnan(part))
        num = self.numeric_
        z = (part[:, num] - fill[num]) / self.scale_[num].astype(np.float32)
        part[:, num] = np.sign(z) * np.log1p(np.abs(z))
        return part

    def _forest_view(self, V: np.ndarray) -> np.ndarray:
        return V if self.forest_cols_.all() else V[:, self.forest_cols_]

    def _far(self, V: np.ndarray) -> np.ndarray:
        """Median over numeric columns of log(1 + robust distance from the column's median)."""
        return np.median(np.abs(V[:, self.far_cols_]), axis=1).astype(np.float64)

    def _text_view(self, ctx: ScanContext, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Bonferroni minimum over text columns of the rare-word p-value, with the counts and column behind it."""
        p = np.ones(len(rows))
        rare = np.zeros(len(rows), dtype=np.int64)
        total = np.zeros(len(rows), dtype=np.int64)
        which = np.zeros(len(rows), dtype=np.int64)
        for j, (col, null) in enumerate(self.text_null_.items()):
            r, k = self._rare_words(ctx, col, rows)
            pc = null.pvalue(r, k)
            better = pc < p
            p = np.where(better, pc, p)
            rare = np.where(better, r, rare)
            total = np.where(better, k, total)
            which = np.where(better, j, which)
        return np.minimum(1.0, len(self.text_null_) * p), rare, total, which

    def _score(self, ctx: ScanContext, rows: np.ndarray) -> DetectorOutput:
        assert ctx.tree_X is not None
        V = self._view(ctx.tree_X, rows)
        views = []
        p_forest = np.ones(len(rows))
        if self.forest_ is not None:
            p_forest = self.null_.pvalue(-self.forest_.score_samples(self._forest_view(V)))
            views.append(p_forest)
        p_far = np.ones_like(p_forest)
        scales = np.zeros_like(p_forest)
        if self.far_null_ is not None:
            far = self._far(V)
            p_far = self.far_null_.pvalue(far)
            scales = np.expm1(far)
            views.append(p_far)
        p_text = np.ones_like(p_forest)
        text_nulls = self.text_null_
        if text_nulls:
            p_text, rare, total, which = self._text_view(ctx, rows)
            views.append(p_text)
        m = len(views)
        pv = np.minimum(1.0, m * np.minimum.reduce(views)) if m else np.ones(len(rows))
        by_far = (self.far_null_ is not None) & (p_far * m <= pv)
        by_text = (len(text_nulls) > 0) & (p_text * m <= pv) & ~by_far

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
            out = np.where(by_far[i], far_txt, overall)
            if text_nulls:
                names = np.array(list(text_nulls), dtype=object)
                typical = np.array([100 * n.mean for n in text_nulls.values()])
                where = "no other row" if ctx is self.text_counted_ else "no trusted row"
                text_txt = (
                    "text unlike the rest: "
                    + fmt_int(rare[i])
                    + " of "
                    + fmt_int(total[i])
                    + " words in '"
                    + names[which[i]]
                    + f"' occur in {where} (typically "
                    + np.char.mod("%.0f", typical[which[i]]).astype(object)
                    + "%)"
                )
                out = np.where(by_text[i], text_txt, out)
            return out

        return DetectorOutput(scores=1.0 - pv, pvalues=pv, reasons=explain(pv, build))
