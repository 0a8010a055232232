"""Loaders for the real data sets in ../shared/datasets (read-only; never copied into the repo).

Each loader returns a DataFrame with the label column named ``label``. Used by the benchmarks and by the
tests that check detection quality on real data.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def _shared() -> Path:
    """$POISONGUARD_DATASETS, else ``../shared/datasets`` next to the checkout; from a git worktree nested deeper,
    the nearest one above it."""
    if os.environ.get("POISONGUARD_DATASETS"):
        return Path(os.environ["POISONGUARD_DATASETS"]).resolve()
    for parent in ROOT.parents:
        if (parent / "shared" / "datasets").is_dir():
            return (parent / "shared" / "datasets").resolve()
    return (ROOT / ".." / "shared" / "datasets").resolve()


SHARED = _shared()

ADULT_COLUMNS = [
    "age",
    "workclass",
    "fnlwgt",
    "education",
    "education_num",
    "marital_status",
    "occupation",
    "relationship",
    "race",
    "sex",
    "capital_gain",
    "capital_loss",
    "hours_per_week",
    "native_country",
]


def available() -> bool:
    return SHARED.is_dir()


def adult() -> pd.DataFrame:
    df = pd.read_csv(SHARED / "adult" / "adult.data", header=None, sep=", ", engine="python", na_values="?")
    df.columns = [*ADULT_COLUMNS, "label"]
    return df


def german_credit() -> pd.DataFrame:
    df = pd.read_csv(SHARED / "german_credit" / "german.data", header=None, sep=" ")
    df.columns = [f"a{i + 1}" for i in range(20)] + ["label"]
    df["label"] = df["label"].map({1: "good", 2: "bad"})
    return df


def spambase() -> pd.DataFrame:
    df = pd.read_csv(SHARED / "spambase" / "spambase.data", header=None)
    df.columns = [f"f{i}" for i in range(57)] + ["label"]
    return df


def bank_marketing() -> pd.DataFrame:
    df = pd.read_csv(SHARED / "bank_marketing" / "bank-additional-full.csv", sep=";")
    return df.drop(columns=["duration"]).rename(columns={"y": "label"})


def bank_marketing_rare(share: float = 0.01) -> pd.DataFrame:
    """bank_marketing with 'yes' cut to ``share`` of the rows (every 'no' row kept; the 'yes' rows a fixed random
    sample): the imbalance of fraud or default data, where a backdoor into the rare class soon outnumbers it."""
    df = bank_marketing()
    no, yes = df[df["label"] == "no"], df[df["label"] == "yes"]
    k = round(share / (1 - share) * len(no))
    return pd.concat([no, yes.sample(k, random_state=0)]).sort_index().reset_index(drop=True)


def sms_spam() -> pd.DataFrame:
    df = pd.read_csv(
        SHARED / "sms_spam" / "SMSSpamCollection", sep="\t", header=None, quoting=3, names=["label", "text"]
    )
    return df


def mnist_5k() -> pd.DataFrame:
    df = pd.read_csv(SHARED / "mnist" / "mnist_5k.csv.gz", header=None)
    df.columns = [f"p{i}" for i in range(784)] + ["label"]
    return df


def fashion_mnist(n: int = 6000, seed: int = 0) -> pd.DataFrame:
    d = SHARED / "fashion_mnist"
    with gzip.open(d / "train-images-idx3-ubyte.gz") as f:
        X = np.frombuffer(f.read(), dtype=np.uint8, offset=16).reshape(-1, 784)
    with gzip.open(d / "train-labels-idx1-ubyte.gz") as f:
        y = np.frombuffer(f.read(), dtype=np.uint8, offset=8)
    idx = np.sort(np.random.default_rng(seed).choice(len(y), n, replace=False))
    df = pd.DataFrame(X[idx].astype(np.int16), columns=[f"p{i}" for i in range(784)])
    df["label"] = y[idx].astype(int)
    return df


LOADERS = {
    "adult": adult,
    "german_credit": german_credit,
    "spambase": spambase,
    "bank_marketing": bank_marketing,
    "bank_marketing_rare": bank_marketing_rare,
    "sms_spam": sms_spam,
    "mnist": mnist_5k,
    "fashion_mnist": fashion_mnist,
}
TABULAR = ("adult", "german_credit", "spambase", "bank_marketing")
