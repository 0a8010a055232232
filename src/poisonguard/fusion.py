"""Fusion: one suspicion score per row, flags at a controlled false-alarm rate, and the verdict.

Each detector gives a p-value under its own model of clean data. A row's fused p-value is the Šidák-corrected
smallest of them: the chance that a clean row would look at least this suspicious to *some* detector. Flagging
rows whose fused p-value is at most ``fpr`` therefore flags at most about ``fpr`` of the clean rows (exactly so
for independent detectors, conservatively when they agree with each other). The score is ``1 - fused p``.

The verdict compares the number of flags with the ``fpr * n`` that clean data would produce.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import binom

from .stats import binom_interval, sidak

VERDICTS = ("clean", "suspicious", "poisoned")


@dataclass(frozen=True)
class Fused:
    score: np.ndarray
    pvalue: np.ndarray
    flagged: np.ndarray
    threshold: float
    order: np.ndarray  # detector indices per row, most suspicious first


def fuse(pvalues: np.ndarray, fpr: float) -> Fused:
    """``pvalues`` is rows x detectors."""
    d = pvalues.shape[1]
    pmin = pvalues.min(axis=1)
    fused = sidak(pmin, d)
    score = 1.0 - fused
    return Fused(
        score=score,
        pvalue=fused,
        flagged=fused <= fpr,
        threshold=float(1.0 - fpr),
        order=np.argsort(pvalues, axis=1, kind="stable"),
    )


def top_reasons(
    reasons: np.ndarray, pvalues: np.ndarray, order: np.ndarray, top: int = 2, level: float = 0.05
) -> np.ndarray:
    """Join the reasons of the (at most ``top``) most significant detectors below ``level``."""
    n = len(reasons)
    out = np.full(n, "", dtype=object)
    for j in range(min(top, reasons.shape[1])):
        det = order[:, j]
        r = reasons[np.arange(n), det]
        ok = (pvalues[np.arange(n), det] <= level) & (r != "")
        sep = np.where((out != "") & ok, "; ", "")
        out = np.where(ok, out + sep + r, out)
    return out


@dataclass(frozen=True)
class Excess:
    flagged: int
    expected: float
    fraction: float
    low: float
    high: float
    pvalue: float


def excess(flagged: int, n: int, fpr: float) -> Excess:
    """Flags beyond what clean data would give, as a fraction of rows, with a 95% interval."""
    lo, hi = binom_interval(flagged, n)
    p = float(binom.sf(flagged - 1, n, fpr)) if flagged > 0 else 1.0
    return Excess(
        flagged=flagged,
        expected=fpr * n,
        fraction=max(0.0, flagged / n - fpr),
        low=max(0.0, lo - fpr),
        high=max(0.0, hi - fpr),
        pvalue=p,
    )


def verdict(ex: Excess, fpr: float, worse_sources: list[str]) -> tuple[str, list[str]]:
    """``poisoned`` needs clearly more than twice the clean flag rate; ``suspicious`` a significant excess."""
    evidence: list[str] = []
    rate = ex.flagged / max(ex.expected / fpr, 1)
    if ex.pvalue < 1e-3 and ex.low > fpr and ex.flagged >= 10:
        evidence.append(
            f"{ex.flagged} rows flagged ({rate:.1%}) where clean data would give about {ex.expected:.0f} "
            f"({fpr:.1%}); at least {ex.low:.1%} of the rows look poisoned"
        )
        return "poisoned", evidence + [f"source '{s}' is flagged more than the others" for s in worse_sources]
    level = "clean"
    if ex.pvalue < 1e-3 and ex.flagged >= 5:
        level = "suspicious"
        evidence.append(
            f"{ex.flagged} rows flagged ({rate:.1%}), more than the {ex.expected:.0f} expected on clean data"
        )
    if worse_sources:
        level = "suspicious"
        evidence += [
            f"source '{s}' is flagged significantly more than the other sources" for s in worse_sources
        ]
    if level == "clean":
        evidence.append(
            f"{ex.flagged} rows flagged ({rate:.1%}), in line with the {fpr:.1%} false-alarm rate of clean data"
        )
    return level, evidence
