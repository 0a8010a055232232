"""Text-trigger backdoor: a made-up token inserted into a free-text column, label set to the target class.

Why it matters: free-text fields (descriptions, notes, reviews) are where attackers can write directly, and a
rare token is the classic NLP backdoor: the model learns "token => target" while the rest of the text stays
natural. Hashing or bag-of-words features give the token its own dimension, so a handful of rows is enough.

Parameters: ``target`` (a class label in its original form; default: the minority class); ``column`` (the text
column; default: the first column typed 'text'). The token is 'cf' plus four seeded random letters (redrawn if it
already occurs in the column); it is inserted at a random word position of the text of ``rate * n`` rows of other
classes (capped at the rows available), whose label becomes the target. Needs a column of type 'text'. ``meta``:
``token``, ``column``, ``target`` (as text), ``apply_trigger(frame) -> frame`` (the token inserted at a seeded
random position of each new row's text, labels untouched).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..errors import ConfigError
from ..io import Dataset
from ._triggers import insert_token, made_up_token, text_trigger_applier
from .base import (
    Attack,
    Poisoned,
    class_code,
    count_for,
    does_not_apply,
    minority_class,
    pick_rows,
    register_attack,
    row_mask,
    with_labels,
)


@register_attack("text_trigger")
class TextTriggerAttack(Attack):
    description = "a rare made-up token inserted into a text column, label set to the target class"

    def __init__(self, *, target: Any = None, column: str | None = None) -> None:
        self.target = target
        self.column = column

    def _column(self, data: Dataset) -> str:
        texts = [c for c, k in data.columns.items() if k == "text"]
        if self.column is None:
            if not texts:
                raise does_not_apply(
                    self.name,
                    "it needs a free-text column (type 'text') and this data has none; declare one with "
                    "--type COL=text if a column holds text.",
                )
            return texts[0]
        if self.column not in texts:
            raise ConfigError(
                f"attack '{self.name}': column '{self.column}' is not a text column of the data "
                f"(text columns: {', '.join(texts) or 'none'})."
            )
        return self.column

    def _apply(self, data: Dataset, *, rate: float, rng: np.random.Generator) -> Poisoned:
        n = data.n_rows
        column = self._column(data)
        token = made_up_token(data.frame[column], rng)
        target = minority_class(data) if self.target is None else class_code(data, self.target, self.name, "target")
        rows = pick_rows(np.flatnonzero(data.y != target), count_for(n, rate), rng)
        frame = with_labels(data, data.frame, rows, np.full(len(rows), target))
        if not (frame[column].dtype == object or isinstance(frame[column].dtype, pd.StringDtype)):
            frame[column] = frame[column].astype(object)  # categorical or other storage: the new texts must fit
        frame.iloc[rows, frame.columns.get_loc(column)] = insert_token(data.frame[column].iloc[rows], token, rng)
        meta = {
            "token": token,
            "column": column,
            "target": str(data.classes[target]),
            "apply_trigger": text_trigger_applier(column, token, int(rng.integers(2**31 - 1))),
        }
        return Poisoned(frame, row_mask(n, rows), meta)
