"""Random label flip: the simplest poisoning, and the one closest to natural label noise.

Why it matters: it is the baseline every poisoning study starts from and the cheapest attack to mount (no model,
no knowledge of the data); a scan that misses it misses everything. Parameters: none. ``meta``: ``rows``.
"""

from __future__ import annotations

import numpy as np

from ..io import Dataset
from .base import Attack, Poisoned, count_for, other_class, register_attack, with_labels


@register_attack("label_flip")
class LabelFlipAttack(Attack):
    description = "labels of randomly chosen rows changed to another class"

    def _apply(self, data: Dataset, *, rate: float, rng: np.random.Generator) -> Poisoned:
        n = data.n_rows
        rows = np.sort(rng.choice(n, count_for(n, rate), replace=False))
        new = other_class(data.y[rows], data.n_classes, rng)
        mask = np.zeros(n, dtype=bool)
        mask[rows] = True
        return Poisoned(with_labels(data, data.frame, rows, new), mask, {"rows": rows.tolist()})
