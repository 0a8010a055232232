"""Attack interface and registry: every attack is seeded and returns a poisoned copy plus the truth.

Attacks double as fixtures (tests, canaries, red-teaming): ``apply(data, rate=..., seed=...)`` never touches its
input and reports exactly which rows it poisoned.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from ..errors import ConfigError
from ..io import Dataset


@dataclass(frozen=True)
class Poisoned:
    """A poisoned copy: ``frame`` (rows may be added at the end), ``mask`` (True = poisoned row), ``meta``."""

    frame: pd.DataFrame
    mask: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)


class Attack(ABC):
    name: ClassVar[str]
    description: ClassVar[str]

    def apply(self, data: Dataset, *, rate: float, seed: int = 0) -> Poisoned:
        if not 0 < rate < 1:
            raise ConfigError(f"attack '{self.name}': rate must be between 0 and 1 (a share of rows); got {rate!r}.")
        return self._apply(data, rate=rate, rng=np.random.default_rng(seed))

    @abstractmethod
    def _apply(self, data: Dataset, *, rate: float, rng: np.random.Generator) -> Poisoned: ...


ATTACKS: dict[str, type[Attack]] = {}


def register_attack(name: str) -> Callable[[type[Attack]], type[Attack]]:
    def deco(cls: type[Attack]) -> type[Attack]:
        if name in ATTACKS:
            raise ConfigError(f"an attack named '{name}' is already registered.")
        cls.name = name
        ATTACKS[name] = cls
        return cls

    return deco


def get_attack(name: str) -> Attack:
    if name not in ATTACKS:
        raise ConfigError(f"unknown attack '{name}'; known attacks: {', '.join(sorted(ATTACKS))}.")
    return ATTACKS[name]()


def count_for(n: int, rate: float) -> int:
    return max(1, round(rate * n))


def other_class(y: np.ndarray, n_classes: int, rng: np.random.Generator) -> np.ndarray:
    """A uniformly chosen class different from each entry of ``y``."""
    return (y + rng.integers(1, n_classes, size=len(y))) % n_classes


def with_labels(data: Dataset, frame: pd.DataFrame, rows: np.ndarray, codes: np.ndarray) -> pd.DataFrame:
    """Set the label of ``rows`` (positions) to the classes ``codes``, keeping the column's dtype family."""
    values = data.classes[codes]
    col = frame[data.label]
    out = frame.copy()
    if pd.api.types.is_numeric_dtype(col.dtype) or pd.api.types.is_bool_dtype(col.dtype):
        out[data.label] = col.to_numpy().copy()
        out.iloc[rows, out.columns.get_loc(data.label)] = values.astype(col.dtype)
    else:
        new = col.astype(object).to_numpy().copy()
        new[rows] = values
        out[data.label] = new
    return out


def numeric_columns(data: Dataset) -> list[str]:
    return [c for c, k in data.columns.items() if k == "numeric"]
