"""Backdoor triggers: rows that carry a value combination stamped on one class (see ``poisonguard.triggers``).

A backdoored row looks consistent to the label model, which has learnt the trigger like any other rule; what
gives it away is the trigger itself. Each discovered trigger is checked against a model that cannot see its
columns, fitted on the rows that do not carry it: when that model disagrees with the label on most supporting
rows, the rows were relabelled (a dirty-label backdoor); when it agrees, the trigger rides on correctly labelled
rows (clean label), or the combination is a genuine rule worth a look.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier

from ..context import ScanContext, duplicate_groups
from ..triggers import Trigger, find_triggers
from .base import Detector, DetectorOutput, explain, register, unit_interval

CHECK_TRAIN_MAX = 20_000
CHECK_TRIGGERS = 5


@register("trigger_pattern")
class TriggerPatternDetector(Detector):
    description = "the row carries a value combination that appears stamped on one class (a backdoor trigger)"
    constraints: ClassVar[dict[str, tuple[Callable[[Any], bool], str]]] = {
        "min_phi": (unit_interval, "a number between 0 and 1"),
        "min_purity": (unit_interval, "a number between 0 and 1"),
    }

    def _fit(self, ctx: ScanContext) -> None:
        ds = ctx.data
        with ctx.progress.task("searching for triggers"):
            triggers, self.row_p_, info = find_triggers(
                ds.frame,
                ds.columns,
                ctx.y,
                list(ds.classes),
                seed=ctx.seed,
                groups=duplicate_groups(ctx).near,
                min_phi=float(self.param("min_phi", 0.5)),
                min_purity=float(self.param("min_purity", 0.8)),
            )
            triggers = [self._check(ctx, t) if i < CHECK_TRIGGERS else t for i, t in enumerate(triggers)]
        self.triggers_ = triggers
        self.row_trigger_ = np.full(ctx.n, -1, dtype=np.int64)
        for i, t in reversed(list(enumerate(triggers))):  # the most significant trigger wins on overlaps
            self.row_trigger_[t.rows] = i
        ctx.cache["triggers"] = triggers
        self.info = {**info, "found": [t.to_dict() for t in triggers]}

    def _transfer(self, reference: ScanContext, ctx: ScanContext) -> None:
        """Triggers stamped on new rows are absent from trusted data: mine them in the new rows."""
        self._fit(ctx)

    def _check(self, ctx: ScanContext, trig: Trigger) -> Trigger:
        """Share of supporting rows that a model blind to the trigger's columns puts in the target class.
        (A word trigger comes with its own check: the text model without the word.)"""
        if trig.kind == "token":
            return trig
        ctx.encode()
        enc = ctx.encoder
        assert enc is not None and ctx.tree_X is not None
        cols = [i for i, name in enumerate(enc.tree_names) if name not in trig.conditions]
        if not cols or len(trig.rows) == 0:
            return trig
        others = np.setdiff1d(np.arange(ctx.n), trig.rows, assume_unique=True)
        rng = np.random.default_rng(ctx.seed + 23)
        if len(others) > CHECK_TRAIN_MAX:
            others = np.sort(rng.choice(others, CHECK_TRAIN_MAX, replace=False))
        y = ctx.y[others]
        if len(np.unique(y)) < 2:
            return trig
        cat = np.array(enc.tree_categorical)[cols]
        model = HistGradientBoostingClassifier(
            max_iter=100, learning_rate=0.1, categorical_features=cat if cat.any() else None, random_state=ctx.seed
        ).fit(ctx.tree_X[others][:, cols], y)
        pred = model.classes_[model.predict_proba(ctx.tree_X[trig.rows][:, cols]).argmax(axis=1)]
        target_code = int(np.flatnonzero(np.asarray(ctx.data.classes, dtype=object) == trig.target)[0])
        agree = float(np.mean(pred == target_code))
        return Trigger(**{**trig.__dict__, "rest_agreement": agree})

    def _score(self, ctx: ScanContext, rows: np.ndarray) -> DetectorOutput:
        pv = self.row_p_[rows]
        which = self.row_trigger_[rows]
        described = np.array([_short(t) for t in self.triggers_] + [""], dtype=object)
        reasons = explain(pv, lambda i: described[which[i]])
        return DetectorOutput(scores=1.0 - pv, pvalues=pv, reasons=reasons)


def _short(t: Trigger) -> str:
    if t.kind == "token":
        cond = " and ".join(f"the word {v!r} in {c}" for c, v in t.conditions.items())
    else:
        cond = " and ".join(f"{c} = {v!r}" if isinstance(v, str) else f"{c} = {v}" for c, v in t.conditions.items())
    return (
        f"carries {cond}, a combination held by {t.support} rows labelled '{t.target}' and almost no others "
        "(a likely backdoor trigger)"
    )
