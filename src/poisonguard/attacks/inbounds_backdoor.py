"""In-bounds backdoor (Tabdoor, Pleiter et al. 2023): a trigger made of values that are each normal.

Why it matters: the trigger sets two or three features to rare but valid values (a rare category; the 2nd or
98th percentile value of a number), so every value lies inside its column's range and no per-feature outlier
test sees anything; only the combination is unusual. Pleiter et al. show such triggers reach near-perfect attack
success on tabular models at poison rates around 1%, which makes this the realistic backdoor for a scan to face.

Parameters: ``target`` (a class label in its original form; default: the minority class). The trigger goes on
``rate * n`` rows of other classes (capped at the rows available), whose label becomes the target. ``meta``:
``trigger`` ({column: value}, values as stored in the column), ``target`` (as text), ``apply_trigger(frame) ->
frame`` (the trigger on new rows, labels untouched).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..io import Dataset
from ._triggers import feature_trigger_applier, in_bounds_trigger, stamp_in_bounds
from .base import (
    Attack,
    Poisoned,
    class_code,
    count_for,
    minority_class,
    pick_rows,
    register_attack,
    row_mask,
    with_labels,
)


@register_attack("inbounds_backdoor")
class InboundsBackdoorAttack(Attack):
    description = "two or three features set to rare but in-range values, label set to the target class"

    def __init__(self, *, target: Any = None) -> None:
        self.target = target

    def _apply(self, data: Dataset, *, rate: float, rng: np.random.Generator) -> Poisoned:
        n = data.n_rows
        trigger = in_bounds_trigger(data, rng, self.name)
        target = minority_class(data) if self.target is None else class_code(data, self.target, self.name, "target")
        rows = pick_rows(np.flatnonzero(data.y != target), count_for(n, rate), rng)
        frame = with_labels(data, stamp_in_bounds(data.frame, rows, trigger), rows, np.full(len(rows), target))
        meta = {
            "trigger": trigger,
            "target": str(data.classes[target]),
            "apply_trigger": feature_trigger_applier(trigger),
        }
        return Poisoned(frame, row_mask(n, rows), meta)
