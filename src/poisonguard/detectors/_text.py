"""Vectorised helpers for writing reasons in plain words (no Python loops over rows)."""

from __future__ import annotations

import numpy as np


def quote(values: np.ndarray) -> np.ndarray:
    return np.char.add(np.char.add("'", np.asarray(values).astype(str)), "'").astype(object)


def fmt_prob(p: np.ndarray) -> np.ndarray:
    p = np.asarray(p, dtype=float)
    txt = np.char.mod("%.2f", p)
    small = np.char.mod("%.3f", p)
    return np.where(p < 0.01, small, txt).astype(object)


def fmt_int(v: np.ndarray) -> np.ndarray:
    return np.char.mod("%d", np.asarray(v, dtype=np.int64)).astype(object)


def fmt_num(v: np.ndarray) -> np.ndarray:
    return np.char.mod("%.3g", np.asarray(v, dtype=float)).astype(object)
