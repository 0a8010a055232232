"""Duplicate flood: many near-copies of a few rows, each carrying a label the attacker chose.

Why it matters: scraped and crowd-sourced data can be flooded cheaply (one record submitted many times), and
weight of numbers moves the model's decision around the copied point. Adds ``rate * n`` rows at the end.
Parameters: none. ``meta``: ``seed_rows``, ``added_rows``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..io import Dataset
from .base import Attack, Poisoned, count_for, numeric_columns, other_class, register_attack, with_labels


@register_attack("duplicate_flood")
class DuplicateFloodAttack(Attack):
    description = "near-copies (tiny jitter) of a few seed rows, with a label other than the seed's"

    def _apply(self, data: Dataset, *, rate: float, rng: np.random.Generator) -> Poisoned:
        n = data.n_rows
        k = count_for(n, rate)
        n_seeds = max(1, min(5, k // 10))
        seeds = rng.choice(n, n_seeds, replace=False)
        pick = seeds[rng.integers(0, n_seeds, size=k)]
        copies = data.frame.iloc[pick].reset_index(drop=True).copy()
        for col in numeric_columns(data):
            x = pd.to_numeric(data.frame[col], errors="coerce").to_numpy(dtype=float)
            sd = np.nanstd(x) or 1.0
            copies[col] = pd.to_numeric(copies[col], errors="coerce").to_numpy(dtype=float) + rng.normal(
                0, 0.001 * sd, size=k
            )
        frame = pd.concat([data.frame, copies], ignore_index=True)
        target = other_class(data.y[seeds], data.n_classes, rng)
        order = np.argsort(seeds)
        codes = target[order][np.searchsorted(seeds[order], pick)]
        rows = np.arange(n, n + k)
        mask = np.zeros(n + k, dtype=bool)
        mask[rows] = True
        return Poisoned(with_labels(data, frame, rows, codes), mask, {"seed_rows": seeds.tolist(), "added_rows": k})
