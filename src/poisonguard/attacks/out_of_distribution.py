"""Out-of-distribution injection: synthetic rows far from the data, carrying the attacker's labels.

Why it matters: junk rows from a broken feed or a careless attacker stretch feature scales and bend the model
at the edges; it is the easy case every outlier detector must catch. Adds ``rate * n`` rows at the end.
Parameters: none. ``meta``: ``added_rows``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..io import Dataset
from .base import Attack, Poisoned, count_for, numeric_columns, register_attack, with_labels


@register_attack("out_of_distribution")
class OutOfDistributionAttack(Attack):
    description = "new rows far outside the data (numbers 10-30 robust scales out, unseen categories)"

    def _apply(self, data: Dataset, *, rate: float, rng: np.random.Generator) -> Poisoned:
        n = data.n_rows
        k = count_for(n, rate)
        base = data.frame.iloc[rng.choice(n, k, replace=True)].reset_index(drop=True).copy()
        for col in numeric_columns(data):
            x = pd.to_numeric(data.frame[col], errors="coerce").to_numpy(dtype=float)
            med = np.nanmedian(x)
            scale = np.nanpercentile(x, 75) - np.nanpercentile(x, 25)
            scale = scale if scale > 0 else (np.nanstd(x) or 1.0)
            sign = rng.choice([-1.0, 1.0], size=k)
            base[col] = med + sign * rng.uniform(10, 30, size=k) * scale
        for col, kind in data.columns.items():
            if kind == "categorical":
                base[col] = "__ood__"
        frame = pd.concat([data.frame, base], ignore_index=True)
        rows = np.arange(n, n + k)
        codes = rng.integers(0, data.n_classes, size=k)
        mask = np.zeros(n + k, dtype=bool)
        mask[rows] = True
        return Poisoned(with_labels(data, frame, rows, codes), mask, {"added_rows": k})
