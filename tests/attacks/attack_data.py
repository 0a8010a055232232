"""Shared tables and cached attack runs for the attack tests (fixed seeds, a few hundred rows at most)."""

from __future__ import annotations

from functools import cache

import numpy as np
import pandas as pd
from sklearn.datasets import make_classification

from poisonguard.attacks import Poisoned, get_attack
from poisonguard.io import Dataset, load_dataset

RATE = 0.05
WORDS = np.array(
    "card online shop refund late fee travel grocery fuel cash wire gift night hotel taxi rent bill phone".split()
)


def table(n: int = 300, seed: int = 0, *, text: bool = True, class_sep: float = 1.2) -> pd.DataFrame:
    """Two classes ('fraud' about 30%, 'legit'): three float columns (one with gaps), an integer column, a
    categorical ``region`` with a rare value and gaps, and (``text=True``) a free-text ``note`` with gaps."""
    rng = np.random.default_rng(seed)
    X, y = make_classification(
        n_samples=n,
        n_features=3,
        n_informative=3,
        n_redundant=0,
        weights=[0.7],
        class_sep=class_sep,
        flip_y=0.0,
        random_state=seed,
    )
    frame = pd.DataFrame({"amount": X[:, 0].round(3), "age": X[:, 1].round(3), "score": X[:, 2].round(3)})
    frame.loc[::23, "amount"] = np.nan
    frame["count"] = rng.integers(0, 12, n)
    frame["region"] = rng.choice(["north", "south", "east", "west", "island"], n, p=[0.3, 0.3, 0.2, 0.17, 0.03])
    frame.loc[::29, "region"] = None
    if text:
        lengths = rng.integers(3, 7, n)
        words = rng.choice(WORDS, (n, 6))
        frame["note"] = [" ".join(w[:k]) for w, k in zip(words, lengths, strict=True)]
        frame.loc[::31, "note"] = None
    frame["label"] = np.where(y == 1, "fraud", "legit")
    return frame


@cache
def contract_data() -> tuple[Dataset, pd.DataFrame, np.ndarray]:
    """The contract table as a Dataset, plus deep copies of its frame and codes taken before any attack ran."""
    ds = load_dataset(table(), label="label")
    assert ds.columns == {
        "amount": "numeric",
        "age": "numeric",
        "score": "numeric",
        "count": "numeric",
        "region": "categorical",
        "note": "text",
    }
    return ds, ds.frame.copy(deep=True), ds.y.copy()


@cache
def run(name: str, seed: int = 0) -> Poisoned:
    """``name`` applied to the contract table at ``RATE`` (cached: the model-guided attacks take seconds)."""
    ds, _, _ = contract_data()
    return get_attack(name).apply(ds, rate=RATE, seed=seed)


def plain_meta(meta: dict) -> dict:
    return {k: v for k, v in meta.items() if not callable(v)}
