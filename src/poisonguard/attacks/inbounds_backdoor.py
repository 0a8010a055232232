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
import pandas as pd

from ..io import Dataset
from ._triggers import FeatureTriggerAttack, in_bounds_trigger, stamp_in_bounds
from .base import register_attack


@register_attack("inbounds_backdoor")
class InboundsBackdoorAttack(FeatureTriggerAttack):
    description = "two or three features set to rare but in-range values, label set to the target class"

    def make_trigger(self, data: Dataset, rng: np.random.Generator) -> dict[str, Any]:
        return in_bounds_trigger(data, rng, self.name)

    def stamp(self, frame: pd.DataFrame, rows: np.ndarray, trigger: dict[str, Any]) -> pd.DataFrame:
        return stamp_in_bounds(frame, rows, trigger)
