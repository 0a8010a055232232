"""Backdoor with an out-of-range trigger (BadNets-like): a few features set to an extreme value, label set to
the target class.

Why it matters: a model trained on it behaves normally on clean rows and predicts the target class for any row
carrying the trigger. The out-of-range trigger is the easy case for a scan (the values are outliers); see
``inbounds_backdoor`` for the hard one.

Parameters: ``target`` (a class label in its original form; default: the minority class). ``meta``:
``trigger`` ({column: value}), ``target`` (as text), ``apply_trigger(frame) -> frame`` (the trigger on new rows).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..io import Dataset
from ._triggers import feature_trigger_applier, out_of_range_trigger, stamp_out_of_range
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


@register_attack("backdoor")
class BackdoorAttack(Attack):
    description = "two or three features set to an out-of-range value, label set to the target class"

    def __init__(self, *, target: Any = None) -> None:
        self.target = target

    def _apply(self, data: Dataset, *, rate: float, rng: np.random.Generator) -> Poisoned:
        n = data.n_rows
        trigger = out_of_range_trigger(data, rng, self.name)
        target = minority_class(data) if self.target is None else class_code(data, self.target, self.name, "target")
        rows = pick_rows(np.flatnonzero(data.y != target), count_for(n, rate), rng)
        frame = stamp_out_of_range(data.frame, rows, trigger)
        frame = with_labels(data, frame, rows, np.full(len(rows), target))
        meta = {
            "trigger": trigger,
            "target": str(data.classes[target]),
            "apply_trigger": feature_trigger_applier(trigger),
        }
        return Poisoned(frame, row_mask(n, rows), meta)
