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
from ..features import boosting_early_stopping
from ..triggers import Trigger, find_triggers
from .base import Detector, DetectorOutput, explain, register, unit_interval

CHECK_TRAIN_MAX = 20_000
CHECK_TRIGGERS = 5
CLEAN_LABEL_PURITY = 0.95
SEGMENT_Z = 3.0  # rows told from a population this far beyond chance (Mann-Whitney z) ...
SEGMENT_AUC = 0.65  # ... and by this much: on 1,446 stamped rows of 41,000, an AUROC of 0.53 is z = 3.6
TRIGGER_ALPHA = 1e-3  # the miner's level: a trigger whose label concentration is weaker is none


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
        self.blind_share_: dict[tuple[Any, ...], float] = {}
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
        # A trigger is no stronger than its label concentration: the rows that carry it must be the target class
        # more often than the class's share (or, where it was checked, than a model blind to its columns expects)
        # makes likely. Six rows of one month, all of a class that holds 80% of the rows, are no trigger.
        triggers = [replace(t, pvalue=max(t.pvalue, self._purity_p(ctx, t))) for t in triggers]
        # A stamp lands on rows chosen for nothing else: blind to its columns, its rows look like the rows of the
        # class they came from (the target's other rows for a clean-label stamp, the other classes' for a
        # dirty-label one). A combination whose rows a model tells from both is a natural segment (a period, a
        # relationship that fixes the label); one that the rest of its rows agrees with while one carrier in twenty
        # or more is of another class is a natural rule (never married and own child -> low income, once flips
        # emptied the other class of its carriers). Both are reported, not scored. (A blind model putting few of a
        # clean-label stamp's rows in the target says nothing: the attacker stamps the class's hard rows.)
        segment = {id(t): self._segment(ctx, t) for t in triggers[:CHECK_TRIGGERS] if t.kind != "token"}
        rules = [
            t
            for t in triggers
            if t.kind != "token"
            and (
                ((t.rest_agreement or 0.0) >= 0.5 and t.purity < CLEAN_LABEL_PURITY)
                or (id(t) in segment and _told(segment[id(t)][0]) and _told(segment[id(t)][1]))
            )
        ]
        # The other face of a rule: columns whose values fix the label both ways (relationship 'Husband' -> Male,
        # 'Wife' -> Female) encode the label. On a small sample the rarer face has too few rows for the segment
        # test, yet its rows look like the rest of their class, as a relabelled stamp's never do; a stamp on
        # exactly the columns of a natural rule for another class is a coincidence an attacker cannot count on.
        rules += [
            t
            for t in triggers
            if id(t) in segment
            and not _told(segment[id(t)][0])
            and not any(t is r for r in rules)
            and any(_mirrors(t, r) for r in rules)
        ]
        weak = [t for t in triggers if t.pvalue > TRIGGER_ALPHA]
        kept = [t for t in triggers if t.pvalue <= TRIGGER_ALPHA and not any(t is r for r in rules)]
        self.row_p_ = np.ones(ctx.n)
        for t in kept:
            self.row_p_[t.rows] = np.minimum(self.row_p_[t.rows], t.pvalue)
        segments = [[[round(v, 3) for v in a] for a in segment[id(t)]] for t in triggers if id(t) in segment]
        info = {**info, "segment_auc_z": segments}
        if rules:
            info["rules"] = [t.describe() for t in rules]
        if weak:
            info["label_not_concentrated"] = [t.describe() for t in weak]
        triggers = kept
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

    def _segment(self, ctx: ScanContext, trig: Trigger) -> tuple[tuple[float, float], tuple[float, float]]:
        """Out-of-fold AUROCs of models, blind to the trigger's columns, that tell the trigger's rows from the
        other rows of its class and from the rows of the other classes, each as a z-score against 0.5 (the
        Mann-Whitney null), as (AUROC, z) pairs. A stamp on rows picked at random from a class leaves one of them
        at chance (the class the rows came from); a natural segment is told from both."""
        blind = _Blind.of(ctx, trig)
        if blind is None or len(trig.rows) < 10:
            return (0.5, 0.0), (0.5, 0.0)
        rng = np.random.default_rng(ctx.seed + 29)
        rows = _at_most(np.asarray(trig.rows, dtype=np.int64), CHECK_TRAIN_MAX // 2, rng)
        out = []
        for same in (True, False):
            pool = (ctx.y == blind.target) if same else (ctx.y != blind.target)
            rest = _at_most(np.flatnonzero(pool & ~blind.carriers), CHECK_TRAIN_MAX // 2, rng)
            if len(rest) < 10:
                out.append((0.5, 0.0))
                continue
            idx = np.concatenate([rows, rest])
            z = np.r_[np.ones(len(rows), dtype=np.int64), np.zeros(len(rest), dtype=np.int64)]
            fold = np.zeros(len(idx), dtype=bool)
            for side in (z == 1, z == 0):  # halves stratified by side
                where = np.flatnonzero(side)
                fold[rng.permutation(where)[: len(where) // 2]] = True
            score = np.zeros(len(idx))
            for f in (fold, ~fold):
                model = blind.fit(ctx, idx[~f], z[~f], max_iter=50)
                score[f] = model.predict_proba(blind.X(ctx, idx[f]))[:, 1]
            auc = float(roc_auc_score(z, score))
            m, k = len(rows), len(rest)
            out.append((auc, (auc - 0.5) / np.sqrt((m + k + 1) / (12.0 * m * k))))
        return out[0], out[1]

    def _purity_p(self, ctx: ScanContext, trig: Trigger) -> float:
        """Chance that the trigger's carriers are the target class as often as they are, if each were so with the
        class's share of the rows, or (where the trigger was checked) with the probability a model blind to its
        columns gives its rows; the smaller of the two, doubled."""
        classes = [str(c) for c in ctx.data.classes]
        if str(trig.target) not in classes or trig.carriers <= 0:
            return 1.0
        share = float(np.mean(ctx.y == classes.index(str(trig.target))))
        k, n = int(trig.support), int(max(trig.carriers, trig.support))
        p = float(binom.sf(k - 1, n, share))
        blind = self.blind_share_.get(_key(trig))
        if blind is not None:
            p = min(1.0, 2 * min(p, float(binom.sf(k - 1, n, blind))))
        return p

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

        proba = model.predict_proba(blind.X(ctx, rows))
        hits = int((model.classes_[proba.argmax(axis=1)] == blind.target).sum())
        recall = float((model.classes_[model.predict_proba(blind.X(ctx, test)).argmax(axis=1)] == blind.target).mean())
        col = np.flatnonzero(model.classes_ == blind.target)
        self.blind_share_[_key(trig)] = float(proba[:, col[0]].mean()) if col.size else 0.0
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


def _mirrors(t: Trigger, rule: Trigger) -> bool:
    """``t`` sets the same columns as ``rule`` to other values, for another class."""
    return (
        set(t.conditions) == set(rule.conditions)
        and t.conditions != rule.conditions
        and str(t.target) != str(rule.target)
    )


def _told(auc_z: tuple[float, float]) -> bool:
    return auc_z[0] >= SEGMENT_AUC and auc_z[1] >= SEGMENT_Z


def _key(t: Trigger) -> tuple[Any, ...]:
    return (str(t.target), *sorted((str(c), repr(v)) for c, v in t.conditions.items()))


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
        return HistGradientBoostingClassifier(
            max_iter=max_iter,
            categorical_features=cat,
            early_stopping=boosting_early_stopping(y),
            random_state=ctx.seed,
        ).fit(self.X(ctx, rows), y)
