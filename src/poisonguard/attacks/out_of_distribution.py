"""Out-of-distribution injection: synthetic rows far from the data, carrying the attacker's labels.

Why it matters: junk rows from a broken feed or a careless attacker stretch feature scales and bend the model
at the edges; it is the easy case every outlier detector must catch. Adds ``rate * n`` rows at the end: numbers
10-30 robust scales from the median, categories an unseen value, free text replaced by junk (as many made-up
words as the copied row had, each 3-10 random letters and digits: keyboard mash, encoded blobs, words from no
vocabulary). Parameters: none. ``meta``: ``added_rows``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..io import Dataset
from .base import Attack, Poisoned, count_for, numeric_columns, register_attack, with_labels


@register_attack("out_of_distribution")
class OutOfDistributionAttack(Attack):
    description = "new rows far outside the data (numbers 10-30 robust scales out, unseen categories, junk text)"

    def _apply(self, data: Dataset, *, rate: float, rng: np.random.Generator) -> Poisoned:
        n = data.n_rows
        k = count_for(n, rate)
        base = data.frame.iloc[rng.choice(n, k, replace=True)].reset_index(drop=True).copy()
        for col in numeric_columns(data):
            x = pd.to_numeric(data.frame[col], errors="coerce").to_numpy(dtype=float)
            med = np.nanmedian(x)
            scale = np.nanpercentile(x, 75) - np.nanpercentile(x, 25)
            scale = scale if scale > 0 else (np.nanstd(x) or 1.0)
            sign = rng.choice([-1.0, 1.0], size=k)
            base[col] = med + sign * rng.uniform(10, 30, size=k) * scale
        for col, kind in data.columns.items():
            if kind == "categorical":
                base[col] = "__ood__"
            elif kind == "text":
                base[col] = junk_text(base[col], rng)
        frame = pd.concat([data.frame, base], ignore_index=True)
        rows = np.arange(n, n + k)
        codes = rng.integers(0, data.n_classes, size=k)
        mask = np.zeros(n + k, dtype=bool)
        mask[rows] = True
        return Poisoned(with_labels(data, frame, rows, codes), mask, {"added_rows": k})


JUNK_ALPHABET = np.array(list("abcdefghijklmnopqrstuvwxyz0123456789"))


def junk_text(texts: pd.Series, rng: np.random.Generator) -> np.ndarray:
    """Per row, as many made-up words as the row had words (at least one), each 3-10 random letters and digits."""
    words = np.maximum(texts.fillna("").astype(str).str.split().str.len().to_numpy(dtype=np.int64), 1)
    width = 10
    lengths = rng.integers(3, width + 1, size=int(words.sum()))
    chars = JUNK_ALPHABET[rng.integers(0, len(JUNK_ALPHABET), size=(len(lengths), width))]
    chars[np.arange(width)[None, :] >= lengths[:, None]] = ""
    tokens = chars.view(f"<U{width}").ravel()  # trailing empty characters are padding: each row is one word
    # one join over every word, a newline after each row's last word, then one split: no per-row Python call
    seps = np.full(len(tokens), " ", dtype="<U1")
    seps[np.cumsum(words) - 1] = "\n"
    return np.array("".join(np.char.add(tokens, seps).tolist()).split("\n")[:-1], dtype=object)
