"""Backdoor with an out-of-range trigger (BadNets-like): a few features set to an extreme value, label set to
the target class. ``meta['apply_trigger']`` puts the same trigger on new rows."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..io import Dataset
from .base import Attack, Poisoned, count_for, numeric_columns, register_attack, with_labels


@register_attack("backdoor")
class BackdoorAttack(Attack):
    description = "two or three features set to an out-of-range value, label set to the target class"

    def _apply(self, data: Dataset, *, rate: float, rng: np.random.Generator) -> Poisoned:
        n = data.n_rows
        cols = numeric_columns(data)
        if not cols:
            raise ValueError("the out-of-range backdoor needs numeric columns")
        chosen = list(rng.choice(cols, size=min(len(cols), 2 if len(cols) < 10 else 3), replace=False))
        trigger = {}
        for col in chosen:
            x = pd.to_numeric(data.frame[col], errors="coerce").to_numpy(dtype=float)
            trigger[col] = float(np.nanmax(x) + 5 * (np.nanstd(x) or 1.0))
        target = int(np.argmin(np.bincount(data.y, minlength=data.n_classes)))
        candidates = np.flatnonzero(data.y != target)
        rows = np.sort(rng.choice(candidates, min(len(candidates), count_for(n, rate)), replace=False))
        frame = data.frame.copy()
        for col, value in trigger.items():
            values = pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=float).copy()
            values[rows] = value
            frame[col] = values
        frame = with_labels(data, frame, rows, np.full(len(rows), target))
        mask = np.zeros(n, dtype=bool)
        mask[rows] = True

        def apply_trigger(new: pd.DataFrame) -> pd.DataFrame:
            out = new.copy()
            for col, value in trigger.items():
                out[col] = value
            return out

        return Poisoned(
            frame, mask, {"trigger": trigger, "target": str(data.classes[target]), "apply_trigger": apply_trigger}
        )
