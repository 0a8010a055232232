"""Global isolation: rows that are easy to isolate from all others (Liu, Ting and Zhou 2008).

Catches out-of-distribution junk whatever its label. The forest is fitted on a sample; every row is scored in
batches; the p-value uses the tail model in ``stats`` so that a large block of junk rows cannot hide itself.
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
    constraints: ClassVar[dict[str, tuple[Callable[[Any], bool], str]]] = {
        "n_estimators": (positive_int, "a positive integer")
    }

    def _fit(self, ctx: ScanContext) -> None:
        ctx.encode()
        X = ctx.metric_X
        rng = np.random.default_rng(ctx.seed + 11)
        sample = rng.choice(ctx.n, min(ctx.n, 100_000), replace=False)
        self.forest_ = IsolationForest(
            # 100 trees settle the score well; on very large data 50 do, at half the scoring cost
            n_estimators=int(self.param("n_estimators", 100 if ctx.n <= 300_000 else 50)),
            max_samples=min(256, len(sample)),
            random_state=ctx.seed,
        ).fit(X[sample])
        # the forest scores its own sample; that distribution defines the null body
        self.null_ = TailNull.fit(-self.forest_.score_samples(X[sample[: min(len(sample), 20_000)]]))

    def _score(self, ctx: ScanContext, rows: np.ndarray) -> DetectorOutput:
        stat = -self.forest_.score_samples(ctx.metric_X[rows])
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
