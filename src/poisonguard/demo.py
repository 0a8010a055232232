"""The demo: poison a small real data set on purpose, scan it, compare what was caught with what was planted.

The data is scikit-learn's bundled Wisconsin breast cancer table (569 rows, 30 numeric features; it ships
with scikit-learn, nothing is downloaded) with a string label column ``diagnosis`` (``malignant`` /
``benign``). A copy is poisoned with a fixed seed in two ways:

* label flips: 4% of the rows, picked at random, get the other diagnosis;
* a backdoor trigger: 3% of the other rows get ``mean radius`` and ``worst texture`` set to a value far beyond
  anything in the data (the column maximum plus 10 standard deviations) and the label ``benign``, the way an
  attacker would teach a model "this pattern means benign".

``poisonguard demo`` writes the poisoned table and the ground truth, scans the file exactly as
``poisonguard scan`` would, and prints the comparison computed by :func:`caught_vs_planted`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

LABEL = "diagnosis"
FLIP_FRACTION = 0.04
TRIGGER_FRACTION = 0.03
TRIGGER_COLUMNS = ("mean radius", "worst texture")
TRIGGER_LABEL = "benign"
KINDS = {"label_flip": "label flip", "backdoor_trigger": "backdoor trigger"}
DEFAULT_OUT = "demo_out"


def clean_data() -> pd.DataFrame:
    """The breast cancer table with a string ``diagnosis`` label column."""
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer()
    frame = pd.DataFrame(bunch.data, columns=[str(c) for c in bunch.feature_names])
    frame[LABEL] = np.asarray(bunch.target_names, dtype=object)[bunch.target]
    return frame


def poison(frame: pd.DataFrame, *, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return a poisoned copy of ``frame`` and the ground truth (``row``, ``poisoned``, ``kind``)."""
    rng = np.random.default_rng(seed)
    n = len(frame)
    out = frame.copy()
    order = rng.permutation(n)
    n_flip = round(FLIP_FRACTION * n)
    n_trigger = round(TRIGGER_FRACTION * n)
    flip = np.sort(order[:n_flip])
    trigger = np.sort(order[n_flip : n_flip + n_trigger])

    classes = sorted(frame[LABEL].unique())
    other = {classes[0]: classes[1], classes[1]: classes[0]}
    out.loc[flip, LABEL] = frame.loc[flip, LABEL].map(other).to_numpy()
    for col in TRIGGER_COLUMNS:
        values = frame[col].to_numpy(dtype=float)
        out.loc[trigger, col] = float(values.max() + 10 * values.std())
    out.loc[trigger, LABEL] = TRIGGER_LABEL

    kind = np.full(n, "none", dtype=object)
    kind[flip] = "label_flip"
    kind[trigger] = "backdoor_trigger"
    truth = pd.DataFrame({"row": np.arange(n), "poisoned": kind != "none", "kind": kind})
    return out, truth


def write_data(out_dir: str | Path, *, seed: int = 0) -> tuple[Path, Path]:
    """Write ``poisoned.csv`` and ``truth.csv`` into ``out_dir`` (created if missing, files overwritten)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    poisoned, truth = poison(clean_data(), seed=seed)
    data_path, truth_path = out / "poisoned.csv", out / "truth.csv"
    poisoned.to_csv(data_path, index=False)
    truth.to_csv(truth_path, index=False)
    return data_path, truth_path


@dataclass(frozen=True)
class KindRecall:
    kind: str
    planted: int
    flagged: int

    @property
    def recall(self) -> float:
        return self.flagged / self.planted if self.planted else float("nan")


@dataclass(frozen=True)
class DemoReport:
    """How the scan's flags and scores line up with the planted poison."""

    kinds: list[KindRecall]
    flagged: int
    flagged_poisoned: int
    auroc: float

    @property
    def planted(self) -> int:
        return sum(k.planted for k in self.kinds)

    @property
    def precision(self) -> float:
        return self.flagged_poisoned / self.flagged if self.flagged else float("nan")


def caught_vs_planted(rows: pd.DataFrame, truth: pd.DataFrame) -> DemoReport:
    """Compare a scan's ``rows`` (``row``, ``score``, ``flagged``) with the truth from :func:`poison`."""
    from sklearn.metrics import roc_auc_score

    merged = truth.merge(rows[["row", "score", "flagged"]], on="row", how="left", validate="one_to_one")
    if merged["score"].isna().any():
        raise ValueError("the scan result does not cover every row of the demo data")
    flagged = merged["flagged"].astype(bool).to_numpy()
    poisoned = merged["poisoned"].astype(bool).to_numpy()
    kinds = [
        KindRecall(
            kind=label,
            planted=int((merged["kind"] == key).sum()),
            flagged=int(((merged["kind"] == key).to_numpy() & flagged).sum()),
        )
        for key, label in KINDS.items()
    ]
    auroc = float(roc_auc_score(poisoned, merged["score"].to_numpy(dtype=float)))
    return DemoReport(
        kinds=kinds,
        flagged=int(flagged.sum()),
        flagged_poisoned=int((flagged & poisoned).sum()),
        auroc=auroc,
    )


__all__ = [
    "DEFAULT_OUT",
    "LABEL",
    "DemoReport",
    "KindRecall",
    "caught_vs_planted",
    "clean_data",
    "poison",
    "write_data",
]
