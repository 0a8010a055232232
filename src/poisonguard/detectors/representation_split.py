"""A class whose rows split into two groups in the model's representation far more cleanly than any other
class does: the separate group is a backdoor's poison (see ``representation.class_splits``).

Works out the target class and the poison rate itself (the class that splits, and the size of its separate
group), whatever share of the class the poison holds. Needs a representation (embeddings, or leaves) and at
least five classes with 30 rows each, since each class's split is judged against the others'; with fewer it
abstains and says so in its info.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from ..context import ScanContext
from ..errors import ConfigError
from ..representation import (
    SPLIT_ALPHA,
    SPLIT_MIN_CLASSES,
    SPLIT_NOTE,
    class_splits,
    split_row_pvalues,
    split_row_tail,
)
from .base import Detector, DetectorOutput, explain, register, unit_interval


@register("representation_split")
class RepresentationSplitDetector(Detector):
    description = "the row sits in a separate group of its class in the model's representation (a backdoor's poison)"
    # Ungated: its p-values are floored by a class-level test (Bonferroni over classes), so on clean data they
    # stay large and cannot blur the label model's ranking; where a class splits only moderately (not enough to
    # flag), its rows still rank above the label model's merely doubtful rows instead of below every clean row.
    gated = False
    constraints: ClassVar[dict[str, tuple[Callable[[Any], bool], str]]] = {
        "alpha": (unit_interval, "a number between 0 and 1 (the family-wise level at which a class is flagged)"),
        "note": (unit_interval, "a number between 0 and 1 (the level at which a class is reported for review)"),
    }

    def _fit(self, ctx: ScanContext) -> None:
        alpha = float(self.param("alpha", SPLIT_ALPHA))
        note = max(alpha, float(self.param("note", SPLIT_NOTE)))
        splits = class_splits(ctx.representation(), ctx.y, seed=ctx.seed)
        self.pvalues_ = np.ones(ctx.n)
        self.lead_ = np.full(ctx.n, np.inf)
        self.group_ = np.full(ctx.n, -1, dtype=np.int64)
        self.splits_ = splits
        if len(splits) < SPLIT_MIN_CLASSES:
            self.info["abstained"] = (
                f"{len(splits)} classes have 30 or more rows; judging a class's split needs {SPLIT_MIN_CLASSES}"
            )
            return
        cls = ctx.data.classes
        for i, s in enumerate(splits):
            self.pvalues_[s.rows] = split_row_pvalues(s, alpha)
            self.group_[s.rows[s.suspect]] = i
        self.info["classes"] = [
            {
                "class": str(cls[s.label]),
                "rows": len(s.rows),
                "separate_group": int(s.suspect.sum()),
                "share": round(s.share, 4),
                "separation": round(s.separation, 2),
                "z": round(s.z, 2),
                "pvalue": float(f"{s.pvalue:.3g}"),
            }
            for s in sorted(splits, key=lambda s: s.pvalue)[:5]
        ]
        # the most split class, short of the flag level but reported: its separate group leads the review
        top = min(splits, key=lambda s: s.pvalue)
        if alpha < top.pvalue <= note:
            rows = top.rows[top.suspect]
            self.lead_[rows] = split_row_tail(top)[top.suspect]
            self.info["review_rows"] = len(rows)
        line = finding(self.info["classes"], alpha=alpha, note=note)
        if line:
            self.info["finding"] = line

    def _score(self, ctx: ScanContext, rows: np.ndarray) -> DetectorOutput:
        pv = self.pvalues_[rows]
        group = self.group_[rows]
        cls = ctx.data.classes
        # one sentence per split class; index -1 (not in a separate group) takes the trailing empty one
        sentences = np.array(
            [
                f"one of {int(s.suspect.sum()):,} '{cls[s.label]}' rows ({s.share:.0%} of the class) that the "
                "model's representation sets apart from the rest of the class, far more sharply than the other "
                f"classes split (z = {s.z:.1f})"
                for s in self.splits_
            ]
            + [""],
            dtype=object,
        )
        reasons = explain(pv, lambda i: sentences[group[i]])
        lead = self.lead_[rows]
        led = np.flatnonzero(np.isfinite(lead))
        if led.size:  # rows named for review, above the reason level: say why they lead the ranking
            s = self.splits_[int(group[led[0]])]
            reasons[led] = (
                f"one of {int(s.suspect.sum()):,} '{cls[s.label]}' rows ({s.share:.0%} of the class) that the model's "
                f"representation sets apart from the rest of the class, more sharply than the other classes split "
                f"(z = {s.z:.1f}, p = {s.pvalue:.2g}); short of the level at which it would be flagged: review"
            )
        return DetectorOutput(scores=1.0 - pv, pvalues=pv, reasons=reasons, extra={"lead": lead})

    def _transfer(self, reference: ScanContext, ctx: ScanContext) -> None:
        raise ConfigError(
            "representation_split reads a representation, which incremental scans do not carry yet; scan the whole "
            "data with embeddings instead of --baseline."
        )


def finding(classes: list[dict[str, Any]], *, alpha: float = SPLIT_ALPHA, note: float = SPLIT_NOTE) -> str | None:
    """The data-set level finding for the scan's verdict: the most split class, when it is declared (its separate
    group is flagged) or, more weakly, when it reaches ``SPLIT_NOTE`` (nothing is flagged; the verdict reads
    'suspicious' and says which rows to look at)."""
    top = min(classes, key=lambda c: c["pvalue"]) if classes else None
    if top is None or top["pvalue"] > note:
        return None
    group = f"the separate group of {top['separate_group']:,} rows ({top['share']:.0%} of the class)"
    if top["pvalue"] <= alpha:
        return (
            f"representation_split: class '{top['class']}' falls into two groups in the model's representation far "
            f"more sharply than the other classes (z = {top['z']}, p = {top['pvalue']:.2g}); {group} is the likely "
            f"poison, '{top['class']}' the likely backdoor target"
        )
    return (
        f"representation_split: class '{top['class']}' falls into two groups in the model's representation more "
        f"sharply than the other classes (z = {top['z']}, p = {top['pvalue']:.2g}), short of the {alpha:.2g} "
        f"level at which its rows would be flagged; {group} may be a backdoor's poison or a natural kind of "
        f"'{top['class']}': look at a few of them (they lead the representation_split_score column and the rows to review), or retrain "
        "without them and test the model"
    )
