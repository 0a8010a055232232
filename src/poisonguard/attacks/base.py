"""Attack interface and registry: every attack is seeded and returns a poisoned copy plus the truth.

Attacks double as fixtures (tests, canaries, red-teaming): ``apply(data, rate=..., seed=...)`` never touches its
input and reports exactly which rows it poisoned. Rates are shares of the rows of the input (the training set).

An attack's parameters are keyword arguments of its constructor (``get_attack(name, **params)``); every default
gives a working attack. An attack that cannot apply to a data set (no text column for a text trigger, say) raises
``ConfigError`` with a message that starts ``attack '<name>' does not apply:``, so that callers such as the red
team can skip it and say why.

Backdoor attacks put two entries in ``meta`` besides their trigger: ``target`` (the class the trigger leads to,
as text) and ``apply_trigger``, a function ``frame -> frame`` that returns a copy of new rows (for example a
test set) carrying the same trigger, labels untouched; the attack success rate is measured with it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from ..errors import ConfigError
from ..io import Dataset
from ..registry import Registry


@dataclass(frozen=True)
class Poisoned:
    """A poisoned copy: ``frame`` (rows may be added at the end), ``mask`` (True = poisoned row), ``meta``.

    Rows of ``frame`` at positions ``0..n-1`` are the input's rows (changed only where ``mask`` is True); rows
    after them were added by the attack. For backdoors ``meta`` holds ``target`` and ``apply_trigger`` (see the
    module docstring).
    """

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


ATTACKS: Registry[Attack] = Registry("attack")
register_attack = ATTACKS.register


def get_attack(name: str, **params: Any) -> Attack:
    """An attack by registry name, built with its keyword parameters (``get_attack('class_targeted_flip',
    source='fraud')``)."""
    return ATTACKS.create(name, **params)


def does_not_apply(name: str, why: str) -> ConfigError:
    """The error for an attack that cannot work on the data; ``why`` says what is missing."""
    return ConfigError(f"attack '{name}' does not apply: {why}")


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


def class_counts(data: Dataset) -> np.ndarray:
    return np.bincount(data.y, minlength=data.n_classes)


def minority_class(data: Dataset) -> int:
    """Code of the smallest class (the first one on ties)."""
    return int(np.argmin(class_counts(data)))


def class_code(data: Dataset, value: Any, attack: str, role: str) -> int:
    """Code of a class given as a label in its original form (``'fraud'``, ``1``); the text form also matches."""
    hit = np.flatnonzero(data.classes == value)
    if len(hit) == 0:
        hit = np.flatnonzero(data.classes.astype(str) == str(value))
    if len(hit) == 0:
        known = ", ".join(repr(c) for c in data.classes[:20])
        raise ConfigError(
            f"attack '{attack}': {role} class {value!r} is not a class of label column '{data.label}' "
            f"(classes: {known})."
        )
    return int(hit[0])


def pick_rows(pool: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """``k`` positions drawn without replacement from ``pool`` (all of it when it is smaller), sorted."""
    return np.sort(rng.choice(pool, min(len(pool), k), replace=False))


def row_mask(n: int, rows: np.ndarray) -> np.ndarray:
    mask = np.zeros(n, dtype=bool)
    mask[rows] = True
    return mask
