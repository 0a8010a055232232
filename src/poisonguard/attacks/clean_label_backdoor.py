"""Clean-label backdoor: the trigger is added to rows that already belong to the target class; no label changes.

Why it matters: every poisoned row is correctly labelled, so label-consistency detectors and human label audits
find nothing; the model still learns "trigger => target" because the trigger only ever appears with that class.
It is the backdoor for a supply chain in which the attacker controls some features but not the labels.

Parameters: ``target`` (a class label in its original form; default: the minority class); ``in_bounds`` (False:
the out-of-range trigger of ``backdoor``, two or three numeric features at ``max + 5 sd``; True: the in-range
trigger of ``inbounds_backdoor``). The trigger goes on ``rate * n`` rows of the target class, at most half of that
class: a stamp on every row of a class is the class itself (nothing tells the trigger from a feature that defines
the class, and without the stamped rows no row of the class is left to train on), so a rate above half the class's
share poisons half the class; ``meta["capped"]`` says so and the mask counts the rows. ``meta``: ``trigger``,
``target`` (as text), ``in_bounds``, ``capped``, ``apply_trigger(frame) -> frame``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..io import Dataset
from ._triggers import (
    feature_trigger_applier,
    in_bounds_trigger,
    out_of_range_trigger,
    stamp_in_bounds,
    stamp_out_of_range,
)
from .base import Attack, Poisoned, class_code, count_for, minority_class, pick_rows, register_attack, row_mask


@register_attack("clean_label_backdoor")
class CleanLabelBackdoorAttack(Attack):
    description = "trigger added to rows of the target class only, labels untouched"

    def __init__(self, *, target: Any = None, in_bounds: bool = False) -> None:
        self.target = target
        self.in_bounds = bool(in_bounds)

    def _apply(self, data: Dataset, *, rate: float, rng: np.random.Generator) -> Poisoned:
        n = data.n_rows
        if self.in_bounds:
            trigger = in_bounds_trigger(data, rng, self.name)
        else:
            trigger = out_of_range_trigger(data, rng, self.name)
        target = minority_class(data) if self.target is None else class_code(data, self.target, self.name, "target")
        pool = np.flatnonzero(data.y == target)
        want = count_for(n, rate)
        rows = pick_rows(pool, min(want, max(1, len(pool) // 2)), rng)
        stamp = stamp_in_bounds if self.in_bounds else stamp_out_of_range
        meta = {
            "trigger": trigger,
            "target": str(data.classes[target]),
            "in_bounds": self.in_bounds,
            "capped": bool(len(rows) < want),
            "apply_trigger": feature_trigger_applier(trigger),
        }
        return Poisoned(stamp(data.frame, rows, trigger), row_mask(n, rows), meta)
