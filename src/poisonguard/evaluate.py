"""Model evaluation that looks where poisoning hides: intervals, calibration, weak slices, backdoor triggers and a
comparison with the last trusted model.

Targeted poisoning leaves the headline accuracy alone and hurts one segment, or plants a trigger the test set never
exercises. ``evaluate`` therefore reports, besides the usual metrics with bootstrap intervals, the segments where
the model is significantly worse than elsewhere, the segments where it is worse than a baseline (the last trusted
model, or the original of a quantized, pruned or distilled one), and how often it obeys known triggers.

Statistics. Intervals are percentile bootstrap intervals (95% by default) from ``n_boot`` resamples of the test
rows, drawn as an (n_boot, n) matrix of counts; the model and the baseline are scored on the *same* resamples, so
a difference has a paired interval. A metric regression is tested one-sided (is the new model worse?): accuracy
with the exact McNemar test, every other metric with a Wald test on the paired bootstrap's standard error; p-values are Holm-adjusted over the
metrics. Slice tests are corrected with Benjamini-Hochberg over every slice tried (see ``poisonguard.slices``);
backdoor tests with Holm over the triggers.

JSON (``EvaluationResult.to_dict()``; numbers are floats, ``ci`` is ``[low, high]``)::

    settings        rows, classes, seed, n_boot, alpha, confidence, min_support, model, baseline, slices_tested,
                    weak_slices_found and slice_regressions_found (before the lists are cut to ``top``)
    metrics         {name: {"value", "ci"}} for accuracy, precision/recall/f1 _macro and _weighted, auroc,
                    average_precision, log_loss, brier, ece
    per_class       [{"class", "support", "precision": {"value", "ci"}, "recall": ..., "f1": ...}]
    calibration     {"ece": {"value", "ci"}, "bins": [{"low", "high", "count", "confidence", "accuracy"}]}
    weak_slices     [{"slice", "conditions", "support", "accuracy": {"value", "ci"}, "rest_accuracy", "drop",
                      "p_value", "q_value", "significant"}]  the most clearly worse than the rest first
    user_slices     the slices the caller named, same fields, plus baseline comparison fields when there is one
    slice_regressions  [{"slice", "conditions", "support", "baseline", "new", "delta", "drop", "rest_drop", "ci",
                      "p_value", "q_value", "significant"}]  slices where the new model is significantly worse than
                    the baseline, ranked by how clearly they lost more than the rest of the rows (z of
                    drop - rest_drop)
    baseline_metrics   the baseline's "metrics" (null without a baseline)
    backdoor        [{"trigger", "conditions", "target", "rows", "new": {"value", "ci"}, "baseline": ... or null}]
    comparison      [regression records for every metric], null without a baseline
    regressions     rule-ready records that a CI gate policy reads directly (see below)
    notes           what was skipped or assumed, in words

A regression record::

    {"rule": "metric_drop" | "slice_drop" | "calibration" | "asr",
     "metric": "accuracy" | "recall[<class>]" | "ece" | "attack_success_rate" | ...,
     "slice": "education = 'Bachelors'" or null, "trigger": text or null (asr only),
     "baseline": x or null, "new": y, "delta": y - x or null, "drop": how much worse (positive = worse),
     "ci": [low, high] of delta, "p_value": adjusted one-sided p (new worse), "p_raw": unadjusted,
     "test": "mcnemar" | "paired_bootstrap" | "wilson", "significant": bool}

``regressions`` holds every metric and calibration record where the new model is worse at all (``drop > 0``),
every significant slice regression, and every trigger probed. A policy should require ``significant`` before it
acts on a slice record; ``max_asr`` reads ``new``. Without a baseline an asr record is significant when the lower
end of the ASR's interval exceeds ``asr_threshold`` (the model obeys the trigger on most rows).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.stats import binom, norm

from .context import Progress
from .errors import ConfigError, InputError
from .io import Dataset, load_dataset
from .models import Predictor, as_predictor, label_text
from .slices import Candidates, Slice, parse_slice, rank, slice_regressions, weak_slices
from .stats import benjamini_hochberg, binom_interval, holm
from .triggers import Trigger

METRICS: tuple[str, ...] = (
    "accuracy",
    "precision_macro",
    "recall_macro",
    "f1_macro",
    "precision_weighted",
    "recall_weighted",
    "f1_weighted",
    "auroc",
    "average_precision",
    "log_loss",
    "brier",
    "ece",
)
LOWER_IS_BETTER = frozenset({"log_loss", "brier", "ece"})
N_BINS = 10
CHUNK_CELLS = 4_000_000  # bootstrap weights are drawn in blocks of about this many cells (16 MB as float32)
EPS = 1e-15


# --- bootstrap ------------------------------------------------------------------------------------------------


def boot_weights(n: int, n_boot: int, seed: int) -> Iterator[np.ndarray]:
    """Bootstrap resamples of ``n`` rows as count matrices (blocks of rows of an (n_boot, n) matrix): row b holds
    how often each row was drawn. The same seed gives the same resamples, so every quantity is paired."""
    rng = np.random.default_rng(seed)
    step = max(1, CHUNK_CELLS // max(n, 1))
    for start in range(0, n_boot, step):
        b = min(step, n_boot - start)
        idx = rng.integers(0, n, size=(b, n)) + (np.arange(b) * n)[:, None]
        yield np.bincount(idx.ravel(), minlength=b * n).reshape(b, n).astype(np.float32)


def _wsum(W: np.ndarray, M: sparse.spmatrix | np.ndarray) -> np.ndarray:
    """``W @ M`` for dense W (b, n) and sparse or dense M (n, k), as float64 (b, k)."""
    if sparse.issparse(M):
        return np.asarray((M.T @ W.T).T, dtype=np.float64)
    return np.asarray(W @ M, dtype=np.float64)


def _onehot(codes: np.ndarray, k: int, values: np.ndarray | None = None) -> sparse.csr_matrix:
    n = len(codes)
    data = np.ones(n, dtype=np.float32) if values is None else np.asarray(values, dtype=np.float32)
    return sparse.csr_matrix((data, (np.arange(n), codes)), shape=(n, k))


class _Scorer:
    """Every metric of one model for any weighting of the test rows (a bootstrap resample or all ones)."""

    def __init__(self, y: np.ndarray, proba: np.ndarray, present: np.ndarray) -> None:
        n, k = proba.shape
        self.k = k
        self.present = present  # classes that count in macro averages (in the labels or the predictions)
        self.pred = proba.argmax(axis=1)
        self.correct = self.pred == y
        self.confusion = _onehot(y * k + self.pred, k * k)
        p_true = np.clip(proba[np.arange(n), y], EPS, 1.0)
        onehot_y = np.eye(k)[y]
        brier = ((proba - onehot_y) ** 2).sum(axis=1) * (0.5 if k == 2 else 1.0)
        conf = proba.max(axis=1)
        self.bin = np.minimum((conf * N_BINS).astype(int), N_BINS - 1)
        self.rowwise = np.column_stack([-np.log(p_true), brier]).astype(np.float32)
        self.ece_gap = _onehot(self.bin, N_BINS, self.correct - conf)
        # ranking metrics: one-vs-rest per class (the positive class only for two classes), tied scores grouped
        self.rank_parts: list[tuple[sparse.csr_matrix, sparse.csr_matrix]] = []
        for c in [1] if k == 2 else range(k):
            pos = y == c
            if not pos.any() or pos.all():
                continue
            s = proba[:, c]
            order = np.argsort(s, kind="mergesort")
            ss = s[order]
            group = np.empty(n, dtype=np.int64)
            group[order] = np.concatenate([[0], np.cumsum(ss[1:] != ss[:-1])])
            g = int(group.max()) + 1
            self.rank_parts.append(
                (_onehot(group, g, pos.astype(np.float32)), _onehot(group, g, (~pos).astype(np.float32)))
            )

    def score(self, W: np.ndarray) -> dict[str, np.ndarray]:
        k = self.k
        total = W.sum(axis=1).astype(np.float64)
        cm = _wsum(W, self.confusion).reshape(-1, k, k)
        tp = np.diagonal(cm, axis1=1, axis2=2)
        support, predicted = cm.sum(axis=2), cm.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            precision = np.where(predicted > 0, tp / predicted, 0.0)
            recall = np.where(support > 0, tp / support, 0.0)
            f1 = np.where(support + predicted > 0, 2 * tp / (support + predicted), 0.0)
        pres = self.present
        out = {
            "accuracy": tp.sum(axis=1) / total,
            "precision_macro": precision[:, pres].mean(axis=1),
            "recall_macro": recall[:, pres].mean(axis=1),
            "f1_macro": f1[:, pres].mean(axis=1),
            "precision_weighted": (precision * support).sum(axis=1) / total,
            "recall_weighted": (recall * support).sum(axis=1) / total,
            "f1_weighted": (f1 * support).sum(axis=1) / total,
        }
        aucs, aps = [], []
        for gp, gn in self.rank_parts:
            wp, wn = _wsum(W, gp), _wsum(W, gn)  # weight of positives / negatives per distinct score, ascending
            P, N = wp.sum(axis=1), wn.sum(axis=1)
            below = np.cumsum(wn, axis=1) - wn
            with np.errstate(invalid="ignore", divide="ignore"):
                aucs.append((wp * (below + 0.5 * wn)).sum(axis=1) / (P * N))
                tp_c = np.cumsum(wp[:, ::-1], axis=1)
                fp_c = np.cumsum(wn[:, ::-1], axis=1)
                prec = np.where(tp_c + fp_c > 0, tp_c / np.maximum(tp_c + fp_c, 1e-300), 0.0)
                aps.append((prec * wp[:, ::-1]).sum(axis=1) / P)
        nan = np.full(len(W), np.nan)
        out["auroc"] = np.nanmean(np.column_stack(aucs), axis=1) if aucs else nan
        out["average_precision"] = np.nanmean(np.column_stack(aps), axis=1) if aps else nan
        rw = _wsum(W, self.rowwise)
        out["log_loss"] = rw[:, 0] / total
        out["brier"] = rw[:, 1] / total
        out["ece"] = np.abs(_wsum(W, self.ece_gap)).sum(axis=1) / total
        for name, arr in (("precision", precision), ("recall", recall), ("f1", f1)):
            for c in range(k):
                out[f"{name}[{c}]"] = arr[:, c]
        return out


def _interval(boots: np.ndarray, level: float) -> list[float | None]:
    a = (1 - level) / 2
    if np.isnan(boots).all():
        return [None, None]
    lo, hi = np.nanquantile(boots, [a, 1 - a])
    return [float(lo), float(hi)]


def _clean(obj: Any) -> Any:
    """JSON-ready: numpy scalars to Python, NaN and infinities to None."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [_clean(v) for v in obj.tolist()]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


# --- result ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EvaluationResult:
    """What ``evaluate`` found; ``to_dict()`` is the JSON described in the module docstring."""

    metrics: dict[str, dict[str, Any]]
    per_class: list[dict[str, Any]]
    calibration: dict[str, Any]
    weak_slices: list[dict[str, Any]]
    slice_regressions: list[dict[str, Any]]
    backdoor: list[dict[str, Any]]
    comparison: list[dict[str, Any]] | None
    regressions: list[dict[str, Any]]
    user_slices: list[dict[str, Any]] = field(default_factory=list)
    baseline_metrics: dict[str, dict[str, Any]] | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def significant_regressions(self) -> list[dict[str, Any]]:
        return [r for r in self.regressions if r["significant"]]

    def to_dict(self) -> dict[str, Any]:
        return _clean(
            {
                "settings": self.settings,
                "metrics": self.metrics,
                "per_class": self.per_class,
                "calibration": self.calibration,
                "weak_slices": self.weak_slices,
                "user_slices": self.user_slices,
                "slice_regressions": self.slice_regressions,
                "baseline_metrics": self.baseline_metrics,
                "backdoor": self.backdoor,
                "comparison": self.comparison,
                "regressions": self.regressions,
                "notes": self.notes,
            }
        )

    def to_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")


# --- inputs ---------------------------------------------------------------------------------------------------


@dataclass
class _Model:
    """A predictor with its probabilities mapped onto the evaluation's classes."""

    predictor: Predictor
    columns: np.ndarray  # evaluation class index of each of the predictor's columns
    proba: np.ndarray  # (n, k) in evaluation class order

    def predict(self, frame: pd.DataFrame, k: int) -> np.ndarray:
        return _aligned(self.predictor.predict_proba(frame), self.columns, k, self.predictor.name).argmax(axis=1)


def _aligned(raw: np.ndarray, columns: np.ndarray, k: int, name: str) -> np.ndarray:
    if raw.ndim != 2 or raw.shape[1] != len(columns):
        raise InputError(f"{name}: the model gave {raw.shape} probabilities for {len(columns)} classes.")
    out = np.zeros((raw.shape[0], k))
    out[:, columns] = raw
    sums = out.sum(axis=1, keepdims=True)
    # rows that already sum to 1 stay as given (dividing would break ties that ranking metrics count)
    fixed = np.where(np.abs(sums - 1) > 1e-9, out / np.where(sums > 0, sums, 1), out)
    return np.where(sums > 0, fixed, 1.0 / k)


def load_triggers(source: Any) -> list[Trigger]:
    """Triggers from Trigger objects, dicts, a scan's summary.json (``{"triggers": [...]}``) or a JSON list of
    ``{"conditions": {...}, "target": ...}``."""
    if source is None:
        return []
    name = "triggers"
    if isinstance(source, str | Path):
        p = Path(source)
        name = str(p)
        if not p.is_file():
            raise InputError(f"{p}: no such trigger file; pass a scan's summary.json or a JSON list of triggers.")
        try:
            source = json.loads(p.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(f"{p}: not a JSON file ({exc}); pass a scan's summary.json or a JSON list.") from exc
    if isinstance(source, Mapping):
        if "triggers" not in source:
            raise InputError(
                f"{name}: no 'triggers' entry; pass a scan's summary.json or a JSON list of "
                '{"conditions": {"column": value}, "target": class}.'
            )
        source = source["triggers"]
    if isinstance(source, Trigger):
        source = [source]
    if not isinstance(source, Sequence) or isinstance(source, str):
        raise InputError(f"{name}: triggers must be a list; got {type(source).__name__}.")
    out = []
    for i, t in enumerate(source):
        if isinstance(t, Trigger):
            out.append(t)
            continue
        try:
            out.append(Trigger.from_dict(t))
        except ValueError as exc:
            raise InputError(f"{name}: trigger {i}: {exc}.") from exc
    return out


def _check_params(n_boot: int, alpha: float, confidence: float, seed: int) -> None:
    if not isinstance(n_boot, int) or n_boot < 50:
        raise ConfigError(f"n_boot (--n-boot) must be an integer of at least 50 (bootstrap resamples); got {n_boot!r}.")
    if not 0 < alpha < 0.5:
        raise ConfigError(f"alpha must be between 0 and 0.5; got {alpha!r}.")
    if not 0.5 < confidence < 1:
        raise ConfigError(f"confidence must be between 0.5 and 1; got {confidence!r}.")
    if not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer; got {seed!r}.")


# --- the evaluation -------------------------------------------------------------------------------------------


def evaluate(
    model_or_proba: Any,
    data: Any,
    *,
    label: Any,
    baseline: Any = None,
    triggers: Any = None,
    slices: Sequence[str | Slice] | None = None,
    seed: int = 0,
    n_boot: int = 1000,
    alpha: float = 0.05,
    confidence: float = 0.95,
    min_support: int | None = None,
    top: int = 20,
    asr_threshold: float = 0.5,
    classes: Sequence[Any] | None = None,
    exclude: Sequence[str] = (),
    types: Mapping[str, str] | None = None,
    progress: Progress | None = None,
    name: str | None = None,
) -> EvaluationResult:
    """Evaluate a model on a labelled test table; see the module docstring for what is measured and returned.

    ``model_or_proba`` and ``baseline``: a fitted scikit-learn style estimator (it gets the feature columns as a
    DataFrame: a pipeline must include its own preprocessing), a model file (.joblib/.pkl, .onnx), a predictions
    file or DataFrame (one probability column per class, named by the class), or an (n, k) array of probabilities
    in the order of ``classes`` (default: the test labels, sorted). ``triggers``: Trigger objects, dicts, or the
    path of a scan's summary.json or of a JSON list of ``{"conditions": ..., "target": ...}``. ``slices``: segments
    to report whatever the search finds, as ``"col=value and col2<3"``. ``min_support``: rows a discovered slice
    needs (default: 30, or 1% of the rows if more).
    """
    progress = progress or Progress()
    _check_params(n_boot, alpha, confidence, seed)
    ds = load_dataset(data, label=label, exclude=tuple(exclude), types=dict(types or {}), name=name)
    notes = list(ds.notes)
    drop = [ds.label, *[c for c, why in ds.ignored.items() if why == "excluded"]]
    features = ds.frame.drop(columns=drop)
    n = ds.n_rows
    # what the caller named is checked before any model runs
    named = [parse_slice(s, features) for s in slices or ()]
    trig = load_triggers(triggers)
    for t in trig:
        missing = [c for c in t.conditions if c not in features.columns]
        if missing:
            raise InputError(
                f"trigger {t.describe()!r}: column {missing[0]!r} is not a feature column of {ds.name}; pass "
                "triggers found on data with the same columns."
            )
    if min_support is not None and (not isinstance(min_support, int) or min_support < 1):
        raise ConfigError(f"min_support must be a positive number of rows; got {min_support!r}.")
    test_classes = [label_text(c) for c in ds.classes]
    default_classes = list(classes) if classes is not None else list(ds.classes)
    with progress.task("scoring the model"):
        new_p = as_predictor(model_or_proba, name="model", classes=default_classes)
        raw_new = _raw_proba(new_p, features, ds)
    raw_base = None
    base_p = None
    if baseline is not None:
        with progress.task("scoring the baseline"):
            base_p = as_predictor(baseline, name="baseline", classes=default_classes)
            raw_base = _raw_proba(base_p, features, ds)
    eval_classes = list(test_classes)
    for p in (new_p, base_p):
        if p is not None:
            eval_classes += [c for c in (label_text(v) for v in p.classes) if c not in eval_classes]
    k = len(eval_classes)
    new = _bind(new_p, raw_new, eval_classes, test_classes, ds, notes)
    base = _bind(base_p, raw_base, eval_classes, test_classes, ds, notes) if base_p is not None else None
    y = ds.y
    present = np.zeros(k, dtype=bool)
    present[np.unique(y)] = True
    for m in (new, base):
        if m is not None:
            present[np.unique(m.proba.argmax(axis=1))] = True
    scorers = [_Scorer(y, m.proba, present) for m in (new, base) if m is not None]

    # metrics: point values on all rows, intervals from paired resamples
    with progress.task("bootstrap intervals", total=n_boot) as advance:
        points = [s.score(np.ones((1, n), dtype=np.float32)) for s in scorers]
        boots: list[dict[str, list[np.ndarray]]] = [{key: [] for key in points[0]} for _ in scorers]
        for W in boot_weights(n, n_boot, seed):
            for s, acc in zip(scorers, boots, strict=True):
                for key, v in s.score(W).items():
                    acc[key].append(v)
            advance(len(W))
    boot_arrays = [{key: np.concatenate(v) for key, v in acc.items()} for acc in boots]

    def block(i: int, key: str) -> dict[str, Any]:
        return {"value": float(points[i][key][0]), "ci": _interval(boot_arrays[i][key], confidence)}

    metrics = {m: block(0, m) for m in METRICS}
    counts = np.bincount(y, minlength=k)
    per_class = [
        {
            "class": eval_classes[c],
            "support": int(counts[c]),
            **{m: block(0, f"{m}[{c}]") for m in ("precision", "recall", "f1")},
        }
        for c in range(k)
    ]
    calibration = {"ece": metrics["ece"], "bins": _reliability(scorers[0], new.proba)}
    baseline_metrics = {m: block(1, m) for m in METRICS} if base is not None else None
    comparison = None
    if base is not None:
        comparison = _compare_metrics(points, boot_arrays, scorers, eval_classes, present, confidence, alpha)

    # slices
    support = min_support or max(30, math.ceil(0.01 * n))
    with progress.task("searching slices"):
        cand = Candidates.build(features, ds.columns, min_support=support)
        correct = scorers[0].correct
        weak_all = weak_slices(cand, correct, alpha=alpha)
        weak = _weak_records(cand, rank(weak_all, top), correct, seed, n_boot, confidence)
        counts_found = {"weak_slices_found": int(weak_all["reported"].sum()), "slice_regressions_found": 0}
        regs: list[dict[str, Any]] = []
        if base is not None:
            reg_all = slice_regressions(cand, correct, scorers[1].correct, alpha=alpha)
            counts_found["slice_regressions_found"] = int(reg_all["reported"].sum())
            regs = _regression_records(cand, rank(reg_all, top), correct, scorers[1].correct, seed, n_boot, confidence)
        users = _user_slices(
            named,
            features,
            correct,
            scorers[1].correct if base is not None else None,
            seed=seed,
            n_boot=n_boot,
            confidence=confidence,
            alpha=alpha,
        )

    # backdoor probe
    backdoor: list[dict[str, Any]] = []
    if trig:
        if not new_p.can_predict:
            notes.append("the backdoor probe needs a model that can score new rows; fixed predictions cannot")
        else:
            probe_base = base
            if base_p is not None and not base_p.can_predict:
                probe_base = None
                notes.append("the baseline is fixed predictions: the backdoor probe runs on the model alone")
            with progress.task("probing triggers", total=len(trig)) as advance:
                backdoor = _probe(trig, features, y, eval_classes, new, probe_base, confidence, alpha, asr_threshold)
                advance(len(trig))

    regressions = [r for r in comparison or [] if r["drop"] is not None and r["drop"] > 0]
    regressions += [{"rule": "slice_drop", **_rule_view(r)} for r in regs]
    regressions += [
        {"rule": "slice_drop", **_rule_view(r)} for r in users if r.get("drop") is not None and r["drop"] > 0
    ]
    regressions += [b["record"] for b in backdoor]
    for b in backdoor:
        b.pop("record")
    notes += new_p.notes + (base_p.notes if base_p is not None else [])
    settings = {
        "data": ds.name,
        "rows": n,
        "label": ds.label,
        "classes": eval_classes,
        "model": new_p.name,
        "baseline": base_p.name if base_p is not None else None,
        "seed": seed,
        "n_boot": n_boot,
        "alpha": alpha,
        "confidence": confidence,
        "min_support": support,
        "slices_tested": len(cand),
        **counts_found,
        "top": top,
        "conditions": len(cand.conditions),
        "triggers": len(trig),
    }
    return EvaluationResult(
        metrics=metrics,
        per_class=per_class,
        calibration=calibration,
        weak_slices=weak,
        slice_regressions=regs,
        backdoor=backdoor,
        comparison=comparison,
        regressions=regressions,
        user_slices=users,
        baseline_metrics=baseline_metrics,
        settings=settings,
        notes=notes,
    )


def _raw_proba(p: Predictor, features: pd.DataFrame, ds: Dataset) -> np.ndarray:
    raw = p.predict_proba(features)
    if raw.ndim != 2 or raw.shape[0] != ds.n_rows:
        raise InputError(
            f"{p.name}: {raw.shape[0] if raw.ndim else 0} rows of predictions for the {ds.n_rows} rows of {ds.name}; "
            "give one row of probabilities per test row, in the same order."
        )
    return raw


def _bind(
    p: Predictor, raw: np.ndarray, eval_classes: list[str], test_classes: list[str], ds: Dataset, notes: list[str]
) -> _Model:
    model_classes = [label_text(c) for c in p.classes]
    if len(model_classes) != raw.shape[1]:
        raise InputError(f"{p.name}: {raw.shape[1]} probability columns for {len(model_classes)} classes.")
    if not set(model_classes) & set(test_classes):
        raise InputError(
            f"{p.name}: the model's classes ({', '.join(model_classes[:10])}) and the classes of label column "
            f"'{ds.label}' in {ds.name} ({', '.join(test_classes[:10])}) have nothing in common; check --label and "
            "that the predictions' columns are named by the class labels."
        )
    unknown = [c for c in test_classes if c not in model_classes]
    if unknown:
        if p.fixed is not None:
            raise InputError(
                f"{p.name}: no probability column for class {', '.join(repr(c) for c in unknown[:5])} of label "
                f"column '{ds.label}'; columns are {', '.join(repr(c) for c in model_classes[:10])}. Name one "
                "column per class by its label."
            )
        notes.append(f"{p.name} never predicts class {', '.join(unknown[:5])} (not among its classes)")
    cols = np.asarray([eval_classes.index(c) for c in model_classes])
    return _Model(predictor=p, columns=cols, proba=_aligned(raw, cols, len(eval_classes), p.name))


def _reliability(scorer: _Scorer, proba: np.ndarray) -> list[dict[str, Any]]:
    conf = proba.max(axis=1)
    out = []
    for b in range(N_BINS):
        m = scorer.bin == b
        out.append(
            {
                "low": b / N_BINS,
                "high": (b + 1) / N_BINS,
                "count": int(m.sum()),
                "confidence": float(conf[m].mean()) if m.any() else None,
                "accuracy": float(scorer.correct[m].mean()) if m.any() else None,
            }
        )
    return out


def _mcnemar_p(worse: float, better: float) -> float:
    """One-sided exact McNemar: chance of at least ``worse`` of the discordant rows going against the new model."""
    d = worse + better
    return float(binom.sf(worse - 1, d, 0.5)) if d > 0 else 1.0


def _bootstrap_p(drop: float, drop_boots: np.ndarray) -> float:
    """One-sided p-value that the drop is above zero, from the paired bootstrap's standard error (a Wald test on
    the bootstrap distribution; smooth where counting resamples would stop at 1 / n_boot)."""
    ok = drop_boots[~np.isnan(drop_boots)]
    if ok.size < 2 or not np.isfinite(drop):
        return 1.0
    se = float(ok.std(ddof=1))
    if se <= 0:
        return 1.0 if drop <= 0 else 0.0
    return float(norm.sf(drop / se))


def _compare_metrics(
    points: list[dict[str, np.ndarray]],
    boots: list[dict[str, np.ndarray]],
    scorers: list[_Scorer],
    classes: list[str],
    present: np.ndarray,
    confidence: float,
    alpha: float,
) -> list[dict[str, Any]]:
    """One record per metric (and per-class recall and precision): paired differences, Holm-adjusted."""
    keys = list(METRICS) + [f"{m}[{c}]" for m in ("recall", "precision") for c in np.flatnonzero(present)]
    records = []
    new_c, base_c = scorers[0].correct, scorers[1].correct
    for key in keys:
        new_v, base_v = float(points[0][key][0]), float(points[1][key][0])
        sign = -1.0 if key in LOWER_IS_BETTER else 1.0
        delta_b = boots[0][key] - boots[1][key]
        if key == "accuracy":
            p, test = _mcnemar_p(float((~new_c & base_c).sum()), float((new_c & ~base_c).sum())), "mcnemar"
        else:
            p = _bootstrap_p(-sign * (new_v - base_v), -sign * delta_b)
            test = "paired_bootstrap"
        metric = key
        if "[" in key:
            m, c = key[:-1].split("[")
            metric = f"{m}[{classes[int(c)]}]"
        delta = new_v - base_v
        records.append(
            {
                "rule": "calibration" if key == "ece" else "metric_drop",
                "metric": metric,
                "slice": None,
                "baseline": base_v,
                "new": new_v,
                "delta": delta,
                "drop": -sign * delta,
                "ci": _interval(delta_b, confidence),
                "p_raw": p,
                "test": test,
            }
        )
    adj = holm(np.asarray([r["p_raw"] for r in records]))
    for r, a in zip(records, adj, strict=True):
        r["p_value"] = float(a)
        r["significant"] = bool(a <= alpha and r["drop"] > 0)
    return records


def _slice_boot(
    masks: np.ndarray, values: np.ndarray, seed: int, n_boot: int, confidence: float
) -> list[list[float | None]]:
    """Bootstrap interval of the mean of ``values`` inside each slice (columns of ``masks``), same resamples."""
    if masks.shape[1] == 0:
        return []
    M = masks.astype(np.float32)
    MV = M * values[:, None].astype(np.float32)
    num, den = [], []
    for W in boot_weights(len(values), n_boot, seed):
        num.append(W @ MV)
        den.append(W @ M)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.vstack(num) / np.vstack(den)
    return [_interval(ratio[:, j], confidence) for j in range(ratio.shape[1])]


def _masks(cand: Candidates, ks: np.ndarray) -> np.ndarray:
    if len(ks) == 0:
        return np.zeros((cand.C.shape[0], 0), dtype=bool)
    jj = np.where(cand.j[ks] < 0, cand.i[ks], cand.j[ks])
    return (cand.C[:, cand.i[ks]] * cand.C[:, jj]) > 0


def _weak_records(
    cand: Candidates, table: pd.DataFrame, correct: np.ndarray, seed: int, n_boot: int, confidence: float
) -> list[dict[str, Any]]:
    ks = table["k"].to_numpy()
    cis = _slice_boot(_masks(cand, ks), correct.astype(np.float64), seed, n_boot, confidence)
    out = []
    for (_, row), ci in zip(table.iterrows(), cis, strict=True):
        out.append(
            {
                **cand.slice(int(row["k"])).to_dict(),
                "support": int(row["support"]),
                "accuracy": {"value": 1 - float(row["error"]), "ci": ci},
                "rest_accuracy": 1 - float(row["rest_error"]),
                "drop": float(row["effect"]),
                "p_value": float(row["p_value"]),
                "q_value": float(row["q_value"]),
                "significant": bool(row["significant"]),
            }
        )
    return out


def _regression_records(
    cand: Candidates,
    table: pd.DataFrame,
    correct_new: np.ndarray,
    correct_base: np.ndarray,
    seed: int,
    n_boot: int,
    confidence: float,
) -> list[dict[str, Any]]:
    ks = table["k"].to_numpy()
    d = correct_new.astype(np.float64) - correct_base.astype(np.float64)
    cis = _slice_boot(_masks(cand, ks), d, seed, n_boot, confidence)
    out = []
    for (_, row), ci in zip(table.iterrows(), cis, strict=True):
        out.append(
            {
                **cand.slice(int(row["k"])).to_dict(),
                "metric": "accuracy",
                "support": int(row["support"]),
                "baseline": float(row["baseline"]),
                "new": float(row["new"]),
                "delta": -float(row["drop"]),
                "drop": float(row["drop"]),
                "rest_drop": float(row["rest_drop"]),
                "ci": ci,
                "p_raw": float(row["p_value"]),
                "p_value": float(row["q_value"]),
                "q_value": float(row["q_value"]),
                "test": "mcnemar",
                "significant": bool(row["significant"]),
            }
        )
    return out


def _rule_view(r: dict[str, Any]) -> dict[str, Any]:
    keys = ("metric", "slice", "baseline", "new", "delta", "drop", "ci", "p_value", "p_raw", "test", "significant")
    return {key: r.get(key) for key in keys} | {"support": r["support"], "source": r.get("source", "discovered")}


def _user_slices(
    specs: list[Slice],
    frame: pd.DataFrame,
    correct: np.ndarray,
    correct_base: np.ndarray | None,
    *,
    seed: int,
    n_boot: int,
    confidence: float,
    alpha: float,
) -> list[dict[str, Any]]:
    """Slices the caller named: always reported, tested against the rest and (with a baseline) the baseline."""
    if not specs:
        return []
    masks = np.column_stack([s.mask(frame) for s in specs])
    n = len(correct)
    err = 1.0 - correct.astype(np.float64)
    acc_ci = _slice_boot(masks, correct.astype(np.float64), seed, n_boot, confidence)
    records = []
    p_rest, p_base = [], []
    for j, s in enumerate(specs):
        m = masks[:, j]
        k = int(m.sum())
        rec: dict[str, Any] = {**s.to_dict(), "source": "user", "support": k}
        if k == 0:
            rec.update({"accuracy": {"value": None, "ci": [None, None]}, "note": "no row of the data is in it"})
            p_rest.append(1.0)
            p_base.append(1.0)
            records.append(rec)
            continue
        e1, e0 = err[m].mean(), err[~m].mean() if k < n else 0.0
        pooled = err.mean()
        se = math.sqrt(max(pooled * (1 - pooled), 1e-12) * (1 / k + 1 / max(n - k, 1)))
        p_rest.append(float(norm.sf((e1 - e0) / se)) if k < n else 1.0)
        rec.update({"accuracy": {"value": 1 - e1, "ci": acc_ci[j]}, "rest_accuracy": 1 - e0, "drop": None})
        rec["drop_vs_rest"] = e1 - e0
        if correct_base is not None:
            worse = float((~correct[m] & correct_base[m]).sum())
            better = float((correct[m] & ~correct_base[m]).sum())
            base_acc = float(correct_base[m].mean())
            rec.update(
                {
                    "metric": "accuracy",
                    "baseline": base_acc,
                    "new": 1 - e1,
                    "delta": (1 - e1) - base_acc,
                    "drop": base_acc - (1 - e1),
                    "p_raw": _mcnemar_p(worse, better),
                    "test": "mcnemar",
                }
            )
            p_base.append(rec["p_raw"])
        records.append(rec)
    q_rest = benjamini_hochberg(np.asarray(p_rest))
    for rec, p, q in zip(records, p_rest, q_rest, strict=True):
        rec["p_value_vs_rest"], rec["q_value_vs_rest"] = p, float(q)
        rec["weak"] = bool(q <= alpha and rec.get("drop_vs_rest", 0) > 0)
    if correct_base is not None:
        d = correct.astype(np.float64) - correct_base.astype(np.float64)
        d_ci = _slice_boot(masks, d, seed, n_boot, confidence)
        q_base = benjamini_hochberg(np.asarray(p_base))
        for rec, q, ci in zip(records, q_base, d_ci, strict=True):
            rec["p_value"], rec["ci"] = float(q), ci
            rec["significant"] = bool(q <= alpha and (rec.get("drop") or 0) > 0)
    return records


def _probe(
    triggers: list[Trigger],
    features: pd.DataFrame,
    y: np.ndarray,
    classes: list[str],
    new: _Model,
    base: _Model | None,
    confidence: float,
    alpha: float,
    asr_threshold: float,
) -> list[dict[str, Any]]:
    """Attack success rate of each trigger: rows of other classes, not already predicted as the target, that the
    trigger turns into the target. With a baseline, a paired McNemar test on the rows both count."""
    k = len(classes)
    z = norm.ppf(0.5 + confidence / 2)
    out = []
    raw_p = []
    for t in triggers:
        target = label_text(t.target)
        if target not in classes:
            raise InputError(
                f"trigger {t.describe()!r}: target class {target!r} is not a class of the test labels or the model "
                f"({', '.join(classes[:10])})."
            )
        ti = classes.index(target)
        others = np.flatnonzero(y != ti)
        stamped = t.apply(features.iloc[others])
        res: dict[str, Any] = {"trigger": t.describe(), "conditions": t.to_dict()["conditions"], "target": target}
        obey = {}
        for label, m in (("new", new), ("baseline", base)):
            if m is None:
                res[label] = None
                continue
            before = m.proba[others].argmax(axis=1)
            after = m.predict(stamped, k)
            keep = before != ti
            obey[label] = (after == ti, keep)
            kk = int(keep.sum())
            hits = int((after[keep] == ti).sum())
            value = hits / kk if kk else float("nan")
            res[label] = {"value": value, "ci": list(binom_interval(hits, kk, z)), "rows": kk}
        res["rows"] = res["new"]["rows"]
        new_v = res["new"]["value"]
        rec: dict[str, Any] = {
            "rule": "asr",
            "metric": "attack_success_rate",
            "slice": None,
            "trigger": t.describe(),
            "target": target,
            "baseline": None,
            "new": new_v,
            "delta": None,
            "drop": None,
            "ci": res["new"]["ci"],
            "test": "wilson",
        }
        if base is not None:
            (a_new, k_new), (a_base, k_base) = obey["new"], obey["baseline"]
            both = k_new & k_base
            d = a_new[both].astype(float) - a_base[both].astype(float)
            base_v = res["baseline"]["value"]
            half = z * d.std(ddof=1) / math.sqrt(len(d)) if len(d) > 1 else float("nan")
            rec.update(
                {
                    "baseline": base_v,
                    "delta": new_v - base_v,
                    "drop": new_v - base_v,
                    "ci": [float(d.mean() - half), float(d.mean() + half)] if len(d) > 1 else [None, None],
                    "p_raw": _mcnemar_p(float((d > 0).sum()), float((d < 0).sum())),
                    "test": "mcnemar",
                }
            )
            raw_p.append(rec["p_raw"])
        res["record"] = rec
        out.append(res)
    if base is not None:
        for res, a in zip(out, holm(np.asarray(raw_p)), strict=True):
            rec = res["record"]
            rec["p_value"] = float(a)
            rec["significant"] = bool(a <= alpha and (rec["drop"] or 0) > 0)
    else:
        for res in out:
            rec = res["record"]
            rec["p_value"], rec["p_raw"] = None, None
            low = res["new"]["ci"][0]
            rec["significant"] = bool(low is not None and low > asr_threshold)
    return out


__all__ = ["METRICS", "EvaluationResult", "boot_weights", "evaluate", "load_triggers"]
