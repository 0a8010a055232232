"""Trigger watch: the few requests that carry a backdoor trigger while the population looks unchanged.

A targeted attack may use a fraction of a percent of traffic, far below what population drift can see. Two
checks look at rows one by one:

* **Discovered triggers** (from a scan's summary.json): rows that carry every condition of a trigger. A trigger
  is poisoning by definition, so clean traffic should carry it at most at a tiny ``trigger_baseline`` rate; the
  hits are tested against it (binomial tail).
* **Counterfactual check** (needs the model): a row whose feature lies far outside the reference (outside the
  reference's [q0.1%, q99.9%] and more than ``z`` robust standard deviations from the median; for a category,
  one the reference never or almost never saw) has those features reset to the reference median or mode and is
  predicted again. A changed prediction is a hit: an unusual value that decides the prediction is what a trigger
  does. Clean traffic has such rows too, so the same procedure on the reference sample gives the baseline rate,
  and the hits are tested against it.

An alert needs at least ``min_hits`` hits and a p-value below ``alpha``; population drift plays no part.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from ..triggers import Trigger
from .drift import Alert
from .profile import Profile, _categories

Predict = Callable[[pd.DataFrame], Any]


@dataclass
class WatchReport:
    """Trigger hits in one batch: ``triggers`` (one dict per discovered trigger), ``counterfactual`` and alerts."""

    n_rows: int
    triggers: list[dict[str, Any]]
    counterfactual: dict[str, Any] | None
    alerts: list[Alert] = field(default_factory=list)

    @property
    def hits(self) -> int:
        n = sum(t["hits"] for t in self.triggers)
        return n + (self.counterfactual["flips"] if self.counterfactual else 0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_rows": self.n_rows,
            "hits": self.hits,
            "triggers": self.triggers,
            "counterfactual": self.counterfactual,
            "alerts": [a.to_dict() for a in self.alerts],
        }


def _as_predict(model: Any) -> Predict | None:
    if model is None:
        return None
    return model.predict if hasattr(model, "predict") else model


class TriggerWatch:
    """Checks batches for trigger carriers and prediction-changing outliers. ``model`` is a fitted estimator
    (its ``predict`` takes a frame of the profile's feature columns) or a function from such a frame to labels."""

    def __init__(
        self,
        profile: Profile,
        *,
        triggers: Sequence[Trigger | Mapping[str, Any]] | None = None,
        model: Any = None,
        alpha: float = 0.01,
        min_hits: int = 3,
        z: float = 4.0,
        trigger_baseline: float = 1e-4,
        rare_category: float = 0.001,
    ) -> None:
        self.profile = profile
        raw = profile.triggers if triggers is None else triggers
        self.triggers = [t if isinstance(t, Trigger) else Trigger.from_dict(t) for t in raw]
        self.predict = _as_predict(model)
        self.alpha, self.min_hits, self.z = alpha, min_hits, z
        self.trigger_baseline, self.rare_category = trigger_baseline, rare_category
        self._baseline: dict[str, Any] | None = None

    # --- unusual values and the counterfactual ----------------------------------------------------------------

    def unusual(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Boolean frame: which cells of ``frame`` (already coerced) are far outside the reference."""
        out = {}
        for c, col in self.profile.columns.items():
            if col.kind == "numeric":
                x = frame[c].to_numpy(dtype=float, na_value=np.nan)
                if col.median is None:
                    out[c] = np.zeros(len(x), dtype=bool)
                    continue
                scale = col.scale or 1.0
                with np.errstate(invalid="ignore"):
                    outside = (x < col.q_low) | (x > col.q_high)
                    far = np.abs(x - col.median) / scale > self.z
                out[c] = outside & far
            else:
                share = col.shares
                rare = np.r_[share[:-2] < self.rare_category, True, False]  # <other> is unseen; missing is not
                out[c] = rare[col.codes(frame[c])]
        return pd.DataFrame(out, index=frame.index)

    def _flips(self, frame: pd.DataFrame, before: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, Counter]:
        """(rows with an unusual value, rows whose prediction flips once those values are reset, column counts)."""
        bad = self.unusual(frame)
        rows = np.flatnonzero(bad.to_numpy().any(axis=1))
        flips = np.zeros(0, dtype=np.int64)
        cols: Counter = Counter()
        if len(rows) == 0 or self.predict is None:
            return rows, flips, cols
        sub = frame.iloc[rows].copy()
        reset = sub.copy()
        for c, col in self.profile.columns.items():
            m = bad[c].to_numpy()[rows]
            if m.any():
                fill = col.median if col.kind == "numeric" else col.mode
                reset.loc[m, c] = fill
        b = _labels(self.predict(sub) if before is None else np.asarray(before, dtype=object)[rows])
        a = _labels(self.predict(reset))
        flipped = a != b
        flips = rows[flipped]
        for c in self.profile.columns:
            n = int(bad[c].to_numpy()[flips].sum())
            if n:
                cols[c] = n
        return rows, flips, cols

    def baseline(self) -> dict[str, Any]:
        """Rates of unusual rows and of flips on the reference sample (computed once)."""
        if self._baseline is None:
            ref = self.profile.sample_frame()
            preds = self.profile.sample.get("__prediction__")
            rows, flips, _ = self._flips(ref, preds)
            n = max(len(ref), 1)
            self._baseline = {"rows": len(ref), "unusual": len(rows), "flips": len(flips), "flip_rate": len(flips) / n}
        return self._baseline

    # --- the check --------------------------------------------------------------------------------------------

    def check(
        self, frame: pd.DataFrame, *, predictions: Sequence[Any] | None = None, where: str = "<batch>"
    ) -> WatchReport:
        """Trigger hits in ``frame``; ``predictions`` (the model's, one per row) save predicting again."""
        n = len(frame)
        alerts: list[Alert] = []
        out_triggers = []
        for t in self.triggers:
            present = all(c in frame.columns for c in t.conditions)
            mask = t.mask(frame) if present else np.zeros(n, dtype=bool)
            hits = int(mask.sum())
            p = float(stats.binom.sf(hits - 1, n, self.trigger_baseline)) if hits else 1.0
            rec: dict[str, Any] = {
                "trigger": t.describe() if t.support else _short(t),
                "conditions": t.conditions,
                "target": t.target,
                "hits": hits,
                "rate": hits / n if n else 0.0,
                "pvalue": p,
                "rows": np.flatnonzero(mask)[:20].tolist(),
            }
            if predictions is not None and hits:
                pred = np.asarray(predictions, dtype=object)[mask].astype(str)
                rec["predicted_target"] = float(np.mean(pred == str(t.target)))
            rec["alert"] = bool(hits >= self.min_hits and p < self.alpha)
            out_triggers.append(rec)
            if rec["alert"]:
                alerts.append(
                    Alert(
                        kind="trigger",
                        subject=_short(t),
                        severity="critical",
                        message=f"{hits} of {n} rows ({hits / n:.2%}) carry the trigger {_short(t)} (p = {p:.2g}).",
                        value=hits / n,
                        pvalue=p,
                    )
                )
        cf = None
        if self.predict is not None:
            cur = self.profile.coerce(frame, where)
            rows, flips, cols = self._flips(cur, predictions)
            base = self.baseline()
            # floor: a reference sample with no flips cannot show a rate below one in its size
            rate0 = max(base["flip_rate"], 1.0 / (base["rows"] + 1))
            k = len(flips)
            p = float(stats.binom.sf(k - 1, n, rate0)) if k else 1.0
            cf = {
                "unusual_rows": len(rows),
                "flips": k,
                "rate": k / n if n else 0.0,
                "baseline_rate": base["flip_rate"],
                "pvalue": p,
                "columns": dict(cols.most_common()),
                "rows": flips[:20].tolist(),
                "alert": bool(k >= self.min_hits and p < self.alpha),
            }
            if cf["alert"]:
                top = ", ".join(f"'{c}'" for c, _ in cols.most_common(3))
                alerts.append(
                    Alert(
                        kind="counterfactual",
                        subject=top or "features",
                        severity="critical",
                        message=f"{k} of {n} rows ({k / n:.2%}) hold values far outside the reference ({top}) that "
                        f"decide the prediction: reset to typical values, it changes (reference rate "
                        f"{base['flip_rate']:.2%}, p = {p:.2g}).",
                        value=k / n,
                        pvalue=p,
                    )
                )
        return WatchReport(n_rows=n, triggers=out_triggers, counterfactual=cf, alerts=alerts)

    def window(self, report: WatchReport, history: Sequence[Mapping[str, Any]]) -> list[Alert]:
        """Alerts on the hits of ``report`` together with earlier batches (``history``: newest first, each
        ``{"rows": n, "triggers": {trigger: hits}, "flips": n or None}``, keyed as ``report.triggers[i]["trigger"]``).

        A stream that carries a trigger in 0.2% of its rows puts two rows in a batch of 1,000: too few to alert
        on one batch, plain over ten. Only a batch that has hits itself raises a window alert, and only where it
        raised no alert of its own, so a quiet stream after an attack does not repeat the alarm.
        """
        rows = report.n_rows + sum(int(h["rows"]) for h in history)
        own = {a.subject for a in report.alerts}
        out: list[Alert] = []
        for t, rec in zip(self.triggers, report.triggers, strict=True):
            subject = _short(t)
            if rec["hits"] == 0 or subject in own:
                continue
            hits = rec["hits"] + sum(int(h.get("triggers", {}).get(rec["trigger"], 0)) for h in history)
            p = float(stats.binom.sf(hits - 1, rows, self.trigger_baseline))
            if hits >= self.min_hits and p < self.alpha:
                out.append(
                    Alert(
                        kind="trigger",
                        subject=subject,
                        severity="critical",
                        message=f"{hits} of the last {rows} rows ({hits / rows:.2%}) carry the trigger {subject}, "
                        f"{rec['hits']} of them in this batch (p = {p:.2g}).",
                        value=hits / rows,
                        pvalue=p,
                    )
                )
        cf = report.counterfactual
        if cf is not None and cf["flips"] and not cf["alert"]:
            flips = cf["flips"] + sum(int(h.get("flips") or 0) for h in history)
            rate0 = max(self.baseline()["flip_rate"], 1.0 / (self.baseline()["rows"] + 1))
            p = float(stats.binom.sf(flips - 1, rows, rate0))
            if flips >= self.min_hits and p < self.alpha:
                out.append(
                    Alert(
                        kind="counterfactual",
                        subject="window",
                        severity="critical",
                        message=f"{flips} of the last {rows} rows ({flips / rows:.2%}) hold far-out values that decide "
                        f"the prediction (reference rate {self.baseline()['flip_rate']:.2%}, p = {p:.2g}).",
                        value=flips / rows,
                        pvalue=p,
                    )
                )
        return out


def _labels(values: Any) -> np.ndarray:
    """Predictions as text, spelled as the profile spells categories (1.0 and 1 alike)."""
    return _categories(pd.Series(np.asarray(values, dtype=object))).to_numpy(dtype=object).astype(str)


def _short(t: Trigger) -> str:
    cond = " & ".join(f"{c}={v}" for c, v in t.conditions.items())
    return f"{cond} -> {t.target}"


__all__ = ["TriggerWatch", "WatchReport"]
