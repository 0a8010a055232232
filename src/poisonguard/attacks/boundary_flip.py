"""Boundary label flip: the labels the attacker's clean model is least sure about are flipped.

Why it matters: rows near the decision boundary are where a flipped label is both plausible (neighbours of the
other class are close) and effective (the boundary moves). These flips look like honest ambiguity, so they are
the hardest label flips for consistency-based detectors, and the natural choice of an attacker with a model.

Parameters: none. A gradient-boosting model (``HistGradientBoostingClassifier`` on the encoder's tree view,
3-fold out-of-fold, seeded) scores every row; the ``rate * n`` rows with the smallest margin between the two
most probable classes get the most probable other class. ``meta``: ``rows``, ``margins`` (clean-model margins of
the flipped rows).
"""

from __future__ import annotations

import numpy as np

from ..io import Dataset
from ._clean_model import margins, most_likely_other, out_of_fold_proba, ranked
from .base import Attack, Poisoned, count_for, register_attack, row_mask, with_labels


@register_attack("boundary_flip")
class BoundaryFlipAttack(Attack):
    description = "labels of the rows a clean model is least sure about changed to the most likely other class"

    def _apply(self, data: Dataset, *, rate: float, rng: np.random.Generator) -> Poisoned:
        n = data.n_rows
        proba = out_of_fold_proba(data, seed=int(rng.integers(2**31 - 1)))
        margin = margins(proba)
        rows = ranked(margin, count_for(n, rate), rng)
        new = most_likely_other(proba[rows], data.y[rows])
        meta = {"rows": rows.tolist(), "margins": margin[rows].tolist()}
        return Poisoned(with_labels(data, data.frame, rows, new), row_mask(n, rows), meta)
