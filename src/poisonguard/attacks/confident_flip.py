"""Confident label flip: the labels the attacker's clean model is surest about are flipped.

Why it matters: flipping textbook examples does the most damage per row to a model that trusts its labels (it
contradicts the clearest evidence), and it is the opposite of ``boundary_flip``: these flips are blatant to a
label-consistency detector. Running both brackets a scan's recall on model-guided flips.

Parameters: none. The same clean model as ``boundary_flip`` (gradient boosting, 3-fold out-of-fold, seeded);
the ``rate * n`` rows with the highest probability of their own label get the most probable other class.
``meta``: ``rows``, ``p_true`` (clean-model probability of the original label of the flipped rows).
"""

from __future__ import annotations

import numpy as np

from ..io import Dataset
from ._clean_model import most_likely_other, out_of_fold_proba, ranked
from .base import Attack, Poisoned, count_for, register_attack, row_mask, with_labels


@register_attack("confident_flip")
class ConfidentFlipAttack(Attack):
    description = "labels of the rows a clean model is surest about changed to the most likely other class"

    def _apply(self, data: Dataset, *, rate: float, rng: np.random.Generator) -> Poisoned:
        n = data.n_rows
        proba = out_of_fold_proba(data, seed=int(rng.integers(2**31 - 1)))
        p_true = proba[np.arange(n), data.y]
        rows = ranked(-p_true, count_for(n, rate), rng)
        new = most_likely_other(proba[rows], data.y[rows])
        meta = {"rows": rows.tolist(), "p_true": p_true[rows].tolist()}
        return Poisoned(with_labels(data, data.frame, rows, new), row_mask(n, rows), meta)
