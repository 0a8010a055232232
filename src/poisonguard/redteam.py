"""Red-teaming: what poisoning would do to *your* model, and whether the scan would catch it.

For each attack and rate the training split is poisoned (seeded), the user's model is trained on it and
evaluated on the untouched test split, the scan scores the poisoned training rows, and the model is retrained
on the rows the scan did not flag (sanitizing). The poison budget of an attack is the smallest rate whose
damage (accuracy drop, or attack success rate for backdoors) reaches a threshold the user sets.
"""

from __future__ import annotations

import importlib
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import accuracy_score, f1_score, recall_score, roc_auc_score
from sklearn.model_selection import train_test_split

from .attacks import ATTACKS, get_attack
from .context import Progress
from .errors import ConfigError, InputError
from .features import FeatureEncoder, boosting_early_stopping
from .io import Dataset, load_dataset
from .scanner import scan_dataset

DEFAULT_RATES: tuple[float, ...] = (0.01, 0.05, 0.1, 0.2)
BACKDOORS = {"backdoor", "inbounds_backdoor", "clean_label_backdoor", "text_trigger"}

ModelFactory = Callable[[], Any]


def load_model_factory(spec: str) -> ModelFactory:
    """``module:factory`` -> a callable returning a fresh scikit-learn style estimator."""
    if ":" not in spec:
        raise ConfigError(f"--model must look like 'module:factory' (a function returning an estimator); got {spec!r}.")
    mod_name, _, attr = spec.partition(":")
    try:
        mod = importlib.import_module(mod_name)
    except ImportError as exc:
        raise ConfigError(f"--model: cannot import module '{mod_name}' ({exc}); is it on PYTHONPATH?") from exc
    factory = getattr(mod, attr, None)
    if not callable(factory):
        raise ConfigError(f"--model: '{mod_name}' has no callable '{attr}'.")
    return factory


def default_model(categorical: np.ndarray, seed: int, y: np.ndarray) -> Any:
    """The built-in gradient boosting for the label codes ``y`` it will be fitted on (it stops early only where
    it can)."""
    return HistGradientBoostingClassifier(
        categorical_features=categorical if categorical.any() else None,
        early_stopping=boosting_early_stopping(y),
        random_state=seed,
    )


class FrameModel(ClassifierMixin, BaseEstimator):
    """The built-in gradient boosting fitted on a raw table: columns are typed and encoded as the scan does, so the
    fitted model takes a DataFrame like any pipeline and can be saved with joblib and evaluated.

    ``columns`` maps feature columns to types (default: inferred from the training frame, ids and constants left
    out); ``seed`` seeds the encoder and the booster.
    """

    def __init__(self, columns: Mapping[str, str] | None = None, seed: int = 0) -> None:
        self.columns = columns
        self.seed = seed

    def fit(self, X: pd.DataFrame, y: Any) -> FrameModel:
        cols = dict(self.columns) if self.columns is not None else _infer_columns(X, y)
        self.encoder_ = FeatureEncoder.fit(X, cols, seed=self.seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cat = np.asarray(self.encoder_.tree_categorical, dtype=bool)
            y = np.asarray(y)
            self.model_ = default_model(cat, self.seed, pd.factorize(y)[0]).fit(self.encoder_.tree(X), y)
        self.classes_ = self.model_.classes_
        self.feature_names_in_ = np.asarray(list(cols), dtype=object)
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return self.model_.predict_proba(self.encoder_.tree(X))

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


def _infer_columns(X: pd.DataFrame, y: Any) -> dict[str, str]:
    key = "__poisonguard_label__"
    return dict(load_dataset(X.assign(**{key: np.asarray(y)}), label=key, name="training frame").columns)


@dataclass(frozen=True)
class RedteamResult:
    """``runs``: one row per (attack, rate); ``budget``: the poison budget per attack; ``baseline``: the clean model."""

    runs: pd.DataFrame
    budget: pd.DataFrame
    baseline: dict[str, Any]
    skipped: dict[str, str] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "settings": self.settings,
            "baseline": self.baseline,
            "runs": self.runs.replace({np.nan: None}).to_dict("records"),
            "budget": self.budget.replace({np.nan: None}).to_dict("records"),
            "skipped": self.skipped,
        }

    def to_json(self, path: str | Path) -> None:
        import json

        Path(path).write_text(json.dumps(self.to_dict(), indent=2, default=float) + "\n")


def _evaluate(model: Any, X: np.ndarray, y: np.ndarray, n_classes: int) -> dict[str, Any]:
    pred = model.predict(X)
    return {
        "accuracy": float(accuracy_score(y, pred)),
        "f1_macro": float(f1_score(y, pred, average="macro", labels=np.arange(n_classes), zero_division=0)),
        "recall_per_class": recall_score(y, pred, average=None, labels=np.arange(n_classes), zero_division=0).tolist(),
    }


def _asr(
    model: Any, enc: FeatureEncoder, test: Dataset, y_test: np.ndarray, classes: np.ndarray, meta: Mapping[str, Any]
) -> float | None:
    """Share of test rows of other classes that the trigger turns into the target class. ``y_test`` and the
    model's predictions are codes of ``classes`` (all classes of the data): the test split may lack some, the
    target among them (a class of one row)."""
    apply = meta.get("apply_trigger")
    if apply is None:
        return None
    target = int(np.flatnonzero(classes.astype(str) == str(meta["target"]))[0])
    rows = test.frame.loc[y_test != target]
    if len(rows) == 0:
        return None
    pred = model.predict(enc.tree(apply(rows)))
    return float(np.mean(pred == target))


@dataclass
class Run:
    """One simulated attack: the summary record and what produced it (for benchmarks that add comparators)."""

    record: dict[str, Any]
    poisoned: Dataset
    mask: np.ndarray
    meta: dict[str, Any]
    scan: Any


@dataclass
class Simulator:
    """Poisons a training split, trains, scans and sanitizes; shared by ``redteam`` and the benchmarks."""

    train: Dataset
    test: Dataset
    classes: np.ndarray
    encoder: FeatureEncoder
    fit: Callable[[pd.DataFrame, np.ndarray], Any]
    baseline: dict[str, Any]
    fpr: float = 0.01
    drop: Sequence[str] = ()
    types: Mapping[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def recode(self, d: Dataset) -> np.ndarray:
        return pd.Index(self.classes.astype(str)).get_indexer(d.classes.astype(str)[d.y])

    def run(self, attack: str, rate: float, seed: int) -> Run:
        t0 = time.perf_counter()
        out = get_attack(attack).apply(self.train, rate=rate, seed=seed)
        pois = load_dataset(
            out.frame, label=self.train.label, exclude=self.drop, types=dict(self.types), name=self.train.name
        )
        n_classes = len(self.classes)
        X_test, y_test = self.encoder.tree(self.test.frame), self.recode(self.test)
        y_p = self.recode(pois)
        m_p = self.fit(pois.frame, y_p)
        ev = _evaluate(m_p, X_test, y_test, n_classes)
        scan = scan_dataset(pois, seed=seed, fpr=self.fpr)
        flagged = scan.rows["flagged"].to_numpy()
        score = scan.rows["score"].to_numpy()
        mask = out.mask
        keep = ~flagged
        m_s = self.fit(pois.frame.loc[keep], y_p[keep])
        ev_s = _evaluate(m_s, X_test, y_test, n_classes)
        base = self.baseline
        rec: dict[str, Any] = {
            "attack": attack,
            "rate": rate,
            "seed": seed,
            "poisoned_rows": int(mask.sum()),
            "accuracy": ev["accuracy"],
            "accuracy_change": ev["accuracy"] - base["accuracy"],
            "f1_change": ev["f1_macro"] - base["f1_macro"],
            "recall_change_per_class": (np.asarray(ev["recall_per_class"]) - np.asarray(base["recall_per_class"]))
            .round(4)
            .tolist(),
            "asr": _asr(m_p, self.encoder, self.test, y_test, self.classes, out.meta),
            "detection_auroc": float(roc_auc_score(mask, score)) if 0 < mask.sum() < len(mask) else None,
            "flag_recall": float(flagged[mask].mean()) if mask.any() else None,
            "flag_precision": float(mask[flagged].mean()) if flagged.any() else None,
            "flagged": int(flagged.sum()),
            "verdict": scan.verdict,
            "sanitized_accuracy": ev_s["accuracy"],
            "sanitized_asr": _asr(m_s, self.encoder, self.test, y_test, self.classes, out.meta),
            "seconds": round(time.perf_counter() - t0, 2),
        }
        rec["damage"] = rec["asr"] if rec["asr"] is not None else max(0.0, -rec["accuracy_change"])
        return Run(record=rec, poisoned=pois, mask=mask, meta=dict(out.meta), scan=scan)


def split_and_baseline(
    ds: Dataset, *, seed: int, test_size: float, model: ModelFactory | None, fpr: float
) -> Simulator:
    """Stratified train/test split, one encoder fitted on the clean training rows, the clean model's scores."""
    keep_types = dict(ds.columns)
    drop = [c for c, why in ds.ignored.items() if why != "label"]
    counts = np.bincount(ds.y)
    # A class of one row can be neither held out nor measured, and it unsettles the model on the rest (the built-in
    # boosting's accuracy on two clean classes: 1.00 alone, 0.98 beside three such rows): left out, with a note.
    single = counts[ds.y] < 2
    notes = []
    if single.any():
        names = ", ".join(repr(str(c)) for c in ds.classes[np.flatnonzero(counts == 1)])
        notes.append(
            f"{int(single.sum())} row(s) of classes held by a single row ({names}) were left out of the red team: "
            "a class needs two rows to be split between training and testing"
        )
    idx = np.flatnonzero(~single)
    tr = te = idx
    if np.unique(ds.y[idx]).size >= 2:
        tr, te = train_test_split(idx, test_size=test_size, random_state=seed, stratify=ds.y[idx])
    if np.unique(ds.y[te]).size < 2:
        big = int(np.bincount(ds.y).argmax())
        rare = ", ".join(
            f"{ds.classes[c]!r} ({counts[c]} row{'s' if counts[c] > 1 else ''})"
            for c in np.flatnonzero((counts > 0) & (np.arange(len(counts)) != big))
        )
        raise InputError(
            f"{ds.name}: all but {rare} of the rows are of class {ds.classes[big]!r}. A red team trains on some rows "
            "and measures the damage on held-out rows, which needs at least two rows of two classes; add labelled "
            "rows of the rare classes."
        )

    def part(rows: np.ndarray) -> Dataset:
        return load_dataset(
            ds.frame.iloc[rows].reset_index(drop=True), label=ds.label, exclude=drop, types=keep_types, name=ds.name
        )

    train, test = part(tr), part(te)
    enc = FeatureEncoder.fit(train.frame, keep_types, seed=seed)
    cat = np.asarray(enc.tree_categorical, dtype=bool)

    def fit(frame: pd.DataFrame, y: np.ndarray) -> Any:
        est = model() if model is not None else default_model(cat, seed, y)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return est.fit(enc.tree(frame), y)

    sim = Simulator(
        train=train,
        test=test,
        classes=ds.classes,
        encoder=enc,
        fit=fit,
        baseline={},
        fpr=fpr,
        drop=drop,
        types=keep_types,
        notes=notes,
    )
    base_model = fit(train.frame, sim.recode(train))
    sim.baseline = _evaluate(base_model, enc.tree(test.frame), sim.recode(test), len(ds.classes))
    return sim


def redteam(
    data: Any,
    *,
    label: Any,
    attacks: Sequence[str] | None = None,
    rates: Sequence[float] = DEFAULT_RATES,
    model: ModelFactory | None = None,
    seed: int = 0,
    test_size: float = 0.3,
    fpr: float = 0.01,
    damage_threshold: float = 0.02,
    exclude: Sequence[str] = (),
    types: Mapping[str, str] | None = None,
    progress: Progress | None = None,
    name: str | None = None,
) -> RedteamResult:
    """Simulate each attack at each rate against the model and the scan. See the module docstring."""
    progress = progress or Progress()
    names = list(attacks) if attacks else sorted(n for n in ATTACKS if n != "adaptive")
    for n in names:
        get_attack(n)  # unknown names fail before any work
    for r in rates:
        if not 0 < r < 1:
            raise ConfigError(f"rates must be fractions between 0 and 1; got {r!r}.")
    if not 0 < damage_threshold < 1:
        raise ConfigError(f"the damage threshold must be between 0 and 1; got {damage_threshold!r}.")
    ds = load_dataset(data, label=label, exclude=exclude, types=dict(types or {}), name=name)
    sim = split_and_baseline(ds, seed=seed, test_size=test_size, model=model, fpr=fpr)
    baseline = sim.baseline
    records: list[dict[str, Any]] = []
    skipped: dict[str, str] = {}
    with progress.task("red-teaming", total=len(names) * len(rates)) as advance:
        for a_name in names:
            for rate in rates:
                try:
                    run = sim.run(a_name, rate, seed)
                except ConfigError as exc:
                    skipped[a_name] = str(exc)
                    advance(len(rates))
                    break
                records.append(run.record)
                advance(1)
    runs = pd.DataFrame.from_records(records)
    budget = _budget(runs, damage_threshold)
    settings = {
        "data": ds.name,
        "rates": list(rates),
        "seed": seed,
        "test_size": test_size,
        "fpr": fpr,
        "damage_threshold": damage_threshold,
        "model": "built-in gradient boosting" if model is None else repr(model()),
        "train_rows": sim.train.n_rows,
        "test_rows": sim.test.n_rows,
        "notes": [*ds.notes, *sim.notes],
    }
    return RedteamResult(runs=runs, budget=budget, baseline=baseline, skipped=skipped, settings=settings)


def _budget(runs: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """Smallest rate whose damage reaches the threshold, per attack (NaN when no rate does)."""
    if runs.empty:
        return pd.DataFrame(columns=["attack", "budget", "max_damage"])
    hit = runs[runs["damage"] >= threshold]
    first = hit.groupby("attack")["rate"].min()
    worst = runs.groupby("attack")["damage"].max()
    out = pd.DataFrame({"attack": worst.index, "max_damage": worst.to_numpy()})
    out["budget"] = out["attack"].map(first)
    return out[["attack", "budget", "max_damage"]]


__all__ = ["DEFAULT_RATES", "FrameModel", "RedteamResult", "load_model_factory", "redteam"]
