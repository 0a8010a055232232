"""Offline monitoring without the service: files in, a drift and trigger report out (``poisonguard monitor``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError
from ..io import read_table
from .drift import Alert, DriftReport, DriftThresholds, compare
from .profile import Profile, is_profile_file
from .watch import TriggerWatch, WatchReport


def load_model(path: str | Path) -> Any:
    """A fitted model saved with joblib; it must have ``predict`` taking a frame of the feature columns."""
    import joblib

    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such model file; pass a model saved with joblib.dump.")
    try:
        model = joblib.load(p)
    except Exception as exc:  # joblib/pickle raise many types for a file that is not a model
        raise InputError(f"{p}: cannot be loaded as a joblib model ({type(exc).__name__}: {exc}).") from exc
    if not hasattr(model, "predict"):
        raise InputError(f"{p}: holds a {type(model).__name__}, which has no predict(); save the fitted model.")
    return model


def model_predict(model: Any, columns: list[str]) -> Any:
    """A function frame -> predictions that hands the model the columns it was trained on."""
    wanted = [str(c) for c in getattr(model, "feature_names_in_", columns)]

    def predict(frame: pd.DataFrame) -> np.ndarray:
        missing = [c for c in wanted if c not in frame.columns]
        if missing:
            raise InputError(f"the model needs column(s) {', '.join(map(repr, missing))}, which the data lacks.")
        return np.asarray(model.predict(frame[wanted]))

    return predict


def load_triggers(path: str | Path) -> list[dict[str, Any]]:
    """The ``triggers`` of a saved scan (summary.json), or a JSON list of triggers."""
    p = Path(path)
    try:
        d = json.loads(p.read_text())
    except FileNotFoundError:
        raise InputError(f"{p}: no such file; pass the summary.json of a scan (poisonguard scan --out DIR).") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{p}: cannot be read as JSON ({exc}).") from exc
    found = d.get("triggers") if isinstance(d, dict) else d
    if not isinstance(found, list):
        raise InputError(f'{p}: holds no "triggers" list; pass the summary.json of a scan.')
    for i, t in enumerate(found):
        if not isinstance(t, dict) or "conditions" not in t or "target" not in t:
            raise InputError(f"{p}: trigger {i} has no 'conditions' and 'target'; the file is not a scan summary.")
    return found


@dataclass
class MonitorResult:
    profile: Profile
    drift: DriftReport
    watch: WatchReport | None

    @property
    def alerts(self) -> list[Alert]:
        return [*self.drift.alerts, *(self.watch.alerts if self.watch else [])]

    def to_dict(self) -> dict[str, Any]:
        return {
            "drift": self.drift.to_dict(),
            "watch": None if self.watch is None else self.watch.to_dict(),
            "alerts": [a.to_dict() for a in self.alerts],
        }

    def to_json(self, path: str | Path) -> Path:
        p = Path(path)
        p.write_text(json.dumps(self.to_dict(), indent=2, default=_default))
        return p


def _default(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    return str(v)


def build_profile(
    data: str | Path | pd.DataFrame,
    *,
    label: str | None = None,
    prediction: str | None = None,
    model: Any = None,
    triggers: list[dict[str, Any]] | None = None,
    seed: int = 0,
) -> Profile:
    """A profile of a training data file; predictions come from the ``prediction`` column or from ``model``."""
    frame = data if isinstance(data, pd.DataFrame) else read_table(data)
    name = "<reference>" if isinstance(data, pd.DataFrame) else str(data)
    preds = None
    exclude: list[str] = []
    if prediction is not None:
        if prediction not in frame.columns:
            raise InputError(f"{name}: no prediction column '{prediction}'; pass the right --prediction.")
        preds = frame[prediction].to_numpy(dtype=object)
        exclude.append(prediction)
    if preds is None and model is not None:
        wanted = [str(c) for c in getattr(model, "feature_names_in_", [c for c in frame.columns if c != label])]
        preds = model_predict(model, wanted)(frame)
    profile = Profile.from_frame(
        frame, label=label, predictions=preds, triggers=triggers or [], exclude=exclude, seed=seed, name=name
    )
    return profile


def run_monitor(
    reference: str | Path,
    new: str | Path,
    *,
    label: str | None = None,
    prediction: str | None = None,
    model: str | Path | None = None,
    triggers: str | Path | None = None,
    thresholds: DriftThresholds | None = None,
    multivariate: bool = True,
    seed: int = 0,
) -> MonitorResult:
    """Compare ``new`` with ``reference`` (a training data file or a saved profile) and watch for triggers."""
    fitted = load_model(model) if model is not None else None
    trig = load_triggers(triggers) if triggers is not None else None
    if is_profile_file(reference):
        profile = Profile.load(reference)
        if trig is not None:
            profile.triggers = trig
    else:
        profile = build_profile(reference, label=label, prediction=prediction, model=fitted, triggers=trig, seed=seed)
    label = label or profile.label
    frame = read_table(new)
    where = str(new)
    labels = frame[label] if label is not None and label in frame.columns else None
    preds = None
    if prediction is not None:
        if prediction not in frame.columns:
            raise InputError(f"{where}: no prediction column '{prediction}'; pass the right --prediction.")
        preds = frame[prediction].to_numpy(dtype=object)
    predict = model_predict(fitted, list(profile.columns)) if fitted is not None else None
    if preds is None and predict is not None:
        preds = predict(frame)
    drift = compare(
        profile,
        frame,
        labels=labels,
        predictions=preds,
        thresholds=thresholds,
        multivariate=multivariate,
        seed=seed,
        where=where,
    )
    watch = None
    if profile.triggers or predict is not None:
        watch = TriggerWatch(profile, model=predict).check(frame, predictions=preds, where=where)
    return MonitorResult(profile=profile, drift=drift, watch=watch)


__all__ = ["MonitorResult", "build_profile", "load_model", "load_triggers", "model_predict", "run_monitor"]
