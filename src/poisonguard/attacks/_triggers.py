"""Trigger helpers shared by the backdoor attacks: choosing a trigger, stamping it on rows, ``apply_trigger``.

Two kinds of feature trigger:

* out of range (BadNets-like): two or three numeric features set to ``max + 5 sd``; trivially separable, and so
  a fair test of outlier detectors.
* in bounds (Tabdoor, Pleiter et al. 2023): two or three features set to a rare but valid value each (a rare
  category, or the 2nd / 98th percentile value of a number). Every value lies inside the column's normal range;
  only the combination is unusual, which is what makes it hard for per-feature outlier tests.

A text trigger is a made-up token inserted at a random word position of a text column.
"""

from __future__ import annotations

import math
import string
from abc import abstractmethod
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from ..io import Dataset
from .base import (
    Attack,
    Poisoned,
    class_code,
    count_for,
    does_not_apply,
    minority_class,
    numeric_columns,
    pick_rows,
    row_mask,
    with_labels,
)

_WHITESPACE = np.array([9, 10, 11, 12, 13, 32, 0x85, 0xA0, 0x2028, 0x2029, 0x3000], dtype=np.uint32)
_CHUNK_CHARS = 4_000_000  # code points per block when inserting tokens (bounds memory on long texts)


def n_trigger_columns(data: Dataset, available: int) -> int:
    return min(available, 2 if len(data.columns) < 10 else 3)


def _scalar(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


# --- out-of-range trigger -------------------------------------------------------------------------------------


def out_of_range_trigger(data: Dataset, rng: np.random.Generator, attack: str) -> dict[str, float]:
    """Two (three from ten feature columns on) numeric columns, each set to ``max + 5 * sd``."""
    cols = numeric_columns(data)
    if not cols:
        raise does_not_apply(
            attack,
            "the out-of-range trigger needs a numeric column and this data has none; inbounds_backdoor (or "
            "clean_label_backdoor with in_bounds=True) also works with categorical columns.",
        )
    chosen = list(rng.choice(cols, size=n_trigger_columns(data, len(cols)), replace=False))
    trigger: dict[str, float] = {}
    for col in chosen:
        x = pd.to_numeric(data.frame[col], errors="coerce").to_numpy(dtype=float)
        trigger[str(col)] = float(np.nanmax(x) + 5 * (np.nanstd(x) or 1.0))
    return trigger


def stamp_out_of_range(frame: pd.DataFrame, rows: np.ndarray, trigger: dict[str, float]) -> pd.DataFrame:
    """Copy of ``frame`` with the trigger at ``rows``; trigger columns become float."""
    out = frame.copy()
    for col, value in trigger.items():
        values = pd.to_numeric(out[col], errors="coerce").to_numpy(dtype=float).copy()
        values[rows] = value
        out[col] = values
    return out


# --- in-bounds trigger ----------------------------------------------------------------------------------------


def _rare_quantile_value(s: pd.Series, rng: np.random.Generator) -> Any:
    """The 2nd or the 98th percentile value (an observed value; the rarer of the two, a seeded coin on ties)."""
    x = pd.to_numeric(s, errors="coerce").to_numpy(dtype=float)
    finite = x[np.isfinite(x)]
    lo, hi = np.quantile(finite, [0.02, 0.98], method="inverted_cdf")
    n_lo, n_hi = int((finite == lo).sum()), int((finite == hi).sum())
    coin = int(rng.integers(2))
    value = lo if n_lo < n_hi else hi if n_hi < n_lo else (lo, hi)[coin]
    return _scalar(s.iloc[int(np.flatnonzero(x == value)[0])])  # the cell as stored, so the column keeps its dtype


def _rare_category(s: pd.Series, n: int, rng: np.random.Generator) -> Any:
    """The least frequent category that still appears in at least ``max(2, 0.5% of rows)`` rows (seeded on ties)."""
    present = s[s.notna() & s.astype("string").str.strip().fillna("").ne("")]
    counts = present.value_counts()
    counts = counts[counts > 0]
    valid = counts[counts >= max(2, math.ceil(0.005 * n))]
    if valid.empty:
        valid = counts
    rarest = sorted(valid.index[valid == valid.min()], key=str)
    return _scalar(rarest[int(rng.integers(len(rarest)))])


def in_bounds_trigger(data: Dataset, rng: np.random.Generator, attack: str) -> dict[str, Any]:
    """Two (three from ten feature columns on) numeric or categorical columns, each with a rare valid value."""
    eligible = []
    for col, kind in data.columns.items():
        s = data.frame[col]
        if kind == "numeric":
            x = pd.to_numeric(s, errors="coerce").to_numpy(dtype=float)
            if len(np.unique(x[np.isfinite(x)])) >= 2:
                eligible.append(col)
        elif kind == "categorical" and s.astype("string").str.strip().replace("", pd.NA).nunique() >= 2:
            eligible.append(col)
    if not eligible:
        raise does_not_apply(
            attack,
            "the in-bounds trigger needs a numeric or categorical column with at least two distinct values, "
            "and this data has none.",
        )
    chosen = [str(c) for c in rng.choice(eligible, size=n_trigger_columns(data, len(eligible)), replace=False)]
    trigger: dict[str, Any] = {}
    for col in chosen:
        s = data.frame[col]
        if data.columns[col] == "numeric":
            trigger[col] = _rare_quantile_value(s, rng)
        else:
            trigger[col] = _rare_category(s, data.n_rows, rng)
    return trigger


def stamp_in_bounds(frame: pd.DataFrame, rows: np.ndarray, trigger: dict[str, Any]) -> pd.DataFrame:
    """Copy of ``frame`` with the trigger at ``rows``; the values come from the columns, so dtypes are kept."""
    out = frame.copy()
    for col, value in trigger.items():
        out.iloc[rows, out.columns.get_loc(col)] = value
    return out


def feature_trigger_applier(trigger: dict[str, Any]) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """``apply_trigger`` for a feature trigger: a copy of ``frame`` with every trigger column set to its value."""

    def apply_trigger(frame: pd.DataFrame) -> pd.DataFrame:
        out = frame.copy()
        for col, value in trigger.items():
            out[col] = value
        return out

    apply_trigger.__doc__ = f"Copy of the rows with the trigger {trigger!r} set (labels untouched)."
    return apply_trigger


# --- text trigger ---------------------------------------------------------------------------------------------


def made_up_token(existing: pd.Series, rng: np.random.Generator, *, prefix: str = "cf", letters: int = 4) -> str:
    """'cf' plus seeded random letters, redrawn (a few times at most) while it already occurs in ``existing``."""
    text = existing.astype("string").str.lower()
    token = ""
    for _ in range(20):
        token = prefix + "".join(rng.choice(list(string.ascii_lowercase), size=letters))
        if not text.str.contains(rf"\b{token}\b", regex=True).fillna(False).any():
            break
    return token


def insert_token(texts: pd.Series, token: str, rng: np.random.Generator) -> np.ndarray:
    """Each text with ``token`` inserted at a uniformly chosen word position (start, between words, or end).

    Missing texts become the token alone. Works on fixed-width code-point arrays: no Python loop over rows.
    """
    k = len(texts)
    s = texts.astype(object).where(texts.notna(), "").astype(str).to_numpy()
    u = rng.random(k)
    out = np.empty(k, dtype=object)
    if k == 0:
        return out
    longest = max(1, int(pd.Series(s).str.len().max()))
    step = max(1, _CHUNK_CHARS // longest)
    for start in range(0, k, step):  # blocks of rows, to bound memory
        stop = min(k, start + step)
        out[start:stop] = _insert_block(s[start:stop], token, u[start:stop])
    return out


def _insert_block(s: np.ndarray, token: str, u: np.ndarray) -> np.ndarray:
    k = len(s)
    arr = s.astype(str)
    width = max(1, arr.dtype.itemsize // 4)
    arr = arr.astype(f"<U{width}")
    codes = arr.view(np.uint32).reshape(k, width)
    lengths = np.char.str_len(arr)
    col = np.arange(width)
    space = np.isin(codes, _WHITESPACE) | (col[None, :] >= lengths[:, None])
    starts = ~space & np.hstack([np.ones((k, 1), dtype=bool), space[:, :-1]])
    n_words = starts.sum(axis=1)
    p = np.minimum((u * (n_words + 1)).astype(np.int64), n_words)  # insert before word p (p == n_words: at the end)
    nth = starts & (np.cumsum(starts, axis=1) == (p + 1)[:, None])
    at_end = p == n_words
    offset = np.where(at_end, lengths, nth.argmax(axis=1))
    tok = np.frombuffer(token.encode("utf-32-le"), dtype=np.uint32)
    space_code = np.array([32], dtype=np.uint32)
    piece_len = len(tok) + 1
    before = np.concatenate([tok, space_code])  # "tok " before a word
    after = np.concatenate([space_code, tok])  # " tok" after the last word
    alone = np.concatenate([tok, np.zeros(1, dtype=np.uint32)])  # "tok" in an empty text
    pieces = np.where(at_end[:, None], np.where((lengths > 0)[:, None], after, alone), before)
    j = np.arange(width + piece_len)[None, :]
    head = j < offset[:, None]
    in_piece = ~head & (j < (offset + piece_len)[:, None])
    src = np.clip(np.where(head, j, j - piece_len), 0, width - 1)
    body = np.take_along_axis(codes, src, axis=1)
    piece = np.take_along_axis(pieces, np.clip(j - offset[:, None], 0, piece_len - 1), axis=1)
    new = np.where(in_piece, piece, np.where(head | (j >= (offset + piece_len)[:, None]), body, 0))
    new = np.ascontiguousarray(new, dtype=np.uint32)
    return new.view(f"<U{width + piece_len}").reshape(k).astype(object)


def text_trigger_applier(column: str, token: str, seed: int) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """``apply_trigger`` for a text trigger: the token inserted at a seeded random word position of ``column``."""

    def apply_trigger(frame: pd.DataFrame) -> pd.DataFrame:
        out = frame.copy()
        out[column] = insert_token(out[column], token, np.random.default_rng(seed))
        return out

    apply_trigger.__doc__ = f"Copy of the rows with '{token}' inserted into column '{column}' (labels untouched)."
    return apply_trigger


class FeatureTriggerAttack(Attack):
    """Dirty-label backdoor with a feature trigger: stamp the trigger on ``rate * n`` rows of other classes and
    relabel them as the target (default: the minority class). Subclasses say how the trigger is made and stamped."""

    def __init__(self, *, target: Any = None) -> None:
        self.target = target

    @abstractmethod
    def make_trigger(self, data: Dataset, rng: np.random.Generator) -> dict[str, Any]: ...

    @abstractmethod
    def stamp(self, frame: pd.DataFrame, rows: np.ndarray, trigger: dict[str, Any]) -> pd.DataFrame: ...

    def _apply(self, data: Dataset, *, rate: float, rng: np.random.Generator) -> Poisoned:
        n = data.n_rows
        trigger = self.make_trigger(data, rng)
        target = minority_class(data) if self.target is None else class_code(data, self.target, self.name, "target")
        rows = pick_rows(np.flatnonzero(data.y != target), count_for(n, rate), rng)
        frame = with_labels(data, self.stamp(data.frame, rows, trigger), rows, np.full(len(rows), target))
        meta = {
            "trigger": trigger,
            "target": str(data.classes[target]),
            "apply_trigger": feature_trigger_applier(trigger),
        }
        return Poisoned(frame, row_mask(n, rows), meta)
