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
import pandas as pd

from ..io import Dataset
from ._triggers import FeatureTriggerAttack, out_of_range_trigger, stamp_out_of_range
from .base import register_attack


@register_attack("backdoor")
class BackdoorAttack(FeatureTriggerAttack):
    description = "two or three features set to an out-of-range value, label set to the target class"

    def make_trigger(self, data: Dataset, rng: np.random.Generator) -> dict[str, Any]:
        return out_of_range_trigger(data, rng, self.name)

    def stamp(self, frame: pd.DataFrame, rows: np.ndarray, trigger: dict[str, Any]) -> pd.DataFrame:
        return stamp_out_of_range(frame, rows, trigger)
