"""The detector interface and registry.

A detector is fitted on a ``ScanContext`` (the encoded data and shared neighbour graph) and then scores any
batch of rows. Every detector reports, per row, a p-value under its own model of clean data (how often a clean
row would look at least this suspicious), a score in [0, 1] (higher = more suspicious) and a reason in plain
words. p-values are what make detectors comparable and let fusion control the false-alarm rate.

Adding a detector is one file with a class decorated by ``@register("name")``.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Self

import numpy as np

from ..errors import ConfigError, NotFittedError
from ..registry import Registry

if TYPE_CHECKING:
    from ..context import ScanContext


@dataclass(frozen=True)
class DetectorOutput:
    """Per-row results for one batch of rows."""

    scores: np.ndarray
    pvalues: np.ndarray
    reasons: np.ndarray
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.scores)
        if len(self.pvalues) != n or len(self.reasons) != n:
            raise ValueError("scores, pvalues and reasons must have one entry per row")

    @staticmethod
    def concat(parts: list[DetectorOutput]) -> DetectorOutput:
        keys = parts[0].extra.keys() if parts else ()
        return DetectorOutput(
            scores=np.concatenate([p.scores for p in parts]),
            pvalues=np.concatenate([p.pvalues for p in parts]),
            reasons=np.concatenate([p.reasons for p in parts]),
            extra={k: np.concatenate([p.extra[k] for p in parts]) for k in keys},
        )


class Detector(ABC):
    """Base class: ``__init__`` stores keyword parameters, ``fit`` learns, ``score`` scores a batch."""

    name: ClassVar[str]
    description: ClassVar[str]
    # share of the false-alarm budget, relative to the other detectors
    weight: ClassVar[float] = 1.0
    # gated detectors only speak when they would flag on their own (see fusion)
    gated: ClassVar[bool] = True
    # may earn a larger share of the budget when it plainly sees poison (fusion's adaptive level); only for
    # detectors whose clean rows keep calibrated p-values when poison is present
    adapts: ClassVar[bool] = True
    # a transferred copy refits its model on the new rows too: an incremental scan then calibrates it with the
    # trusted rows scored by that copy instead of their out-of-fold p-values
    refits_on_transfer: ClassVar[bool] = False
    # other detectors read its findings from the context (trigger rows in ``ctx.cache``): the scan fits it first,
    # whatever the order the detectors were named in
    fits_first: ClassVar[bool] = False
    # parameter -> (check, message) checked at fit time
    constraints: ClassVar[dict[str, tuple[Callable[[Any], bool], str]]] = {}

    def __init__(self, **params: Any) -> None:
        for key in params:
            if key not in self.constraints:
                known = ", ".join(sorted(self.constraints)) or "none"
                raise ConfigError(f"detector '{self.name}' has no parameter '{key}' (known: {known}).")
        self.params = params
        self.info: dict[str, Any] = {}
        self._fitted = False

    def param(self, key: str, default: Any) -> Any:
        return self.params.get(key, default)

    def _validate(self) -> None:
        for key, value in self.params.items():
            check, message = self.constraints[key]
            if not check(value):
                raise ConfigError(f"The '{key}' parameter of detector '{self.name}' must be {message}. Got {value!r}.")

    def fit(self, ctx: ScanContext) -> Self:
        self._validate()
        self._fit(ctx)
        self._fitted = True
        return self

    def score(self, ctx: ScanContext, rows: np.ndarray) -> DetectorOutput:
        if not self._fitted:
            raise NotFittedError(f"detector '{self.name}' must be fitted before scoring; call fit(ctx) first.")
        out = self._score(ctx, np.asarray(rows, dtype=np.int64))
        return DetectorOutput(
            scores=np.clip(np.nan_to_num(out.scores, nan=0.0), 0.0, 1.0).astype(np.float64),
            pvalues=np.clip(np.nan_to_num(out.pvalues, nan=1.0), 0.0, 1.0).astype(np.float64),
            reasons=out.reasons.astype(object),
            extra=out.extra,
        )

    def transfer(self, reference: ScanContext, ctx: ScanContext) -> Self:
        """A copy of this detector, fitted on ``reference`` (trusted rows), that scores the rows of ``ctx`` (new
        rows encoded with the reference's encoder) without refitting: an incremental scan judges new data by
        models the new data cannot have contaminated. ``self`` is left as it is."""
        if not self._fitted:
            raise NotFittedError(f"detector '{self.name}' must be fitted before transfer; call fit(ctx) first.")
        out = copy.copy(self)
        out.info = dict(self.info)
        out._transfer(reference, ctx)
        return out

    def _transfer(self, reference: ScanContext, ctx: ScanContext) -> None:  # noqa: B027 (optional hook)
        """Recompute per-row state for the rows of ``ctx`` (assign new attributes, never mutate fitted ones).
        Nothing to do for a detector whose ``_score`` reads only the encoded rows of ``ctx``."""

    def expected_flags_by_class(self, level: float, n_classes: int) -> np.ndarray | None:
        """Per class, how many of the scored rows clean data would give a p-value of at most ``level``, for a
        detector whose null says more than ``level`` times each class's rows; None where it does not."""
        return None

    @abstractmethod
    def _fit(self, ctx: ScanContext) -> None: ...

    @abstractmethod
    def _score(self, ctx: ScanContext, rows: np.ndarray) -> DetectorOutput: ...


REGISTRY: Registry[Detector] = Registry("detector")
register = REGISTRY.register


def get_detector(name: str, **params: Any) -> Detector:
    """A detector by registry name, built with its keyword parameters."""
    return REGISTRY.create(name, **params)


REASON_LEVEL = 0.05


def explain(pvalues: np.ndarray, build: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Reasons for the rows worth explaining (p <= REASON_LEVEL) only; '' elsewhere.

    ``build`` gets the positions of those rows within the batch and returns one string per position. Writing
    sentences for every row of a million would cost more memory than the scores themselves.
    """
    out = np.full(len(pvalues), "", dtype=object)
    idx = np.flatnonzero(pvalues <= REASON_LEVEL)
    if idx.size:
        out[idx] = build(idx)
    return out


def positive_int(v: Any) -> bool:
    return isinstance(v, int | np.integer) and not isinstance(v, bool) and v >= 1


def unit_interval(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and 0 < v < 1
