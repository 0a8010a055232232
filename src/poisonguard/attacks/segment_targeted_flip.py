"""Segment-targeted label flip: labels changed only inside one segment (adult rows with education = Bachelors).

Why it matters: the attacker damages the model for one group (deny credit to one neighbourhood, pass fraud from
one merchant) and nowhere else, so overall accuracy barely moves and an evaluation that only reads the headline
number passes the poisoned model. Only a per-segment comparison with a trusted model shows the damage.

Parameters: ``column`` and ``value`` name the segment: rows whose ``column`` equals ``value`` (a category, or a
number for a numeric column), or, for a numeric column, ``value=(low, high)``: rows with ``low <= x < high``.
``target``: the class the flipped rows get (a label in its original form; default: the most frequent class inside
the segment, so the model learns to give the whole segment that class). ``rate * n`` rows of the segment that are
not of the target class are flipped (``n`` = all rows); a rate that needs more rows than the segment holds does
not apply. Default segment: chosen from the seed among the frequent values of the categorical columns (5% to 50%
of the rows) and the quartile bins of the numeric columns, keeping only segments with enough rows to flip.
``meta``: ``column``, ``value``, ``segment`` (in words), ``segment_rows``, ``target`` (as text), ``rows``.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ConfigError
from ..io import Dataset
from .base import (
    Attack,
    Poisoned,
    class_code,
    count_for,
    does_not_apply,
    pick_rows,
    register_attack,
    row_mask,
    with_labels,
)

MIN_SHARE, MAX_SHARE = 0.05, 0.5


def _segment_mask(s: pd.Series, value: Any) -> np.ndarray:
    """Rows of ``s`` inside the segment ``value`` (a value, or a ``(low, high)`` range for numbers)."""
    if isinstance(value, tuple | list) and len(value) == 2:
        x = pd.to_numeric(s, errors="coerce").to_numpy(dtype=float)
        low, high = (
            (-np.inf if value[0] is None else float(value[0])),
            (np.inf if value[1] is None else float(value[1])),
        )
        return (x >= low) & (x < high)
    if isinstance(value, int | float | np.number) and not isinstance(value, bool) and pd.api.types.is_numeric_dtype(s):
        return np.isclose(s.to_numpy(dtype=float), float(value), rtol=1e-9, atol=0.0)
    return (s.astype("string").str.strip() == str(value).strip()).fillna(False).to_numpy(dtype=bool)


def _describe(column: str, value: Any) -> str:
    if isinstance(value, tuple | list) and len(value) == 2:
        low, high = (f"{v:.6g}" if v is not None else None for v in value)
        if low is None or high in (None, "inf"):
            return f"{column} >= {low}" if high in (None, "inf") else f"{column} < {high}"
        return f"{low} <= {column} < {high}"
    return f"{column} = {value!r}"


@register_attack("segment_targeted_flip")
class SegmentTargetedFlipAttack(Attack):
    description = "labels changed only inside one segment (a category or a numeric range) to one class"

    def __init__(self, *, column: str | None = None, value: Any = None, target: Any = None) -> None:
        self.column = column
        self.value = value
        self.target = target

    def _target(self, data: Dataset, inside: np.ndarray) -> int:
        if self.target is not None:
            return class_code(data, self.target, self.name, "target")
        return int(np.argmax(np.bincount(data.y[inside], minlength=data.n_classes)))

    def _candidates(self, data: Dataset) -> list[tuple[str, Any]]:
        """Default segments: frequent categories and numeric quartile bins, in column order."""
        out: list[tuple[str, Any]] = []
        n = data.n_rows
        for col, kind in data.columns.items():
            s = data.frame[col]
            if kind in ("categorical", "boolean"):
                counts = s.astype("string").str.strip().value_counts()
                share = counts / n
                out += [(col, v) for v in counts.index[(share >= MIN_SHARE) & (share <= MAX_SHARE)]]
            elif kind == "numeric":
                x = pd.to_numeric(s, errors="coerce").to_numpy(dtype=float)
                edges = np.unique(np.nanquantile(x, [0.25, 0.5, 0.75])) if np.isfinite(x).any() else []
                bounds = [float(np.nanmin(x)), *map(float, edges), np.inf] if len(edges) else []
                out += [(col, (lo, hi)) for lo, hi in itertools.pairwise(bounds) if hi > lo]
        return out

    def _apply(self, data: Dataset, *, rate: float, rng: np.random.Generator) -> Poisoned:
        n, k = data.n_rows, count_for(data.n_rows, rate)
        if self.column is not None and self.column not in data.columns:
            raise ConfigError(
                f"attack '{self.name}': column {self.column!r} is not a feature column of the data "
                f"(features: {', '.join(list(data.columns)[:12])})."
            )
        if self.column is not None and self.value is None:
            raise ConfigError(f"attack '{self.name}': give the segment's value with the column {self.column!r}.")
        if self.column is None:
            pools = []
            for col, value in self._candidates(data):
                inside = _segment_mask(data.frame[col], value)
                target = self._target(data, inside)
                pool = np.flatnonzero(inside & (data.y != target))
                if len(pool) > k:
                    pools.append((col, value, inside, target, pool))
            if not pools:
                raise does_not_apply(
                    self.name,
                    f"no segment (a category of 5% to 50% of the rows, or a numeric quartile) holds more than {k} "
                    "rows to flip; use a lower rate or name the segment.",
                )
            col, value, inside, target, pool = pools[int(rng.integers(len(pools)))]
        else:
            col, value = self.column, self.value
            inside = _segment_mask(data.frame[col], value)
            target = self._target(data, inside)
            pool = np.flatnonzero(inside & (data.y != target))
            if k > len(pool):
                raise does_not_apply(
                    self.name,
                    f"{rate:.0%} of the rows is {k} rows, and the segment {_describe(col, value)} has only "
                    f"{len(pool)} rows outside class {data.classes[target]!r}; use a lower rate or a larger segment.",
                )
        rows = pick_rows(pool, k, rng)
        frame = with_labels(data, data.frame, rows, np.full(len(rows), target))
        meta = {
            "column": col,
            "value": list(value) if isinstance(value, tuple) else value,
            "segment": _describe(col, value),
            "segment_rows": int(inside.sum()),
            "target": str(data.classes[target]),
            "rows": rows.tolist(),
        }
        return Poisoned(frame, row_mask(n, rows), meta)
