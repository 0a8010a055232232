"""The attacker's clean model for the model-guided flips: out-of-fold class probabilities of every row.

Gradient boosting on the tree view of ``FeatureEncoder`` (numbers raw, categories native, text as components),
cross-fitted with 3 folds so that each row is scored by a model that never saw it.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.model_selection import KFold, StratifiedKFold

from ..features import FeatureEncoder, boosting_early_stopping
from ..io import Dataset

FOLDS = 3


def out_of_fold_proba(data: Dataset, *, seed: int, folds: int = FOLDS) -> np.ndarray:
    """(n_rows, n_classes) probabilities; a class missing from a fold's training rows gets 0 in that fold."""
    frame = data.frame
    enc = FeatureEncoder.fit(frame, data.columns, seed=seed)
    X = enc.tree(frame)
    cat = np.asarray(enc.tree_categorical, dtype=bool)
    y = data.y
    n = len(y)
    folds = max(2, min(folds, n))
    counts = np.bincount(y, minlength=data.n_classes)
    splitter = (
        StratifiedKFold(folds, shuffle=True, random_state=seed)
        if counts[counts > 0].min() >= folds
        else KFold(folds, shuffle=True, random_state=seed)
    )
    proba = np.zeros((n, data.n_classes))
    for train, test in splitter.split(X, y):
        present = np.unique(y[train])
        if len(present) == 1:
            proba[test, present[0]] = 1.0
            continue
        model = HistGradientBoostingClassifier(
            categorical_features=cat if cat.any() else None,
            early_stopping=boosting_early_stopping(y[train]),
            random_state=seed,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(X[train], y[train])
        proba[np.ix_(test, model.classes_)] = model.predict_proba(X[test])
    return proba


def margins(proba: np.ndarray) -> np.ndarray:
    """Top class probability minus the second: small = the model is unsure."""
    top2 = np.sort(proba, axis=1)[:, -2:]
    return top2[:, 1] - top2[:, 0]


def most_likely_other(proba: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The most probable class other than each row's own label."""
    p = proba.copy()
    p[np.arange(len(y)), y] = -np.inf
    return p.argmax(axis=1)


def ranked(key: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Positions of the ``k`` smallest entries of ``key`` (seeded tie-breaking), sorted."""
    order = np.lexsort((rng.random(len(key)), key))
    return np.sort(order[: min(k, len(key))])
