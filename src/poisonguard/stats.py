"""Null models that turn a detector statistic into a p-value.

Two kinds of null:

* ``class_probability_null``: for detectors that estimate p(class | row). Under the hypothesis that labels
  follow those probabilities (natural ambiguity), the chance that a row's label is at least as unlikely as the
  observed one is a pooled tail probability. A row whose label is no less likely than its natural ambiguity
  implies is not flagged, which is what keeps a noisy but clean data set from being flagged wholesale.
* ``TailNull``: for unsupervised statistics (distances, isolation). The body of the distribution comes from the
  data itself; beyond its 75th percentile the tail is extrapolated as the exponential through the median and
  the 75th percentile, so that a group of far-out rows (up to a quarter of the data) cannot hide itself by
  pulling the empirical quantiles up.
* ``RarityNull``: for counts of rare items in a row (words no other row uses). Rare words cluster in real rows
  (numbers, names, another language), so the count is beta-binomial, not binomial; the fit reads only rows
  where at most half the items are rare, so junk rows (all items new) cannot widen the null that judges them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.stats import betabinom, binom

EPS = 1e-12


@dataclass(frozen=True)
class ClassProbabilityNull:
    """Pooled CDF of p(label) when labels are drawn from the estimated class probabilities."""

    grid: np.ndarray
    cdf: np.ndarray

    @classmethod
    def fit(cls, proba: np.ndarray) -> ClassProbabilityNull:
        flat = proba.ravel().astype(np.float64)
        order = np.argsort(flat, kind="stable")
        v = flat[order]
        cdf = np.cumsum(v) / proba.shape[0]
        return cls(grid=v, cdf=cdf)

    def pvalue(self, p_obs: np.ndarray) -> np.ndarray:
        """P(null label prob <= observed label prob), averaged over rows."""
        idx = np.searchsorted(self.grid, p_obs, side="right") - 1
        out = np.where(idx >= 0, self.cdf[np.clip(idx, 0, None)], 0.0)
        # a vanishing tie-breaker keeps rows ordered by their label probability where the pooled CDF is flat
        return out + 1e-9 * np.asarray(p_obs, dtype=np.float64)


TRIM_LEVEL = 0.05
TRIM_ROUNDS = 3


@dataclass(frozen=True)
class TailNull:
    """Empirical body with a stretched-exponential tail beyond the 75th percentile.

    Above the median the tail is ``p(x) = 1/2 * exp(-ln 2 * ((x - q50) / (q75 - q50)) ** k)``: through
    P(> q50) = 1/2 and P(> q75) = 1/4, both of which survive 25% contamination. ``k = 1`` is an exponential tail,
    safe for heavy-tailed statistics. ``fit(..., shape=True)`` also reads the 90th percentile to set ``k``
    (between 1 and 2, a Gaussian-like tail): light-tailed statistics such as isolation scores then get p-values
    that are not ten times too large at the far end, as long as under a tenth of the rows are junk.
    """

    sample: np.ndarray
    q50: float
    q75: float
    k: float = 1.0

    @classmethod
    def fit(cls, stat: np.ndarray, *, shape: bool = False, trim: bool = False, min_k: float = 1.0) -> TailNull:
        """``trim=True``: while the fitted tail holds significantly more than 5% of the rows at p <= 5%
        (binomial, 1e-3), refit without those rows (at most three times): a block of junk in the tail otherwise
        stretches the null it is judged by. ``min_k`` below 1 lets ``shape`` fit a tail heavier than exponential
        (for statistics whose tail outgrows their body, such as a median of skewed columns)."""
        null = cls._fit(stat, shape=shape, min_k=min_k)
        if not trim:
            return null
        s = null.sample
        for _ in range(TRIM_ROUNDS):
            low = null.pvalue(s) <= TRIM_LEVEL
            c = int(low.sum())
            if c < 10 or binom.sf(c - 1, s.size, TRIM_LEVEL) > 1e-3 or c > 0.4 * s.size:
                break
            s = s[~low]
            null = cls._fit(s, shape=shape, min_k=min_k)
        return null

    @classmethod
    def _fit(cls, stat: np.ndarray, *, shape: bool, min_k: float = 1.0) -> TailNull:
        s = np.sort(np.asarray(stat, dtype=np.float64)[np.isfinite(stat)])
        if s.size == 0:
            s = np.zeros(1)
        q50, q75, q90 = np.quantile(s, [0.5, 0.75, 0.9])
        if not q75 > q50:
            mad = float(np.median(np.abs(s - q50)))
            q75 = q50 + (mad if mad > 0 else max(float(np.std(s)), 1e-6)) * np.log(2.0)
        k = 1.0
        if shape and q90 > q75:
            k = float(np.clip(np.log(np.log(5.0) / np.log(2.0)) / np.log((q90 - q50) / (q75 - q50)), min_k, 2.0))
        return cls(sample=s, q50=float(q50), q75=float(q75), k=k)

    @property
    def beta(self) -> float:
        """Scale of the exponential tail (``k = 1``)."""
        return (self.q75 - self.q50) / np.log(2.0)

    def pvalue(self, stat: np.ndarray) -> np.ndarray:
        stat = np.asarray(stat, dtype=np.float64)
        n = self.sample.size
        emp = (n - np.searchsorted(self.sample, stat, side="left") + 1) / (n + 1)
        above = stat > self.q75
        tail = np.ones_like(stat)
        r = (stat[above] - self.q50) / (self.q75 - self.q50)
        tail[above] = 0.5 * np.exp(-np.log(2.0) * r**self.k)
        # the tail starts at 0.25 (r = 1); in the body the empirical p-value stays at or above it, which only
        # matters for small samples full of ties, where it could dip below and make p grow with the statistic
        return np.clip(np.where(above, tail, np.maximum(emp, 0.25)), EPS, 1.0)


RARITY_FIT_ROWS = 50_000


def rare_is_the_norm(rare: np.ndarray, total: np.ndarray) -> bool:
    """Whether most rows with two or more items have more than half of them rare: a column of codes, ids or
    names, where a word no other row holds is the rule, not a sign of junk."""
    rare = np.asarray(rare, dtype=np.int64)
    total = np.asarray(total, dtype=np.int64)
    informative = total >= 2
    return bool(informative.any() and (informative & (rare <= total // 2)).sum() < 0.5 * informative.sum())


@dataclass(frozen=True)
class RarityNull:
    """Beta-binomial null for ``rare`` of ``total`` items in a row being rare.

    Fitted by maximum likelihood truncated at half: only rows with ``rare <= total // 2`` enter, each with its
    likelihood conditioned on that event. For clean rows the estimate stays consistent (the truncation is part
    of the model); rows that are mostly new items, whatever their share of the data, carry no weight (a plain
    fit would take a quarter of junk rows for natural clustering and stop flagging them; see
    ``test_rarity_null_is_calibrated_and_junk_rows_cannot_widen_it``).
    """

    a: float
    b: float

    @classmethod
    def fit(cls, rare: np.ndarray, total: np.ndarray, *, seed: int = 0) -> RarityNull | None:
        """``None`` when too few rows carry information (two or more items, at most half of them rare), or when
        they are not most of the rows with two or more items: then rare items are the column's norm (codes,
        names), not a sign of junk, and a null fitted on the exceptions would flag the rule."""
        rare = np.asarray(rare, dtype=np.int64)
        total = np.asarray(total, dtype=np.int64)
        top = total // 2
        informative = total >= 2
        keep = np.flatnonzero(informative & (rare <= top))
        if keep.size < 50 or rare_is_the_norm(rare, total):
            return None
        if keep.size > RARITY_FIT_ROWS:
            keep = np.random.default_rng(seed).choice(keep, RARITY_FIT_ROWS, replace=False)
        r, k, t = rare[keep], total[keep], top[keep]
        mean = max(float(r.sum()) / max(float(k.sum()), 1.0), 1e-3)

        def nll(theta: np.ndarray) -> float:
            a, b = np.exp(np.clip(theta, -12, 12))
            ll = betabinom.logpmf(r, k, a, b) - betabinom.logcdf(t, k, a, b)
            return float(-np.sum(ll))

        res = minimize(nll, np.log([mean * 2, (1 - mean) * 2]), method="Nelder-Mead", options={"xatol": 1e-3})
        a, b = np.exp(np.clip(res.x, -12, 12))
        return cls(float(a), float(b))

    @property
    def mean(self) -> float:
        return self.a / (self.a + self.b)

    def pvalue(self, rare: np.ndarray, total: np.ndarray) -> np.ndarray:
        """P(at least ``rare`` of ``total`` rare) for a clean row; 1 for rows without items."""
        rare = np.asarray(rare, dtype=np.int64)
        total = np.asarray(total, dtype=np.int64)
        p = betabinom.sf(rare - 1, np.maximum(total, 1), self.a, self.b)
        return np.where((total > 0) & (rare > 0), p, 1.0)


def separated_block(stat: np.ndarray, *, min_gap: float = 1.5, max_share: float = 0.4) -> float | None:
    """The lower edge of a block of values at the top that a wide empty gap sets apart from the rest, or None.

    A block of junk rows that is a large share of the data fills the top of any null fitted to the data, but a
    statistic that measures *how far* a row lies keeps it apart: an empty stretch of at least ``min_gap``
    interquartile ranges, with at least 1% of the rows (and 10) above it and at most ``max_share``. A continuous
    tail, however heavy, has no such gap where 1% of the rows still lie beyond it.
    """
    s = np.sort(np.asarray(stat, dtype=np.float64)[np.isfinite(stat)])
    n = s.size
    q25, q75 = np.quantile(s, [0.25, 0.75]) if n else (0.0, 0.0)
    lo, hi = int(np.floor((1 - max_share) * n)), n - max(10, int(np.ceil(0.01 * n)))
    if hi <= lo or not q75 > q25:
        return None
    gaps = np.diff(s[lo : hi + 1])
    i = int(np.argmax(gaps))
    if gaps[i] < min_gap * (q75 - q25):
        return None
    return float(s[lo + i + 1])


def sidak(pmin: np.ndarray, k: int) -> np.ndarray:
    """Probability that the smallest of k independent uniform p-values is at most ``pmin``."""
    return -np.expm1(k * np.log1p(-np.clip(pmin, 0.0, 1.0 - 1e-16)))


def binom_interval(k: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a proportion."""
    if n <= 0:
        return 0.0, 1.0
    p = k / n
    den = 1 + z**2 / n
    centre = (p + z**2 / (2 * n)) / den
    half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / den
    lo = 0.0 if k <= 0 else max(0.0, centre - half)
    hi = 1.0 if k >= n else min(1.0, centre + half)
    return float(lo), float(hi)


def benjamini_hochberg(p: np.ndarray) -> np.ndarray:
    """BH-adjusted p-values (q-values): reject where q <= alpha controls the false discovery rate at alpha."""
    p = np.asarray(p, dtype=np.float64)
    if p.size == 0:
        return p.copy()
    order = np.argsort(p, kind="stable")
    ranked = p[order] * p.size / np.arange(1, p.size + 1)
    q = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty_like(p)
    out[order] = np.clip(q, 0.0, 1.0)
    return out


def holm(p: np.ndarray) -> np.ndarray:
    """Holm-adjusted p-values: reject where adjusted p <= alpha controls the family-wise error rate at alpha."""
    p = np.asarray(p, dtype=np.float64)
    if p.size == 0:
        return p.copy()
    order = np.argsort(p, kind="stable")
    ranked = p[order] * (p.size - np.arange(p.size))
    adj = np.maximum.accumulate(ranked)
    out = np.empty_like(p)
    out[order] = np.clip(adj, 0.0, 1.0)
    return out
