"""Models as ``evaluate`` sees them: something that gives class probabilities for the rows of a table.

Three ways in, so that any framework can be evaluated:

* a scikit-learn style estimator (an object, or a joblib/pickle file: unpickling runs code, load only files you
  trust). It gets the table's feature columns as a DataFrame, the way it was trained, so a model that needs
  preprocessing must be a pipeline that includes it. A model with ``feature_names_in_`` gets exactly those columns.
* an ONNX file, run with onnxruntime (``pip install poisonguard[onnx]``). A model with one input gets the feature
  columns as one float matrix; a model with one input per column gets each column by name.
* predictions: a CSV/Parquet file or a DataFrame with one probability column per class (the column names are
  the class labels), or an (n, k) array whose columns follow the sorted class labels. Fixed predictions cannot
  be run on new rows, so the backdoor probe skips them.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import InputError

PICKLE_SUFFIXES = {".joblib", ".pkl", ".pickle", ".sav"}
TABLE_SUFFIXES = {".csv", ".tsv", ".parquet", ".pq", ".jsonl", ".ndjson", ".gz", ".bz2", ".xz", ".zip"}
SUM_TOLERANCE = 0.01


class UnpicklingWarning(UserWarning):
    """A pickle or joblib file was loaded: unpickling runs whatever code the file holds."""


def label_text(v: Any) -> str:
    """A class label as text, so that 1, 1.0, np.int64(1) and '1' name the same class."""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v).strip()


@dataclass
class Predictor:
    """Class probabilities for a table's rows. ``classes`` are the model's labels, in its column order.

    ``proba_fn`` maps a frame (the feature columns) to an (n, k) array; fixed predictions have ``fixed``
    instead and no ``proba_fn``.
    """

    name: str
    classes: np.ndarray | None  # None until an ONNX model without stored labels has run once
    proba_fn: Callable[[pd.DataFrame], np.ndarray] | None = None
    fixed: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def can_predict(self) -> bool:
        """Whether the model can score new rows (needed for the backdoor probe)."""
        return self.proba_fn is not None

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        if self.proba_fn is None:
            if self.fixed is None:
                raise InputError(f"{self.name}: has neither a model nor predictions.")
            return self.fixed  # the caller checks that they are one row per row of the table
        return np.asarray(self.proba_fn(frame), dtype=np.float64)


def _columns_for(model: Any, frame: pd.DataFrame, name: str) -> pd.DataFrame:
    wanted = getattr(model, "feature_names_in_", None)
    if wanted is None:
        return frame
    wanted = [str(c) for c in wanted]
    missing = [c for c in wanted if c not in frame.columns]
    if missing:
        raise InputError(
            f"{name}: the model was trained on columns the data lacks: {', '.join(repr(c) for c in missing[:10])}"
            f"{' ...' if len(missing) > 10 else ''}; evaluate it on data with the same columns."
        )
    return frame[wanted]


def from_estimator(model: Any, *, name: str | None = None) -> Predictor:
    """A fitted scikit-learn style estimator (``predict_proba``, or ``predict`` alone: one-hot probabilities)."""
    name = name or type(model).__name__
    if not (hasattr(model, "predict_proba") or hasattr(model, "predict")):
        raise InputError(
            f"{name}: a {type(model).__name__} object has neither predict_proba nor predict; pass a fitted "
            "scikit-learn style classifier, an ONNX file or a predictions file."
        )
    classes = getattr(model, "classes_", None)
    if classes is None:
        raise InputError(
            f"{name}: the model has no classes_ attribute (is it fitted, and is it a classifier?); fit it first "
            "or pass a predictions file with one probability column per class."
        )
    classes = np.asarray(classes, dtype=object)
    notes = []
    if not hasattr(model, "predict_proba"):
        notes.append(f"{name} has no predict_proba: its predictions count as certain (AUROC, log loss are crude)")

    def proba(frame: pd.DataFrame) -> np.ndarray:
        X = _columns_for(model, frame, name)
        try:
            if hasattr(model, "predict_proba"):
                return np.asarray(model.predict_proba(X), dtype=np.float64)
            pred = pd.Index([label_text(c) for c in classes]).get_indexer([label_text(v) for v in model.predict(X)])
            return np.eye(len(classes))[pred]
        except InputError:
            raise
        except Exception as exc:
            shown = ", ".join(f"{c} ({X[c].dtype})" for c in list(X.columns)[:12])
            raise InputError(
                f"{name}: the model failed on the data ({type(exc).__name__}: {exc}). It was given a DataFrame with "
                f"{X.shape[1]} columns: {shown}{' ...' if X.shape[1] > 12 else ''}. The model must take the raw "
                "feature columns the way it was trained; a model that needs preprocessing must be a pipeline that "
                "includes it."
            ) from exc

    return Predictor(name=name, classes=classes, proba_fn=proba, notes=notes)


def from_pickle(path: str | Path) -> Predictor:
    """A joblib or pickle file holding a fitted estimator. Unpickling runs code: load only files you trust."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such model file; check the path.")
    warnings.warn(
        f"{p}: loading a pickle/joblib file runs any code it holds; load only model files you trust.",
        UnpicklingWarning,
        stacklevel=2,
    )
    try:
        import joblib

        model = joblib.load(p)
    except Exception as exc:
        raise InputError(
            f"{p}: cannot load the model ({type(exc).__name__}: {exc}); pass a joblib/pickle file of a fitted "
            "scikit-learn style estimator, saved with the same library versions, or an ONNX file."
        ) from exc
    return from_estimator(model, name=str(p))


def _onnx_classes(path: Path, n_out: int) -> np.ndarray | None:
    """Class labels stored in an ONNX-ML graph (classifier or ZipMap node), when the onnx package is there."""
    try:
        import onnx
    except ImportError:
        return None
    try:
        graph = onnx.load(str(path)).graph
    except Exception:
        return None
    for node in graph.node:
        for attr in node.attribute:
            if attr.name == "classlabels_strings" and len(attr.strings) == n_out:
                return np.asarray([s.decode() for s in attr.strings], dtype=object)
            if attr.name in ("classlabels_int64s", "classlabels_ints") and len(attr.ints) == n_out:
                return np.asarray(list(attr.ints), dtype=object)
    return None


def from_onnx(path: str | Path) -> Predictor:
    """An ONNX classifier run with onnxruntime; its probability output gives the class probabilities."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such model file; check the path.")
    try:
        import onnxruntime as ort
    except ImportError:
        raise InputError(
            f"{p}: evaluating an ONNX model needs onnxruntime; install it with pip install poisonguard[onnx]."
        ) from None
    try:
        sess = ort.InferenceSession(str(p), providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise InputError(f"{p}: onnxruntime cannot load the model ({type(exc).__name__}: {exc}).") from exc
    inputs = sess.get_inputs()
    outputs = sess.get_outputs()
    prob_out = next((o for o in outputs if "prob" in o.name.lower()), outputs[-1])

    def feed(frame: pd.DataFrame) -> dict[str, np.ndarray]:
        if len(inputs) == 1:
            try:
                X = frame.to_numpy(dtype=np.float32)
            except (TypeError, ValueError) as exc:
                raise InputError(
                    f"{p}: the model takes one numeric matrix, but the data has non-numeric columns "
                    f"({', '.join(c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c]))}); "
                    "export the model with one input per column, or encode the columns first."
                ) from exc
            want = inputs[0].shape[-1] if inputs[0].shape else None
            if isinstance(want, int) and want != X.shape[1]:
                raise InputError(
                    f"{p}: the model expects {want} feature columns and the data has {X.shape[1]} "
                    f"({', '.join(map(str, frame.columns[:12]))}); leave out the extra columns with --exclude."
                )
            return {inputs[0].name: X}
        out = {}
        for inp in inputs:
            if inp.name not in frame.columns:
                raise InputError(f"{p}: the model has an input '{inp.name}' and the data no such column.")
            col = frame[inp.name]
            if "string" in inp.type:
                out[inp.name] = col.astype(str).to_numpy(dtype=object).reshape(-1, 1)
            elif "int" in inp.type:
                out[inp.name] = col.to_numpy(dtype=np.int64).reshape(-1, 1)
            else:
                out[inp.name] = col.to_numpy(dtype=np.float32).reshape(-1, 1)
        return out

    pred = Predictor(name=str(p), classes=None, notes=[f"{p} runs with onnxruntime"])
    n_out = prob_out.shape[-1] if prob_out.shape and isinstance(prob_out.shape[-1], int) else -1
    pred.classes = _onnx_classes(p, n_out)

    def proba(frame: pd.DataFrame) -> np.ndarray:
        try:
            res = sess.run([prob_out.name], feed(frame))[0]
        except InputError:
            raise
        except Exception as exc:
            raise InputError(f"{p}: the ONNX model failed on the data ({type(exc).__name__}: {exc}).") from exc
        if isinstance(res, list):  # a ZipMap output: one {class: probability} dict per row
            keys = list(res[0].keys()) if res else []
            if pred.classes is None:
                pred.classes = np.asarray(keys, dtype=object)
            return np.asarray([[row[k] for k in keys] for row in res], dtype=np.float64)
        res = np.asarray(res, dtype=np.float64)
        if pred.classes is None:
            pred.classes = np.asarray(list(range(res.shape[1])), dtype=object)
            pred.notes.append(f"{p}: no class labels in the graph; probability columns taken as classes 0..k-1")
        return res

    pred.proba_fn = proba
    return pred


def from_predictions(
    table: pd.DataFrame | np.ndarray, *, classes: Sequence[Any] | None = None, name: str = "<predictions>"
) -> Predictor:
    """Fixed probabilities: a frame whose columns are the class labels, or an array in ``classes`` order."""
    if isinstance(table, pd.DataFrame):
        cols = [str(c) for c in table.columns]
        bad = [c for c in table.columns if not pd.api.types.is_numeric_dtype(table[c])]
        if bad:
            raise InputError(
                f"{name}: column {str(bad[0])!r} is not numeric; a predictions file holds one probability column "
                "per class, named by the class label, and nothing else."
            )
        values = table.to_numpy(dtype=np.float64)
        classes_arr = np.asarray(cols, dtype=object)
    else:
        values = np.asarray(table, dtype=np.float64)
        if values.ndim == 1:
            values = np.column_stack([1 - values, values])
        if values.ndim != 2:
            raise InputError(f"{name}: predictions must be a 2-D (rows x classes) array; got shape {values.shape}.")
        if classes is None:
            raise InputError(f"{name}: an array of predictions needs its class labels (classes=...).")
        classes_arr = np.asarray(list(classes), dtype=object)
        if len(classes_arr) != values.shape[1]:
            raise InputError(
                f"{name}: {values.shape[1]} probability columns but {len(classes_arr)} classes; give one column "
                "per class."
            )
    if values.shape[1] < 2:
        raise InputError(
            f"{name}: only {values.shape[1]} probability column; give one column per class (both classes for a "
            "binary label), named by the class label."
        )
    bad_rows = ~np.isfinite(values).all(axis=1) | (values < 0).any(axis=1) | (values > 1).any(axis=1)
    if bad_rows.any():
        first = int(np.flatnonzero(bad_rows)[0])
        raise InputError(
            f"{name}: row {first} holds a value that is not a probability (missing, negative or above 1); "
            f"{int(bad_rows.sum())} such rows."
        )
    sums = values.sum(axis=1)
    off = np.abs(sums - 1) > SUM_TOLERANCE
    if off.any():
        first = int(np.flatnonzero(off)[0])
        raise InputError(
            f"{name}: the probabilities of row {first} sum to {sums[first]:.4g}, not 1 ({int(off.sum())} such rows); "
            "give one probability column per class, every class included."
        )
    # rows already summing to 1 stay as given: dividing them again would break ties that ranking metrics count
    fixed = np.where(np.abs(sums - 1)[:, None] > 1e-9, values / sums[:, None], values)
    return Predictor(name=name, classes=classes_arr, fixed=fixed)


def load_model(path: str | Path) -> Predictor:
    """A model file by its suffix: .joblib/.pkl (unpickled: trusted files only), .onnx, or a predictions table."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix in PICKLE_SUFFIXES:
        return from_pickle(p)
    if suffix == ".onnx":
        return from_onnx(p)
    if suffix in TABLE_SUFFIXES:
        from .io import read_table

        return from_predictions(read_table(p), name=str(p))
    raise InputError(
        f"{p}: unknown model file type '{p.suffix or '(none)'}'; pass a .joblib/.pkl file of a scikit-learn style "
        "estimator, an .onnx file, or a predictions table (.csv/.parquet) with one probability column per class."
    )


def as_predictor(model: Any, *, name: str | None = None, classes: Sequence[Any] | None = None) -> Predictor:
    """Whatever ``evaluate`` was given, as a Predictor: a Predictor, a path, a predictions frame or array, or an
    estimator."""
    if isinstance(model, Predictor):
        return model
    if isinstance(model, str | Path):
        return load_model(model)
    if isinstance(model, pd.DataFrame | np.ndarray):
        return from_predictions(model, classes=classes, name=name or "<predictions>")
    return from_estimator(model, name=name)


__all__ = [
    "Predictor",
    "UnpicklingWarning",
    "as_predictor",
    "from_estimator",
    "from_onnx",
    "from_pickle",
    "from_predictions",
    "label_text",
    "load_model",
]
