"""Fusion: one suspicion score per row, flags at a controlled false-alarm rate, and the verdict.

Each detector gives a p-value under its own model of clean data, and holds a share ``w_d`` of the false-alarm
budget (shares sum to one; the label model holds the largest). A row is flagged when some detector's p-value is
at most ``w_d * fpr``: by the union bound, at most ``fpr`` of the clean rows are flagged (fewer when detectors
agree). The fused p-value is the weighted Bonferroni ``min(1, r)`` with ``r = min_d p_d / w_d``, and the score
is ``1 - r / r_max`` (``r_max = 1 / w`` of the primary detector), so a row is flagged exactly when its score is
at least ``1 - fpr / r_max``.

Detectors marked ``gated`` speak only when they would flag on their own; below that level their p-values do not
enter the score. Otherwise every weak secondary signal would blur the ranking that the primary detector gives
(a clean row is always unusual to some detector at the 5% level).

A detector that plainly sees poison earns a larger share. A block of junk rows (a tenth of the data, say) sits
in the tail that the detector's own null is estimated from, so each junk row's p-value is only moderately small
(1e-3 to 1e-2) and would stay below the flag level. When a detector holds far more small p-values than its null
allows (a binomial excess at 1e-3, Bonferroni over detectors and thresholds) its level rises to the
Benjamini-Hochberg threshold at ``FDR``: the largest p-value ``p_(k)`` with ``p_(k) <= FDR * k / n``, so that the
expected share of clean rows among its flags stays at most ``FDR``. Clean data seldom shows such an excess, so its false-alarm rate is as above.
Rows that carry a discovered backdoor trigger are explained (the trigger flags them) and stay out of that count:
judged on them, a detector that also sees the stamp (as farther from its class, or unusual) earned the raised
level from the stamp alone and spent its false-discovery allowance on clean rows (a fifth of bank_marketing
with 1% 'yes' stamped: 753 clean rows flagged by class_outlier at its raised level).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import binom

from .stats import binom_interval

VERDICTS = ("clean", "suspicious", "poisoned")


@dataclass(frozen=True)
class Fused:
    score: np.ndarray
    pvalue: np.ndarray
    flagged: np.ndarray
    threshold: float
    order: np.ndarray  # detector indices per row, most suspicious first
    levels: np.ndarray  # per-detector flag level w_d * fpr (or the adaptive level it earned)
    earned: np.ndarray  # the level each detector would earn if it could adapt (evidence for the verdict)
    led_by: np.ndarray | None = None  # per row, the detector that named it for review (-1: none); see ``fuse``


FDR = 0.2
ADAPT_MIN_ROWS = 200
ADAPT_MIN_FLAGS = 10
ADAPT_MAX_LEVEL = 0.05
ADAPT_ALPHA = 1e-3


def adapted_levels(pvalues: np.ndarray, levels: np.ndarray, adapts: np.ndarray | None = None) -> np.ndarray:
    """Per detector, the Benjamini-Hochberg level at ``FDR`` (at most ``ADAPT_MAX_LEVEL``) when it selects at
    least ``ADAPT_MIN_FLAGS`` rows, more than its own level would, and that many small p-values are a significant
    excess over the null; its own level otherwise."""
    n, d = pvalues.shape
    out = levels.astype(np.float64).copy()
    if n < ADAPT_MIN_ROWS:
        return out
    ranks = np.arange(1, n + 1)
    for j in range(d):
        if adapts is not None and not adapts[j]:
            continue
        p = np.sort(pvalues[:, j])
        ok = (p <= FDR * ranks / n) & (p <= ADAPT_MAX_LEVEL) & (ranks >= ADAPT_MIN_FLAGS)
        if not ok.any():
            continue
        k = int(np.flatnonzero(ok).max())
        t, count = float(p[k]), k + 1
        # the excess test is Bonferroni-corrected over the detectors and the n thresholds BH looked at
        if t > out[j] and binom.sf(count - 1, n, max(t, 1e-300)) <= ADAPT_ALPHA / (d * n):
            out[j] = t
    return out


def fuse(
    pvalues: np.ndarray,
    weights: np.ndarray,
    gated: np.ndarray,
    fpr: float,
    *,
    adapt: bool = True,
    adapts: np.ndarray | None = None,
    lead: np.ndarray | None = None,
    explained: np.ndarray | None = None,
) -> Fused:
    """``pvalues`` is rows x detectors; ``weights``, ``gated`` and ``adapts`` (which detectors may earn the
    adaptive level; all by default) have one entry per detector.

    ``lead`` (rows x detectors, ``inf`` where none) names rows for review without flagging them: a class-level
    finding short of its flag level (a representation split at p = 0.03) says which rows to look at first, but
    not at the false-alarm rate a flag promises. Such a row that is not flagged ranks right after the flagged
    rows (its score just under the threshold, ordered by its lead, 0 strongest); flags and p-values are unchanged.

    ``explained`` (one entry per row): rows another finding already accounts for (a discovered trigger's); the
    adaptive levels are earned on the other rows only.
    """
    w = np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    levels = w * fpr
    judged = pvalues if explained is None else pvalues[~np.asarray(explained, dtype=bool)]
    earned = adapted_levels(judged, levels) if adapt else levels
    if adapt:
        levels = earned if adapts is None else np.where(np.asarray(adapts, dtype=bool), earned, levels)
    # a detector's effective share of the budget is its level over fpr (its weight, unless it earned more)
    ratio = pvalues * (fpr / levels)
    silent = np.asarray(gated, dtype=bool)[None, :] & (pvalues > levels[None, :])
    ratio = np.where(silent, np.inf, ratio)
    r = ratio.min(axis=1)
    fused = np.minimum(1.0, r)
    # The score rescales the uncapped ratio to [0, 1] so that rows above the cap keep their order (the primary
    # detector's p-value still ranks them): score = 1 - r / r_max, with r_max = 1 / (smallest ungated share).
    ungated = ~np.asarray(gated, dtype=bool)
    r_max = float(1.0 / w[ungated].min()) if ungated.any() else 1.0
    r = np.where(np.isfinite(r), r, r_max)
    r_rank, led_by = r, None
    if lead is not None and np.isfinite(lead).any():
        best = lead.min(axis=1)
        led = np.isfinite(best) & (fused > fpr)
        r_rank = np.where(led, np.minimum(r, fpr * (1.0 + np.clip(best, 1e-12, 1.0))), r)
        led_by = np.where(led, lead.argmin(axis=1), -1)
    return Fused(
        score=np.clip(1.0 - r_rank / r_max, 0.0, 1.0),
        pvalue=fused,
        flagged=fused <= fpr,
        threshold=float(1.0 - fpr / r_max),
        order=np.argsort(ratio, axis=1, kind="stable"),
        levels=levels,
        earned=earned,
        led_by=led_by,
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


def row_reasons(reasons: np.ndarray, pvalues: np.ndarray, fused: Fused, names: list[str]) -> np.ndarray:
    """Each row's reasons (``top_reasons``); a flagged row always says which detector flagged it, even where that
    detector wrote no sentence for it; a row with nothing to say reads 'nothing unusual'."""
    out = top_reasons(reasons, pvalues, fused.order)
    if fused.led_by is not None:  # a row named for review says by what, even above the reason level
        led = np.flatnonzero(fused.led_by >= 0)
        said = reasons[led, fused.led_by[led]]
        led, said = led[said != ""], said[said != ""]
        out[led] = np.where(out[led] == "", said, out[led] + "; " + said)
    silent = np.flatnonzero(fused.flagged & (out == ""))
    if silent.size:
        first = fused.order[silent, 0]
        out[silent] = [
            f"{names[j]} p-value {pvalues[i, j]:.2g}, below its flag level {fused.levels[j]:.2g}"
            for i, j in zip(silent, first, strict=True)
        ]
    return np.where(out == "", "nothing unusual", out)


@dataclass(frozen=True)
class Excess:
    """Flags of one detector beyond what clean data would give."""

    detector: str
    flagged: int
    expected: float
    fraction: float
    low: float
    high: float
    pvalue: float
    # False: counted at the level the detector would earn, for the verdict only (its rows are not flagged there)
    flags: bool = True


def excess(detector: str, flagged: int, n: int, level: float, *, flags: bool = True) -> Excess:
    lo, hi = binom_interval(flagged, n)
    p = float(binom.sf(flagged - 1, n, level)) if flagged > 0 else 1.0
    return Excess(
        detector=detector,
        flagged=flagged,
        expected=level * n,
        fraction=max(0.0, flagged / n - level),
        low=max(0.0, lo - level),
        high=max(0.0, hi - level),
        pvalue=p,
        flags=flags,
    )


def verdict(
    excesses: list[Excess], n_flagged: int, n: int, fpr: float, worse_sources: list[str]
) -> tuple[str, list[str]]:
    """Judge the data set from per-detector excess flags.

    Each detector's flag count is compared with the count its own null predicts for clean data (a one-sided
    binomial test, Bonferroni over detectors). ``poisoned``: some detector flags significantly more than twice
    its clean rate and the excess is at least a tenth of a percent of the rows. ``suspicious``: a significant
    excess, or a source flagged more than the rest.
    """
    alpha = 1e-3 / max(len(excesses), 1)
    evidence: list[str] = []
    level = "clean"
    for ex in sorted(excesses, key=lambda e: e.pvalue):
        if ex.pvalue >= alpha or ex.flagged < 5:
            continue
        strong = ex.flagged > 2 * ex.expected and ex.low >= 0.001 and ex.flagged >= 10
        what = "rows flagged" if ex.flags else "rows beyond its null (not flagged at that level)"
        evidence.append(
            f"{ex.detector}: {ex.flagged} {what} where clean data would give about {ex.expected:.0f} "
            f"(at least {ex.low:.2%} of the rows beyond chance)"
        )
        if strong:
            level = "poisoned"
        elif level == "clean":
            level = "suspicious"
    if worse_sources:
        level = "suspicious" if level == "clean" else level
        evidence += [f"source '{s}' is flagged significantly more than the other sources" for s in worse_sources]
    if level == "clean":
        evidence.append(
            f"{n_flagged} rows flagged ({n_flagged / n:.2%}), within the {fpr:.1%} false-alarm rate of clean data"
        )
    return level, evidence
