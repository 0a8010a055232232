"""Slices of a test table, and the search for the ones where a model is weak or got worse.

Targeted poisoning hurts one segment and leaves the average alone, so the search looks at every segment a person
would name: one condition (a category, a numeric quartile bin, a missing value) or two conditions on different
columns, each held by at least ``min_support`` rows. Counts for all of them come from two matrix products of the
(rows x conditions) indicator matrix, so tens of thousands of candidate slices cost a second.

* Weak slices: the error rate inside the slice against the rest of the rows (one-sided two-proportion z test).
* Slice regressions: the new model against the baseline on the same rows (one-sided exact McNemar test on the
  rows where exactly one of the two is right).

Either way every candidate is tested and the p-values are corrected together (Benjamini-Hochberg), so the share
of false discoveries among the reported slices stays below ``alpha`` however many slices were tried. A two-condition
slice is reported only when it is significantly worse than the rest of each of its one-condition parents;
otherwise it repeats what a parent says. Slices holding the same rows as another are tested once.
"""

from __future__ import annotations

import difflib
import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import binom, norm

from .errors import InputError
from .stats import benjamini_hochberg

MAX_VALUES = 20  # most frequent categories per column taken as conditions
DISTINCT_AS_VALUES = 20  # numeric columns with at most this many values (codes, counts): one condition per value
MAX_PAIRS = 50_000
PARENT_ALPHA = 0.05
_OPS = ("<=", ">=", "!=", "=", "<", ">")


@dataclass(frozen=True)
class Condition:
    """One condition on a column: ``op`` is one of = != < <= > >=, ``range`` (value <= x < high) or ``missing``."""

    column: str
    op: str
    value: Any = None
    high: Any = None

    def mask(self, frame: pd.DataFrame) -> np.ndarray:
        s = frame[self.column]
        if self.op == "missing":
            return s.isna().to_numpy()
        numeric = pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)
        if self.op in ("=", "!=") and not (numeric and _is_number(self.value)):
            eq = (s.astype("string").str.strip() == str(self.value).strip()).fillna(False).to_numpy(dtype=bool)
            return eq if self.op == "=" else ~eq & s.notna().to_numpy()
        x = pd.to_numeric(s, errors="coerce").to_numpy(dtype=float)
        v = float(self.value)
        with np.errstate(invalid="ignore"):
            if self.op == "range":
                return (x >= v) & (x < float(self.high))
            return {
                "=": np.isclose(x, v, rtol=1e-9, atol=0.0),
                "!=": ~np.isclose(x, v, rtol=1e-9, atol=0.0) & np.isfinite(x),
                "<": x < v,
                "<=": x <= v,
                ">": x > v,
                ">=": x >= v,
            }[self.op]

    def describe(self) -> str:
        if self.op == "missing":
            return f"{self.column} is missing"
        if self.op == "range":
            return f"{_fmt(self.value)} <= {self.column} < {_fmt(self.high)}"
        return f"{self.column} {self.op} {_fmt(self.value)}"

    def to_dict(self) -> dict[str, Any]:
        out = {"column": self.column, "op": self.op, "value": _plain(self.value)}
        if self.op == "range":
            out["high"] = _plain(self.high)
        return out


@dataclass(frozen=True)
class Slice:
    """Rows that meet every condition."""

    conditions: tuple[Condition, ...]

    def mask(self, frame: pd.DataFrame) -> np.ndarray:
        out = np.ones(len(frame), dtype=bool)
        for c in self.conditions:
            out &= c.mask(frame)
        return out

    def describe(self) -> str:
        return " and ".join(c.describe() for c in self.conditions)

    def to_dict(self) -> dict[str, Any]:
        return {"slice": self.describe(), "conditions": [c.to_dict() for c in self.conditions]}


def _is_number(v: Any) -> bool:
    if isinstance(v, bool):
        return False
    if isinstance(v, int | float | np.number):
        return True
    try:
        float(str(v))
    except ValueError:
        return False
    return True


def _fmt(v: Any) -> str:
    if isinstance(v, float | np.floating):
        return f"{float(v):.4g}"
    return repr(v) if isinstance(v, str) else str(v)


def _plain(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    return v


def parse_slice(spec: str | Slice, frame: pd.DataFrame, *, name: str = "--slice") -> Slice:
    """``"education=Bachelors"``, ``"age>=40 and sex=Female"`` (also ``&``) -> a Slice; columns are checked."""
    if isinstance(spec, Slice):
        return spec
    parts = [p for p in re.split(r"\s+and\s+|\s*&\s*", str(spec).strip()) if p.strip()]
    if not parts:
        raise InputError(f"{name}: empty slice; write it as COL=VALUE, for example --slice 'education=Bachelors'.")
    conds = []
    for part in parts:
        m = re.match(r"^\s*(.+?)\s*(<=|>=|!=|=|<|>)\s*(.*?)\s*$", part)
        if not m or not m.group(3):
            raise InputError(
                f"{name}: cannot read the condition {part!r} of slice {spec!r}; write COL=VALUE, COL!=VALUE or COL<NUMBER "
                "(<=, >, >= too), joined by 'and'."
            )
        col, op, raw = m.group(1).strip(), m.group(2), m.group(3).strip().strip("'\"")
        if col not in frame.columns:
            close = difflib.get_close_matches(col, [str(c) for c in frame.columns], n=3)
            hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise InputError(f"{name}: slice {spec!r} names column '{col}', which the data does not have.{hint}")
        numeric = pd.api.types.is_numeric_dtype(frame[col]) and not pd.api.types.is_bool_dtype(frame[col])
        if op in ("<", "<=", ">", ">=") and not (numeric and _is_number(raw)):
            raise InputError(f"{name}: slice {spec!r}: '{op}' needs a numeric column and a number; '{col}' = {raw!r}.")
        value: Any = float(raw) if numeric and _is_number(raw) else raw
        conds.append(Condition(col, op, value))
    return Slice(tuple(conds))


def candidate_conditions(
    frame: pd.DataFrame, columns: dict[str, str], *, min_support: int, bins: int = 4
) -> tuple[list[Condition], np.ndarray]:
    """One-condition slices with at least ``min_support`` rows, and their (rows x conditions) indicator matrix."""
    conds: list[Condition] = []
    masks: list[np.ndarray] = []
    for col, kind in columns.items():
        s = frame[col]
        found: list[Condition] = []
        if kind in ("categorical", "boolean"):
            counts = s.astype("string").str.strip().value_counts()
            found = [Condition(col, "=", v) for v in counts.index[:MAX_VALUES] if counts[v] >= min_support]
        elif kind == "numeric":
            x = pd.to_numeric(s, errors="coerce").to_numpy(dtype=float)
            fin = x[np.isfinite(x)]
            values, counts = np.unique(fin, return_counts=True)
            if len(values) <= DISTINCT_AS_VALUES:
                found = [Condition(col, "=", float(v)) for v, c in zip(values, counts, strict=True) if c >= min_support]
            elif fin.size:
                edges = np.unique(np.quantile(fin, np.linspace(0, 1, bins + 1)[1:-1]))
                found = [Condition(col, "<", float(edges[0]))]
                found += [Condition(col, "range", float(a), float(b)) for a, b in itertools.pairwise(edges)]
                found.append(Condition(col, ">=", float(edges[-1])))
        if kind in ("categorical", "boolean", "numeric") and s.isna().sum() >= min_support:
            found.append(Condition(col, "missing"))
        for c in found:
            m = c.mask(frame)
            if m.sum() >= min_support:
                conds.append(c)
                masks.append(m)
    C = np.column_stack(masks).astype(np.float32) if masks else np.zeros((len(frame), 0), dtype=np.float32)
    return conds, C


@dataclass
class Candidates:
    """Every one- and two-condition slice with enough support, as index pairs into the condition list."""

    conditions: list[Condition]
    C: np.ndarray  # rows x conditions, float32 0/1
    i: np.ndarray  # first condition of each candidate
    j: np.ndarray  # second condition, or -1 for a one-condition slice
    support: np.ndarray

    @classmethod
    def build(
        cls, frame: pd.DataFrame, columns: dict[str, str], *, min_support: int, max_pairs: int = MAX_PAIRS
    ) -> Candidates:
        conds, C = candidate_conditions(frame, columns, min_support=min_support)
        n, m = C.shape
        S = C.T @ C
        col_id = np.asarray(pd.factorize(pd.Index([c.column for c in conds]))[0]) if conds else np.zeros(0, int)
        single = np.diag(S).copy()
        keep = single <= n - min_support
        # the same rows as an earlier condition (education = Bachelors and education_num = 13): test once
        same = (S == single[:, None]) & (S == single[None, :])
        dup = np.triu(same, k=1).any(axis=0)
        keep &= ~dup
        si = np.flatnonzero(keep)
        ii, jj = np.triu_indices(m, k=1)
        ok = keep[ii] & keep[jj] & (col_id[ii] != col_id[jj])
        s_pair = S[ii, jj]
        ok &= (s_pair >= min_support) & (s_pair < single[ii]) & (s_pair < single[jj])
        ii, jj, s_pair = ii[ok], jj[ok], s_pair[ok]
        if len(ii) > max_pairs:  # keep the best-supported pairs: they are the ones a test can judge
            top = np.sort(np.argsort(-s_pair, kind="stable")[:max_pairs])
            ii, jj, s_pair = ii[top], jj[top], s_pair[top]
        i = np.concatenate([si, ii])
        j = np.concatenate([np.full(len(si), -1), jj])
        support = np.concatenate([single[si], s_pair]).astype(np.int64)
        return cls(conditions=conds, C=C, i=i, j=j, support=support)

    def __len__(self) -> int:
        return len(self.i)

    def sums(self, v: np.ndarray) -> np.ndarray:
        """Sum of ``v`` over the rows of every candidate."""
        if not len(self):
            return np.zeros(0)
        v = np.asarray(v, dtype=np.float32)
        P = self.C.T @ (self.C * v[:, None])
        out = P[self.i, np.where(self.j < 0, self.i, self.j)]
        return out.astype(np.float64)

    def single_sums(self, v: np.ndarray) -> np.ndarray:
        return (self.C.T @ np.asarray(v, dtype=np.float32)).astype(np.float64)

    def slice(self, k: int) -> Slice:
        a = self.conditions[self.i[k]]
        return Slice((a,) if self.j[k] < 0 else (a, self.conditions[self.j[k]]))


def _welch_z(sum1: Any, sq1: Any, n1: Any, sum2: Any, sq2: Any, n2: Any) -> np.ndarray:
    """z statistic of mean(group 1) - mean(group 2) from sums and sums of squares (variance floored at 1/(n+2))."""
    n1, n2 = np.maximum(n1, 1), np.maximum(n2, 1)
    m1, m2 = sum1 / n1, sum2 / n2
    v1 = np.maximum(sq1 / n1 - m1**2, 1.0 / (n1 + 2))
    v2 = np.maximum(sq2 / n2 - m2**2, 1.0 / (n2 + 2))
    return (m1 - m2) / np.sqrt(v1 / n1 + v2 / n2)


def _welch_p(sum1: Any, sq1: Any, n1: Any, sum2: Any, sq2: Any, n2: Any) -> np.ndarray:
    """One-sided p-value that the mean of group 1 exceeds the mean of group 2."""
    return norm.sf(_welch_z(sum1, sq1, n1, sum2, sq2, n2))


def _beats_parents(cand: Candidates, v_sum: np.ndarray, v_sq: np.ndarray, single_sum, single_sq) -> np.ndarray:
    """For two-condition slices: mean of ``v`` significantly higher than in the rest of each parent."""
    out = np.ones(len(cand), dtype=bool)
    pair = cand.j >= 0
    if not pair.any():
        return out
    n = cand.support[pair].astype(float)
    single_n = cand.C.sum(axis=0).astype(float)
    for parent in (cand.i[pair], cand.j[pair]):
        rest = single_n[parent] - n
        p = _welch_p(v_sum[pair], v_sq[pair], n, single_sum[parent] - v_sum[pair], single_sq[parent] - v_sq[pair], rest)
        out[np.flatnonzero(pair)] &= (p < PARENT_ALPHA) & (rest >= 5)
    return out


def weak_slices(cand: Candidates, correct: np.ndarray, *, alpha: float) -> pd.DataFrame:
    """Every candidate with its error rate, the rest's, the one-sided p-value and the BH q-value; significant
    ones that say something their parents do not are marked ``reported``."""
    n = len(correct)
    err = 1.0 - np.asarray(correct, dtype=np.float64)
    e = cand.sums(err)
    s = cand.support.astype(float)
    E = err.sum()
    p1, p0 = e / s, (E - e) / (n - s)
    pooled = E / n
    se = np.sqrt(max(pooled * (1 - pooled), 1e-12) * (1 / s + 1 / (n - s)))
    z = (p1 - p0) / se
    p = norm.sf(z)
    q = benjamini_hochberg(p)
    single_e = cand.single_sums(err)
    new_info = _beats_parents(cand, e, e, single_e, single_e)
    return pd.DataFrame(
        {
            "k": np.arange(len(cand)),
            "support": cand.support,
            "error": p1,
            "rest_error": p0,
            "effect": p1 - p0,
            "z": z,
            "p_value": p,
            "q_value": q,
            "significant": q <= alpha,
            "reported": (q <= alpha) & new_info & (p1 > p0),
        }
    )


def slice_regressions(
    cand: Candidates, correct_new: np.ndarray, correct_base: np.ndarray, *, alpha: float
) -> pd.DataFrame:
    """Every candidate with the accuracy change new - baseline, the one-sided exact McNemar p-value (new worse)
    and the BH q-value; ``reported`` as in ``weak_slices``. ``z`` contrasts the slice's drop with the drop in the
    rest of the rows, so that a model worse everywhere does not bury the segment it is worst in."""
    a = np.asarray(correct_new, dtype=bool)
    b = np.asarray(correct_base, dtype=bool)
    worse = (~a & b).astype(np.float64)
    better = (a & ~b).astype(np.float64)
    nw, nb = cand.sums(worse), cand.sums(better)
    s = cand.support.astype(float)
    disc = nw + nb
    p = np.where(disc > 0, binom.sf(nw - 1, disc, 0.5), 1.0)
    q = benjamini_hochberg(p)
    # drop = baseline accuracy - new accuracy = mean of (worse - better); its square is worse + better
    d_sum, d_sq = nw - nb, nw + nb
    sw, sb = cand.single_sums(worse), cand.single_sums(better)
    new_info = _beats_parents(cand, d_sum, d_sq, sw - sb, sw + sb)
    base_acc = cand.sums(b.astype(np.float64)) / s
    n = len(a)
    tw, tb = worse.sum(), better.sum()
    rest_drop = np.where(n > s, (tw - nw - (tb - nb)) / np.maximum(n - s, 1), 0.0)
    # how clearly the slice lost more than the rest of the rows did: ranks the slices
    z = _welch_z(nw - nb, nw + nb, s, (tw - nw) - (tb - nb), (tw - nw) + (tb - nb), n - s)
    return pd.DataFrame(
        {
            "k": np.arange(len(cand)),
            "support": cand.support,
            "baseline": base_acc,
            "new": base_acc + (nb - nw) / s,
            "drop": (nw - nb) / s,
            "rest_drop": rest_drop,
            "excess_drop": (nw - nb) / s - rest_drop,
            "z": z,
            "worse_rows": nw,
            "better_rows": nb,
            "p_value": p,
            "q_value": q,
            "significant": (q <= alpha) & (nw > nb),
            "reported": (q <= alpha) & (nw > nb) & new_info,
        }
    )


def rank(table: pd.DataFrame, top: int) -> pd.DataFrame:
    """Reported (significant, not redundant) slices, the most clearly worse than the rest of the rows first.

    The score is the z statistic of the slice against the rest: the effect (excess error rate, or excess accuracy
    drop) over its standard error. It weighs the effect by the evidence for it, so neither a 150-row slice with a
    large but barely significant drop nor a slice of most of the data with a small one comes first."""
    rep = table[table["reported"]].copy()
    rep["rank_score"] = rep["z"]
    return rep.sort_values(["rank_score", "support"], ascending=[False, False]).head(top)


def user_slices(specs: Sequence[str | Slice], frame: pd.DataFrame) -> list[Slice]:
    return [parse_slice(s, frame) for s in specs]


__all__ = [
    "Candidates",
    "Condition",
    "Slice",
    "candidate_conditions",
    "parse_slice",
    "rank",
    "slice_regressions",
    "user_slices",
    "weak_slices",
]
