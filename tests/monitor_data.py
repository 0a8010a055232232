"""Seeded tables for the monitor tests: one fixed distribution, so two draws differ only by sampling."""

from __future__ import annotations

import numpy as np
import pandas as pd

REGIONS = np.array(["north", "south", "east", "west"])
REGION_P = np.array([0.4, 0.3, 0.2, 0.1])


def draw(n: int, seed: int, *, shift: float = 0.0, region_p: np.ndarray | None = None) -> pd.DataFrame:
    """``n`` rows: numeric ``a``, ``b``, ``c`` (standard normal, ``a`` moved by ``shift`` sd), ``region`` and a
    label that depends on ``a + b``."""
    rng = np.random.default_rng(seed)
    a = rng.normal(shift, 1.0, n)
    b = rng.normal(0.0, 1.0, n)
    c = rng.normal(0.0, 1.0, n)
    region = REGIONS[rng.choice(4, n, p=REGION_P if region_p is None else region_p)]
    noise = rng.normal(0, 0.5, n)
    label = np.where(a + b + noise > 0, "yes", "no")
    return pd.DataFrame({"a": a, "b": b, "c": c, "region": region, "label": label})


def fit_model(frame: pd.DataFrame, label: str = "label"):
    """A fitted pipeline that takes the feature columns of ``frame`` (numeric and ``region``)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    feats = [c for c in frame.columns if c != label]
    num = [c for c in feats if c != "region"]
    pre = ColumnTransformer([("num", "passthrough", num), ("cat", OneHotEncoder(handle_unknown="ignore"), ["region"])])
    model = make_pipeline(pre, RandomForestClassifier(n_estimators=30, min_samples_leaf=2, random_state=0, n_jobs=1))
    return model.fit(frame[feats], frame[label])
