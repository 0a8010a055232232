"""Drift between a reference profile and new data: per feature, multivariate, label and prediction.

Every alert needs two things: a p-value below ``alpha`` after Benjamini-Hochberg correction across the tests of
one report, and an effect size above a threshold (PSI or normalised Wasserstein for numeric columns,
Jensen-Shannon distance for categorical ones, AUC for the domain classifier). A p-value alone fails on large
batches: with a million rows a shift of a hundredth of a standard deviation is "significant" and irrelevant.
An effect size alone fails on small batches, where sampling noise alone gives a PSI of 0.1.

Statistics (vectorised, numpy):

* PSI on the reference's quantile bins (plus a bin for missing values), shares floored at 1e-4;
* two-sample KS (scipy) and Wasserstein distance (in reference standard deviations) against the reference sample;
* chi-square on the 2 x k table of reference and new counts; Jensen-Shannon distance (base 2, in [0, 1]);
* a domain classifier (gradient boosting) that tells reference rows from new rows: its cross-fitted AUC, with
  a Mann-Whitney p-value on the out-of-fold scores (a row's score comes from a model that never saw it, so under
  no drift the scores of both groups share one distribution).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import special, stats

from ..errors import InputError
from .profile import ColumnProfile, Profile, _categories

FLOOR = 1e-4


@dataclass(frozen=True)
class DriftThresholds:
    """When a difference is an alert: BH-corrected p below ``alpha`` AND an effect at or above its threshold."""

    alpha: float = 0.01
    psi: float = 0.1  # warning; ``psi_critical`` and above is critical
    psi_critical: float = 0.25
    wasserstein: float = 0.25  # in reference standard deviations
    js: float = 0.1  # Jensen-Shannon distance, base 2
    js_critical: float = 0.2
    auc: float = 0.6
    auc_critical: float = 0.7
    accuracy_drop: float = 0.05  # absolute drop against the reference accuracy once labels arrive

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1:
            raise InputError(f"alpha must be in (0, 1); got {self.alpha}.")
        for name in ("psi", "psi_critical", "wasserstein", "js", "js_critical", "accuracy_drop"):
            if getattr(self, name) < 0:
                raise InputError(f"threshold {name} must be >= 0; got {getattr(self, name)}.")
        if not 0.5 <= self.auc <= 1:
            raise InputError(f"auc threshold must be in [0.5, 1]; got {self.auc}.")


@dataclass
class Alert:
    """Something worth a human's attention: what (kind, subject), how bad, and why in one sentence."""

    # feature_drift, multivariate_drift, label_drift, new_label, prediction_drift, performance, trigger, counterfactual
    kind: str
    subject: str
    severity: str  # "warning" or "critical"
    message: str
    value: float | None = None
    pvalue: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- statistics ----------------------------------------------------------------------------------------------


def shares(counts: np.ndarray) -> np.ndarray:
    """Bin shares along the last axis, floored at ``FLOOR`` (so empty bins do not make PSI infinite)."""
    c = np.asarray(counts, dtype=float)
    total = c.sum(axis=-1, keepdims=True)
    return np.maximum(c / np.maximum(total, 1.0), FLOOR)


def psi(ref_counts: np.ndarray, cur_counts: np.ndarray) -> np.ndarray | float:
    """Population stability index of counts over the same bins (last axis); vectorised over leading axes."""
    p, q = shares(ref_counts), shares(cur_counts)
    out = np.sum((q - p) * np.log(q / p), axis=-1)
    return float(out) if np.ndim(out) == 0 else out


def js_distance(ref_counts: np.ndarray, cur_counts: np.ndarray) -> np.ndarray | float:
    """Jensen-Shannon distance (base 2, in [0, 1]) of two count vectors over the same bins (last axis)."""
    p = np.asarray(ref_counts, dtype=float)
    q = np.asarray(cur_counts, dtype=float)
    p = p / np.maximum(p.sum(axis=-1, keepdims=True), 1e-300)
    q = q / np.maximum(q.sum(axis=-1, keepdims=True), 1e-300)
    m = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_p = np.where(p > 0, p * np.log2(p / m), 0.0).sum(axis=-1)
        kl_q = np.where(q > 0, q * np.log2(q / m), 0.0).sum(axis=-1)
    out = np.sqrt(np.clip((kl_p + kl_q) / 2, 0.0, 1.0))
    return float(out) if np.ndim(out) == 0 else out


def chi2_two_sample(ref_counts: np.ndarray, cur_counts: np.ndarray) -> tuple[float, float]:
    """Chi-square test of homogeneity on the 2 x k table (bins empty in both are dropped); (statistic, p)."""
    table = np.vstack([np.asarray(ref_counts, dtype=float), np.asarray(cur_counts, dtype=float)])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return 0.0, 1.0
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    stat = float(((table - expected) ** 2 / expected).sum())
    return stat, float(special.chdtrc(table.shape[1] - 1, stat))  # the chi-square survival function, without overhead


def ks_test(ref: np.ndarray, cur: np.ndarray) -> tuple[float, float]:
    """Two-sample KS statistic and p-value (NaN dropped; scipy's asymptotic two-sided formula); (0, 1) when a
    side is empty."""
    ref, cur = np.sort(ref[~np.isnan(ref)]), np.sort(cur[~np.isnan(cur)])
    return _ks_sorted(ref, cur)


def _ks_sorted(ref: np.ndarray, cur: np.ndarray) -> tuple[float, float]:
    n1, n2 = len(ref), len(cur)
    if n1 == 0 or n2 == 0:
        return 0.0, 1.0
    both = np.concatenate([ref, cur])
    d = float(
        np.max(np.abs(np.searchsorted(ref, both, side="right") / n1 - np.searchsorted(cur, both, side="right") / n2))
    )
    m, n = max(n1, n2), min(n1, n2)
    return d, float(np.clip(stats.kstwo.sf(d, np.round(m * n / (m + n))), 0.0, 1.0))


def wasserstein(ref: np.ndarray, cur: np.ndarray, scale: float | None) -> float:
    """Wasserstein-1 distance in units of ``scale`` (the reference's standard deviation); NaN dropped."""
    return _wasserstein_sorted(np.sort(ref[~np.isnan(ref)]), np.sort(cur[~np.isnan(cur)]), scale)


def _wasserstein_sorted(ref: np.ndarray, cur: np.ndarray, scale: float | None) -> float:
    """The area between the two empirical CDFs (inputs sorted, no NaN)."""
    if len(ref) == 0 or len(cur) == 0:
        return 0.0
    both = np.sort(np.concatenate([ref, cur]))
    deltas = np.diff(both)
    gap = np.abs(
        np.searchsorted(ref, both[:-1], side="right") / len(ref)
        - np.searchsorted(cur, both[:-1], side="right") / len(cur)
    )
    return float(np.sum(gap * deltas) / (scale if scale else 1.0))


def benjamini_hochberg(pvalues: Sequence[float]) -> np.ndarray:
    """BH-adjusted p-values (monotone, capped at 1)."""
    p = np.asarray(pvalues, dtype=float)
    n = len(p)
    if n == 0:
        return p
    order = np.argsort(p)
    ranked = p[order] * n / np.arange(1, n + 1)
    adj = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(n)
    out[order] = np.minimum(adj, 1.0)
    return out


def domain_classifier(
    ref: pd.DataFrame, cur: pd.DataFrame, profile: Profile, *, seed: int = 0, max_rows: int = 5000
) -> dict[str, Any]:
    """Cross-fitted AUC of a classifier telling reference rows from new rows, and its Mann-Whitney p-value.

    Both sides are subsampled (seeded) to at most ``max_rows`` rows; categories are coded with the reference's
    category list (unseen ones share a code), so a new category counts as a difference.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(seed)
    if len(ref) > max_rows:
        ref = ref.iloc[np.sort(rng.choice(len(ref), max_rows, replace=False))]
    if len(cur) > max_rows:
        cur = cur.iloc[np.sort(rng.choice(len(cur), max_rows, replace=False))]
    if min(len(ref), len(cur)) < 20:
        return {"auc": None, "pvalue": 1.0, "rows": [len(ref), len(cur)], "note": "too few rows (< 20 per side)"}
    cols = list(profile.columns)
    both = pd.concat([ref[cols], cur[cols]], ignore_index=True)
    X = np.empty((len(both), len(cols)))
    cat_mask = np.zeros(len(cols), dtype=bool)
    for j, c in enumerate(cols):
        col = profile.columns[c]
        if col.kind == "numeric":
            X[:, j] = both[c].to_numpy(dtype=float, na_value=np.nan)
        else:
            codes = col.codes(both[c]).astype(float)
            codes[codes == len(col.categories) + 1] = np.nan
            X[:, j] = codes
            cat_mask[j] = True
    y = np.r_[np.zeros(len(ref)), np.ones(len(cur))]
    scores = np.zeros(len(y))
    folds = StratifiedKFold(3, shuffle=True, random_state=seed)
    # at most 2 x max_rows rows: OpenMP's fork/join costs more than it saves there, and it degrades badly (13 s
    # instead of 0.6 s on 10,000 rows) when other processes share the CPU
    with threadpool_limits(limits=1, user_api="openmp"):
        for tr, te in folds.split(X, y):
            model = HistGradientBoostingClassifier(
                max_iter=50,
                max_leaf_nodes=15,
                learning_rate=0.1,
                early_stopping=False,
                categorical_features=cat_mask if cat_mask.any() else None,
                random_state=seed,
            )
            model.fit(X[tr], y[tr])
            scores[te] = model.predict_proba(X[te])[:, 1]
    auc = float(roc_auc_score(y, scores))
    p = float(stats.mannwhitneyu(scores[y == 1], scores[y == 0], alternative="greater").pvalue)
    return {"auc": auc, "pvalue": p, "rows": [len(ref), len(cur)]}


# --- the report ----------------------------------------------------------------------------------------------


@dataclass
class DriftReport:
    """Drift of one batch against a reference: ``features`` (one dict per column), ``multivariate``, ``label``,
    ``prediction``, ``performance`` and the ``alerts`` they raise."""

    n_reference: int
    n_current: int
    features: list[dict[str, Any]]
    multivariate: dict[str, Any] | None = None
    label: dict[str, Any] | None = None
    prediction: dict[str, Any] | None = None
    performance: dict[str, Any] | None = None
    alerts: list[Alert] = field(default_factory=list)
    thresholds: DriftThresholds = field(default_factory=DriftThresholds)

    @property
    def drifted(self) -> list[str]:
        return [f["column"] for f in self.features if f["drifted"]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_reference": self.n_reference,
            "n_current": self.n_current,
            "features": self.features,
            "multivariate": self.multivariate,
            "label": self.label,
            "prediction": self.prediction,
            "performance": self.performance,
            "alerts": [a.to_dict() for a in self.alerts],
            "thresholds": asdict(self.thresholds),
        }

    def to_json(self, path: str | Path) -> Path:
        p = Path(path)
        p.write_text(json.dumps(self.to_dict(), indent=2, default=_json_default))
        return p


def _json_default(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    raise TypeError(f"not JSON serialisable: {type(v).__name__}")


def _column_drift(col: ColumnProfile, values: pd.Series, ref_sorted: np.ndarray | None) -> dict[str, Any]:
    cur_counts = col.bin_counts(values)
    ref_counts = np.asarray(col.counts)
    out: dict[str, Any] = {
        "column": col.name,
        "kind": col.kind,
        "psi": round(float(psi(ref_counts, cur_counts)), 6),
        "missing_reference": round(ref_counts[-1] / max(ref_counts.sum(), 1), 6),
        "missing_current": round(cur_counts[-1] / max(cur_counts.sum(), 1), 6),
    }
    if col.kind == "numeric":
        ref = ref_sorted if ref_sorted is not None else np.zeros(0)
        cur = values.to_numpy(dtype=float, na_value=np.nan)
        cur = np.sort(cur[~np.isnan(cur)])
        d, p = _ks_sorted(ref, cur)
        # a change in the missing share is drift too; KS sees only the values present
        chi, p_chi = chi2_two_sample(ref_counts, cur_counts)
        out.update(
            test="ks",
            statistic=round(d, 6),
            pvalue=min(p, p_chi) * 2 if min(p, p_chi) < 0.5 else 1.0,
            wasserstein=round(_wasserstein_sorted(ref, cur, col.std), 6),
            mean_reference=None if len(ref) == 0 else float(np.nanmean(ref)),
            mean_current=float(np.nanmean(cur)) if np.isfinite(cur).any() else None,
        )
    else:
        chi, p = chi2_two_sample(ref_counts, cur_counts)
        labels = [*col.categories, "<other>", "<missing>"]
        cur_share = cur_counts / max(cur_counts.sum(), 1)
        ref_share = ref_counts / max(ref_counts.sum(), 1)
        moved = np.argsort(-np.abs(cur_share - ref_share))[:3]
        out.update(
            test="chi2",
            statistic=round(chi, 4),
            pvalue=p,
            js=round(float(js_distance(ref_counts, cur_counts)), 6),
            moved={labels[i]: [round(float(ref_share[i]), 4), round(float(cur_share[i]), 4)] for i in moved},
        )
    return out


def _effect(f: dict[str, Any], th: DriftThresholds) -> tuple[bool, bool]:
    """(passes the effect gate, is critical) for one feature's statistics."""
    if f["kind"] == "numeric":
        return (f["psi"] >= th.psi or f["wasserstein"] >= th.wasserstein), f["psi"] >= th.psi_critical
    return f["js"] >= th.js, f["js"] >= th.js_critical


def new_labels(col: ColumnProfile, labels: pd.Series) -> Alert | None:
    """Labels the reference never had (when it listed all of its own): a model trained on it cannot predict
    them, so they mean a relabelled schema, a bug upstream or injected rows, however few (drift tests weigh
    them by their share and let a handful pass)."""
    if col.kind != "categorical" or col.counts[len(col.categories)] > 0:
        return None  # the reference itself had values beyond its listed categories
    known = set(col.categories)
    vals = labels.dropna()
    unseen = vals[~vals.isin(known)]
    if unseen.empty:
        return None
    top = unseen.value_counts()
    shown = ", ".join(repr(str(v)) for v in top.index[:3]) + (", ..." if len(top) > 3 else "")
    return Alert(
        kind="new_label",
        subject=col.name,
        severity="warning",
        message=(
            f"label '{col.name}': {len(unseen):,} of {len(vals):,} rows carry {len(top)} value(s) the reference "
            f"never had ({shown}); a model trained on it cannot predict them."
        ),
        value=float(len(unseen)),
    )


def compare(
    profile: Profile,
    frame: pd.DataFrame,
    *,
    labels: Sequence[Any] | pd.Series | None = None,
    predictions: Sequence[Any] | pd.Series | None = None,
    thresholds: DriftThresholds | None = None,
    multivariate: bool = True,
    seed: int = 0,
    where: str = "<new data>",
) -> DriftReport:
    """Drift of ``frame`` (new inference rows) against ``profile``.

    ``labels`` (delayed ground truth) give label drift and, with ``predictions``, the accuracy against the
    reference's; ``predictions`` alone give prediction drift. ``multivariate`` runs the domain classifier.
    """
    th = thresholds or DriftThresholds()
    if len(frame) == 0:
        raise InputError(f"{where}: no rows to compare.")
    cur = profile.coerce(frame, where)
    features = [
        _column_drift(col, cur[c], profile.sorted_sample(c) if col.kind == "numeric" else None)
        for c, col in profile.columns.items()
    ]
    tests: list[tuple[str, dict[str, Any]]] = [("feature", f) for f in features]
    label_out = pred_out = perf = None
    lab = pred = unseen = None
    if labels is not None and profile.label_profile is not None:
        lab = _categories(pd.Series(np.asarray(labels, dtype=object)))
        label_out = _column_drift(profile.label_profile, lab, None)
        tests.append(("label", label_out))
        unseen = new_labels(profile.label_profile, lab)
    if predictions is not None and profile.prediction_profile is not None:
        pred = _categories(pd.Series(np.asarray(predictions, dtype=object)))
        if len(pred) != len(frame):
            raise InputError(f"{where}: {len(pred)} predictions for {len(frame)} rows; send one per row.")
        pred_out = _column_drift(profile.prediction_profile, pred, None)
        tests.append(("prediction", pred_out))
    adjusted = benjamini_hochberg([t["pvalue"] for _, t in tests])
    alerts: list[Alert] = []
    for (what, t), p_adj in zip(tests, adjusted, strict=True):
        t["p_adjusted"] = float(p_adj)
        big, critical = _effect(t, th)
        t["drifted"] = bool(p_adj < th.alpha and big)
        if not t["drifted"]:
            continue
        eff = f"PSI {t['psi']:.3f}" if t["kind"] == "numeric" else f"JS distance {t['js']:.3f}"
        if t["kind"] == "numeric":
            eff += f", Wasserstein {t['wasserstein']:.2f} sd"
        kind = {"feature": "feature_drift", "label": "label_drift", "prediction": "prediction_drift"}[what]
        subject = t["column"]
        alerts.append(
            Alert(
                kind=kind,
                subject=subject,
                severity="critical" if critical else "warning",
                message=f"{what} '{subject}' drifted: {eff} (adjusted p = {p_adj:.2g}).",
                value=t["psi"] if t["kind"] == "numeric" else t["js"],
                pvalue=float(p_adj),
            )
        )
    if unseen is not None:
        alerts.append(unseen)
    if lab is not None and pred is not None:
        if len(lab) != len(pred):
            raise InputError(f"{where}: {len(lab)} labels for {len(pred)} predictions; send one per row.")
        acc = float(np.mean(lab.to_numpy(dtype=object) == pred.to_numpy(dtype=object)))
        perf = performance_check(acc, len(lab), profile.reference_accuracy, th)
        if perf.get("alert"):
            alerts.append(perf.pop("alert"))
    mv = None
    if multivariate:
        mv = domain_classifier(profile.sample_frame(), cur, profile, seed=seed)
        auc = mv["auc"]
        mv["drifted"] = bool(auc is not None and mv["pvalue"] < th.alpha and auc >= th.auc)
        if mv["drifted"]:
            alerts.append(
                Alert(
                    kind="multivariate_drift",
                    subject="all features",
                    severity="critical" if auc >= th.auc_critical else "warning",
                    message=f"a classifier tells new rows from reference rows with AUC {auc:.3f} (p = {mv['pvalue']:.2g}).",
                    value=auc,
                    pvalue=mv["pvalue"],
                )
            )
    return DriftReport(
        n_reference=profile.n_rows,
        n_current=len(frame),
        features=features,
        multivariate=mv,
        label=label_out,
        prediction=pred_out,
        performance=perf,
        alerts=alerts,
        thresholds=th,
    )


def label_report(
    profile: Profile,
    labels: Sequence[Any],
    predictions: Sequence[Any] | None,
    thresholds: DriftThresholds | None = None,
) -> tuple[dict[str, Any], list[Alert]]:
    """Delayed labels of one batch: label drift against the reference and accuracy against the predictions."""
    th = thresholds or DriftThresholds()
    lab = _categories(pd.Series(np.asarray(labels, dtype=object)))
    out: dict[str, Any] = {"rows": len(lab)}
    found: list[Alert] = []
    if profile.label_profile is not None:
        d = _column_drift(profile.label_profile, lab, None)
        d["p_adjusted"] = d["pvalue"]
        big, critical = _effect(d, th)
        d["drifted"] = bool(d["pvalue"] < th.alpha and big)
        out["label"] = d
        if d["drifted"]:
            found.append(
                Alert(
                    kind="label_drift",
                    subject=str(profile.label),
                    severity="critical" if critical else "warning",
                    message=f"label '{profile.label}' drifted: JS distance {d['js']:.3f} (p = {d['pvalue']:.2g}).",
                    value=d["js"],
                    pvalue=d["pvalue"],
                )
            )
        unseen = new_labels(profile.label_profile, lab)
        if unseen is not None:
            found.append(unseen)
    if predictions is not None:
        pred = _categories(pd.Series(np.asarray(predictions, dtype=object)))
        acc = float(np.mean(lab.to_numpy(dtype=object) == pred.to_numpy(dtype=object)))
        perf = performance_check(acc, len(lab), profile.reference_accuracy, th)
        if "alert" in perf:
            found.append(perf.pop("alert"))
        out["performance"] = perf
    return out, found


def performance_check(accuracy: float, n: int, reference: float | None, th: DriftThresholds) -> dict[str, Any]:
    """Accuracy on labelled rows against the reference accuracy: an alert needs a drop of at least
    ``accuracy_drop`` and a one-sided binomial p-value below ``alpha``."""
    out: dict[str, Any] = {"accuracy": accuracy, "rows": n, "reference_accuracy": reference}
    if reference is None or n == 0:
        return out
    k = round(accuracy * n)
    p = float(stats.binom.cdf(k, n, reference))
    drop = reference - accuracy
    out.update(drop=drop, pvalue=p)
    if drop >= th.accuracy_drop and p < th.alpha:
        out["alert"] = Alert(
            kind="performance",
            subject="accuracy",
            severity="critical" if drop >= 2 * th.accuracy_drop else "warning",
            message=f"accuracy {accuracy:.1%} on {n} labelled rows, {drop:.1%} below the reference {reference:.1%} "
            f"(p = {p:.2g}).",
            value=accuracy,
            pvalue=p,
        )
    return out


__all__ = [
    "Alert",
    "DriftReport",
    "DriftThresholds",
    "benjamini_hochberg",
    "chi2_two_sample",
    "compare",
    "domain_classifier",
    "js_distance",
    "ks_test",
    "label_report",
    "new_labels",
    "performance_check",
    "psi",
    "wasserstein",
]
