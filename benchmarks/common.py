"""Shared pieces of the benchmarks: the oracle score and a random label flip."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.model_selection import StratifiedKFold

from poisonguard.features import FeatureEncoder
from poisonguard.io import load_dataset


def random_flip(df: pd.DataFrame, rate: float, seed: int, label: str = "label") -> tuple[pd.DataFrame, np.ndarray]:
    """Flip ``rate`` of the labels to another class chosen uniformly; returns (copy, mask)."""
    rng = np.random.default_rng(seed)
    n = len(df)
    mask = np.zeros(n, dtype=bool)
    mask[rng.choice(n, round(rate * n), replace=False)] = True
    classes = np.asarray(sorted(df[label].astype(str).unique()))
    y = df[label].astype(str).to_numpy()
    codes = np.searchsorted(classes, y)
    shift = rng.integers(1, len(classes), size=n)
    new = classes[(codes + shift) % len(classes)]
    out = df.copy()
    flipped = np.where(mask, new, y)
    out[label] = (
        flipped
        if df[label].dtype == object or isinstance(df[label].dtype, pd.StringDtype)
        else (pd.Series(flipped).astype(df[label].dtype).to_numpy())
    )
    return out, mask


def oracle_scores(
    poisoned: pd.DataFrame, clean: pd.DataFrame, mask: np.ndarray, seed: int = 0, label: str = "label"
) -> np.ndarray:
    """The practical ceiling: 5-fold out-of-fold boosting fitted on the clean rows only (true labels), scoring
    1 - p(observed label) for every row of the poisoned table."""
    ds_clean = load_dataset(clean, label=label)
    ds_pois = load_dataset(poisoned, label=label)
    enc = FeatureEncoder.fit(ds_pois.frame, ds_pois.columns, seed=seed)
    X = enc.tree(ds_pois.frame)
    Xc = enc.tree(ds_clean.frame)
    yc = ds_clean.y
    # map observed labels into the clean label coding
    obs = np.searchsorted(ds_clean.classes.astype(str), ds_pois.classes.astype(str)[ds_pois.y])
    cat = np.asarray(enc.tree_categorical, dtype=bool)
    proba = np.zeros((len(X), len(ds_clean.classes)))
    for tr, te in StratifiedKFold(5, shuffle=True, random_state=seed).split(X, yc):
        tr = tr[~mask[tr]]
        m = HistGradientBoostingClassifier(categorical_features=cat if cat.any() else None, random_state=seed)
        m.fit(Xc[tr], yc[tr])
        p = np.zeros((len(te), proba.shape[1]))
        p[:, m.classes_] = m.predict_proba(X[te])
        proba[te] = p
    return 1.0 - proba[np.arange(len(X)), obs]
