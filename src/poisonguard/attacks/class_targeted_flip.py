"""Class-targeted label flip: labels of one class changed to another (fraud -> legit, say).

Why it matters: an attacker rarely wants random noise; flipping only the class they care about teaches the
model to miss exactly that class (fraud that passes as legit), while overall accuracy barely moves. Its rows
also look like ordinary label noise within one class pair, so a scan has to find them by their neighbours.

Parameters: ``source`` and ``target``, class labels in their original form (default: the minority class becomes
the majority class; with several classes of the same size the first one). ``rate * n`` rows of the source class
are flipped (``n`` = all rows); a rate that would flip every row of the source class does not apply (the data
would hold one class). ``meta``: ``source``, ``target`` (as text), ``rows``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ConfigError
from ..io import Dataset
from .base import (
    Attack,
    Poisoned,
    class_code,
    class_counts,
    count_for,
    does_not_apply,
    minority_class,
    pick_rows,
    register_attack,
    row_mask,
    with_labels,
)


@register_attack("class_targeted_flip")
class ClassTargetedFlipAttack(Attack):
    description = "labels of rows of one class (default: the minority) changed to another (default: the majority)"

    def __init__(self, *, source: Any = None, target: Any = None) -> None:
        self.source = source
        self.target = target

    def classes(self, data: Dataset) -> tuple[int, int]:
        """The (source, target) class codes for this data."""
        source = minority_class(data) if self.source is None else class_code(data, self.source, self.name, "source")
        if self.target is None:
            counts = class_counts(data).astype(float)
            counts[source] = -np.inf
            target = int(np.argmax(counts))
        else:
            target = class_code(data, self.target, self.name, "target")
        if source == target:
            raise ConfigError(
                f"attack '{self.name}': source and target are the same class ({data.classes[source]!r}); "
                "pick two different classes."
            )
        return source, target

    def _apply(self, data: Dataset, *, rate: float, rng: np.random.Generator) -> Poisoned:
        n = data.n_rows
        source, target = self.classes(data)
        pool = np.flatnonzero(data.y == source)
        if count_for(n, rate) >= len(pool):
            raise does_not_apply(
                self.name,
                f"{rate:.0%} of the rows is {count_for(n, rate)} rows, and class {data.classes[source]!r} has only "
                f"{len(pool)}: the flip would leave it empty. Use a lower rate.",
            )
        rows = pick_rows(pool, count_for(n, rate), rng)
        frame = with_labels(data, data.frame, rows, np.full(len(rows), target))
        meta = {"source": str(data.classes[source]), "target": str(data.classes[target]), "rows": rows.tolist()}
        return Poisoned(frame, row_mask(n, rows), meta)
