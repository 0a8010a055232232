"""Small synthetic tables with known poisoned rows, shared by the unit tests (fixed seeds, 40-400 rows)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.datasets import make_blobs, make_classification
from sklearn.metrics import roc_auc_score

from poisonguard.context import ScanContext
from poisonguard.io import load_dataset

WORDS = np.array(
    "red green blue fast slow cheap large small fresh old new shiny broken quiet loud soft hard warm cold dry".split()
)


def blobs(
    n: int = 400, n_flip: int = 12, seed: int = 0, dims: int = 4, sep: float = 2.5
) -> tuple[pd.DataFrame, np.ndarray]:
    """Two well-separated Gaussian blobs labelled 'cat' and 'dog', with ``n_flip`` labels flipped.

    Returns the frame (columns x0..x{dims-1}, label) and the sorted positions of the flipped rows.
    """
    centers = np.array([[-sep] * dims, [sep] * dims])
    X, y = make_blobs(n_samples=n, centers=centers, cluster_std=1.0, random_state=seed)
    rng = np.random.default_rng(seed)
    flipped = np.sort(rng.choice(n, n_flip, replace=False))
    y = y.copy()
    y[flipped] = 1 - y[flipped]
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(dims)])
    frame["label"] = np.where(y == 1, "dog", "cat")
    return frame, flipped


def mixed_frame(n: int = 120, seed: int = 0) -> pd.DataFrame:
    """Numeric, categorical, boolean ('yes'/'no') and short free-text columns, with missing values in each."""
    rng = np.random.default_rng(seed)
    X, y = make_classification(
        n_samples=n, n_features=3, n_informative=2, n_redundant=0, class_sep=1.5, flip_y=0.0, random_state=seed
    )
    frame = pd.DataFrame({"amount": X[:, 0].round(4), "weight": X[:, 1].round(4), "score": X[:, 2].round(4)})
    frame["colour"] = rng.choice(["red", "green", "blue", "grey"], n).astype(object)
    frame["member"] = rng.choice(["yes", "no"], n).astype(object)
    frame["note"] = [" ".join(rng.choice(WORDS, rng.integers(3, 6))) for _ in range(n)]
    for col, every in (("amount", 9), ("colour", 11), ("member", 13), ("note", 17)):
        frame.loc[frame.index[::every], col] = np.nan if col == "amount" else None
    frame["label"] = np.where(y == 1, "spam", "ham")
    return frame


def context(frame: pd.DataFrame, *, label: str = "label", seed: int = 0, **kwargs) -> ScanContext:
    return ScanContext(data=load_dataset(frame, label=label, **kwargs), seed=seed)


def auroc(scores: np.ndarray, positives: np.ndarray) -> float:
    """AUROC of ``scores`` for telling the rows at positions ``positives`` from all the others."""
    truth = np.zeros(len(scores), dtype=bool)
    truth[positives] = True
    return float(roc_auc_score(truth, scores))


def messages(seed: int, n: int, n_junk: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Short messages from a Zipf-like vocabulary of 400 words (some rows use a few rare ones), plus ``n_junk``
    rows of made-up words."""
    rng = np.random.default_rng(seed)
    vocab = np.array([f"w{i}" for i in range(400)])
    weights = 1.0 / np.arange(1, 401)
    lengths = rng.integers(4, 16, n + n_junk)
    words = rng.choice(vocab, size=(n, 16), p=weights / weights.sum())
    texts = [" ".join(w[:k]) for w, k in zip(words, lengths[:n], strict=True)]
    odd = rng.choice(n, n // 10, replace=False)  # clean rows with one or two words of their own
    for j, i in enumerate(odd):
        texts[i] += f" name{j}" + (f" code{j}" if j % 2 else "")
    alphabet = np.array(list("abcdefghijklmnopqrstuvwxyz0123456789"))
    junk = ["".join(rng.choice(alphabet, 7)) for _ in range(lengths[n:].sum())]
    cuts = np.cumsum(lengths[n:])[:-1]
    texts += [" ".join(g) for g in np.split(np.array(junk), cuts)] if n_junk else []
    frame = pd.DataFrame({"text": texts, "x": rng.normal(size=n + n_junk)})
    frame["label"] = rng.choice(["ham", "spam"], n + n_junk)
    return frame, np.arange(n, n + n_junk)


def rare_noisy(n: int = 3000, seed: int = 2) -> pd.DataFrame:
    """Labels drawn from a smooth probability that puts about 3% of the rows in 'yes': no poison, and a rare
    class whose rows the model can barely tell from the others (fraud-like)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    y = rng.random(n) < 1 / (1 + np.exp(-(X[:, 0] - 4.0)))
    return pd.DataFrame(X, columns=["a", "b", "c"]).assign(label=np.where(y, "yes", "no"))
