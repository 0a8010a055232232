"""Backdoor triggers: rows that carry a value combination stamped on one class (see ``poisonguard.triggers``).

A backdoored row looks consistent to the label model, which has learnt the trigger like any other rule; what
gives it away is the trigger itself. Each discovered trigger is checked against a model that cannot see its
columns, fitted on the rows that do not carry it: when that model disagrees with the label on most supporting
rows, the rows were relabelled (a dirty-label backdoor); when it agrees, the trigger rides on correctly labelled
rows (clean label), or the combination is a genuine rule worth a look. A trigger made of values that the target
class holds often anyway is tied there only loosely; such a candidate counts only when this check says the rest
of its rows belongs to another class.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import numpy as np
from scipy.stats import binom
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score

from ..context import ScanContext, duplicate_groups
from ..triggers import Trigger, find_triggers
from .base import Detector, DetectorOutput, explain, register, unit_interval

CHECK_TRAIN_MAX = 20_000
CHECK_TRIGGERS = 5
CLEAN_LABEL_PURITY = 0.95
SEGMENT_AUC = 0.75


@register("trigger_pattern")
class TriggerPatternDetector(Detector):
    description = "the row carries a value combination that appears stamped on one class (a backdoor trigger)"
    fits_first = True  # class_outlier leaves trigger rows out of its class centres
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
                rest_check=lambda t: self._rest(ctx, t),
            )
            triggers = [self._check(ctx, t) if i < CHECK_TRIGGERS else t for i, t in enumerate(triggers)]
        # A clean-label stamp is the attacker's own combination: it lands on the target class only, so nearly all
        # of its carriers are of that class, and on rows chosen for nothing else, so without its columns they look
        # like the class's other rows. A combination that the rest of its rows agrees with is a natural rule (a
        # period, a segment) that heavy relabelling elsewhere made look class-specific when one carrier in twenty
        # or more is of another class, or when a model tells its rows from the class's others (never married and
        # own child -> low income, once flips emptied the other class of its carriers): reported, not scored.
        rules = [
            t
            for t in triggers
            if t.kind != "token"
            and (t.rest_agreement or 0.0) >= 0.5
            and (t.purity < CLEAN_LABEL_PURITY or self._segment(ctx, t) >= SEGMENT_AUC)
        ]
        if rules:
            triggers = [t for t in triggers if not any(t is r for r in rules)]
            self.row_p_ = np.ones(ctx.n)
            for t in triggers:
                self.row_p_[t.rows] = np.minimum(self.row_p_[t.rows], t.pvalue)
            info = {**info, "rules": [t.describe() for t in rules]}
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
        """A strong trigger gets the share of its rows that the rest of the row puts in its class (for the
        report: a low share says relabelled rows, a high one a clean-label trigger or a genuine rule). A word
        trigger comes with its own check: the text model without the word; a weak one was checked on mining."""
        if trig.kind == "token" or trig.rest_agreement is not None:
            return trig
        agree, _ = self._rest(ctx, trig)
        return trig if np.isnan(agree) else replace(trig, rest_agreement=agree)

    def _segment(self, ctx: ScanContext, trig: Trigger) -> float:
        """Held-out AUROC of a model, blind to the trigger's columns, that tells the trigger's rows from the other
        rows of its class: about 0.5 for a stamp on rows picked at random, high for a natural segment."""
        blind = _Blind.of(ctx, trig)
        if blind is None or len(trig.rows) < 10:
            return 0.5
        rng = np.random.default_rng(ctx.seed + 29)
        rows = _at_most(np.asarray(trig.rows, dtype=np.int64), CHECK_TRAIN_MAX // 2, rng)
        rest = _at_most(np.flatnonzero((ctx.y == blind.target) & ~blind.carriers), CHECK_TRAIN_MAX // 2, rng)
        if len(rest) < 10:
            return 0.5
        idx = np.concatenate([rows, rest])
        z = np.r_[np.ones(len(rows), dtype=np.int64), np.zeros(len(rest), dtype=np.int64)]
        held = rng.random(len(idx)) < 0.3
        if len(np.unique(z[~held])) < 2 or len(np.unique(z[held])) < 2:
            return 0.5
        model = blind.fit(ctx, idx[~held], z[~held], max_iter=50)
        return float(roc_auc_score(z[held], model.predict_proba(blind.X(ctx, idx[held]))[:, 1]))

    def _rest(self, ctx: ScanContext, trig: Trigger) -> tuple[float, float]:
        """Share of ``trig.rows`` that a model blind to the trigger's columns puts in the target class, and the
        binomial p-value of so few under the share it puts of held-out rows of the class that lack the trigger.

        The model is fitted on three quarters of the rows that do not carry the trigger (a sample of at most
        ``CHECK_TRAIN_MAX``); the last quarter measures how often it recognises the class without the trigger.
        """
        blind = _Blind.of(ctx, trig)
        rows = np.asarray(trig.rows, dtype=np.int64)
        if blind is None or len(rows) == 0:
            return float("nan"), 1.0
        rng = np.random.default_rng(ctx.seed + 23)
        others = np.sort(_at_most(np.flatnonzero(~blind.carriers), CHECK_TRAIN_MAX * 4 // 3, rng))
        held = rng.random(len(others)) < 0.25
        train, test = others[~held], others[held]
        test = test[ctx.y[test] == blind.target]
        if len(np.unique(ctx.y[train])) < 2 or len(test) == 0:
            return float("nan"), 1.0
        model = blind.fit(ctx, train, ctx.y[train], max_iter=100)

        def share(idx: np.ndarray) -> np.ndarray:
            return model.classes_[model.predict_proba(blind.X(ctx, idx)).argmax(axis=1)] == blind.target

        hits = int(share(rows).sum())
        recall = float(share(test).mean())
        return hits / len(rows), float(binom.cdf(hits, len(rows), recall))

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


def _at_most(idx: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    return rng.choice(idx, k, replace=False) if len(idx) > k else idx


@dataclass(frozen=True)
class _Blind:
    """What a model blind to a trigger's columns needs: the other tree columns, their categorical flags, the
    target's class code, and which rows carry the trigger (its rows and every row holding all its values)."""

    cols: list[int]
    categorical: np.ndarray
    target: int
    carriers: np.ndarray

    @classmethod
    def of(cls, ctx: ScanContext, trig: Trigger) -> _Blind | None:
        ctx.encode()
        enc = ctx.encoder
        assert enc is not None and ctx.tree_X is not None
        cols = [i for i, name in enumerate(enc.tree_names) if name not in trig.conditions]
        classes = [str(c) for c in ctx.data.classes]
        if not cols or str(trig.target) not in classes:
            return None
        carriers = trig.mask(ctx.data.frame)
        carriers[np.asarray(trig.rows, dtype=np.int64)] = True
        cat = np.asarray(enc.tree_categorical, dtype=bool)[cols]
        return cls(cols=cols, categorical=cat, target=classes.index(str(trig.target)), carriers=carriers)

    def X(self, ctx: ScanContext, rows: np.ndarray) -> np.ndarray:
        assert ctx.tree_X is not None
        return ctx.tree_X[rows][:, self.cols]

    def fit(self, ctx: ScanContext, rows: np.ndarray, y: np.ndarray, *, max_iter: int) -> Any:
        cat = self.categorical if self.categorical.any() else None
        return HistGradientBoostingClassifier(max_iter=max_iter, categorical_features=cat, random_state=ctx.seed).fit(
            self.X(ctx, rows), y
        )
