"""Backdoor trigger discovery on tables: value combinations that travel with one class and nowhere else.

A feature-trigger backdoor stamps the same values on two or three columns of every poisoned row (an extreme
value, a rare category, a quantile value) and gives those rows one class, either by relabelling them (dirty
label) or by choosing rows of that class (clean label). Whatever the trigger's values, the stamped rows leave one
trace that clean data rarely shows: inside the target class, the trigger values co-occur far more than the two
columns' values co-occur anywhere else.

The miner turns every column into tokens (exact values held by at least ``min_support`` rows and at most
``max_share`` of them: spikes and categories, never the modal value), counts co-occurrences of token pairs per
class with one sparse product, and keeps a pair as a trigger when, in one class,

* it is held by at least ``min_support`` rows of that class, almost all of its carriers are in that class, and
  the co-occurrence is improbable under independence of the two tokens within the class (the exact hypergeometric tail,
  Bonferroni-corrected over every pair and class examined);
* the two tokens are strongly tied in that class (phi coefficient >= ``min_phi``) but not in the other classes
  (there at most half as strongly, and not clearly at all: a significant phi of 0.1 or more is a natural tie):
  natural dependencies (a code and its description, neighbouring pixels) are tied everywhere; a stamped trigger
  is tied only where it was stamped.

Given a ``rest_check`` (the scan's: a model blind to the candidate's columns), pairs tied only loosely in the
class (phi from ``WEAK_PHI``) are candidates too, for triggers made of values the class holds often anyway; they
stand only when the rest of their rows says another class (see ``discover``).

A trigger of three common values stamped on a few rows ties each pair of them too weakly for the pair test;
given a ``rest_check``, triples are mined too (``mine_triples``: the three together, improbable under independence
within the class) and stand like weak pairs, when the rest of their rows says another class.

Pairs that share tokens in the same class are merged, so a three-column trigger is reported once. Each round keeps
the most significant trigger and mining runs again without its rows (at most ``ROUNDS`` rounds): a heavy trigger rewrites its columns in
a fifth of the rows, which weakens natural ties in the other classes and would make them look class-specific. Single-column
triggers and triggers with jittered values are out of reach of this test, and so are in-range triggers on
grid-like data (hundreds of numeric columns such as pixels, whose class shapes tie ordinary values together):
there only out-of-range values take part, and image backdoors are a matter for embeddings; the label model still sees them when
the rest of the row contradicts the label.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.stats import hypergeom

MAX_TOKENS = 3000
MINE_SAMPLE = 50_000
MAX_TRIGGER_COLUMNS = 6
# on grid-like data (pixels) a patch stamps a block of neighbouring cells, and only out-of-range values take part
MAX_GRID_TRIGGER_COLUMNS = 64
ROUNDS = 5
FILLS_CLASS = 0.5  # a trigger on at least this share of its class's rows is taken out first (see ``discover``)
# weakly tied candidates (see ``discover``): the lowest tie examined, how many are checked, and the largest share
# of a candidate's rows that the rest of the row may put in its class
WEAK_PHI, WEAK_CHECKS, WEAK_MAX_AGREEMENT = 0.2, 5, 0.5
GRID_COLUMNS = 100
GRID_MIN_COLUMNS = 32  # below this, a table; from here, a grid when most columns share one range of values
GRID_SHARED_RANGE = 0.5
TIE = 0.1
# A backdoor needs enough stamped rows to be learnt: half a percent of the rows (at least 5, at most 500).
MIN_SUPPORT, SUPPORT_SHARE, SUPPORT_CAP = 5, 0.005, 500
MISSING = "<missing>"
RARE = "<rare>"  # the shared value of codes held by too few rows; never part of a trigger


RestCheck = Callable[["Trigger"], tuple[float, float]]
"""Judges a candidate trigger by the rest of its rows: the share of ``trigger.rows`` (positions in the mined rows)
that a model blind to the trigger's columns puts in its target class, and the p-value of so few under the share
it puts of the class's other rows."""


@dataclass(frozen=True)
class Trigger:
    """A discovered trigger: ``conditions`` (column -> value) that, held together, go with class ``target``."""

    conditions: dict[str, Any]
    target: Any
    support: int  # rows of the target class that carry every condition
    carriers: int  # rows that carry every condition, any class
    expected: float  # rows of the target class expected to carry it if the values were unrelated there
    pvalue: float  # Bonferroni-corrected
    specificity: float = 0.0  # tie in the target class minus tie in the others (phi coefficients)
    rest_agreement: float | None = None  # share of supporting rows a model without these columns puts in target
    rows: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64), repr=False, compare=False)
    # the value pairs that were tested (column, value, column, value); a row of the target class carrying any of
    # them is a trigger row, even where it lacks a column the trigger was completed with; none (a weakly tied
    # trigger): a trigger row carries every condition
    pairs: tuple[tuple[str, Any, str, Any], ...] = field(default=(), repr=False, compare=False)
    # "values": each column holds its value; "token": each (text) column contains the word
    kind: str = "values"

    @property
    def purity(self) -> float:
        return self.support / self.carriers if self.carriers else 0.0

    def describe(self) -> str:
        """The trigger in plain words."""
        if self.kind == "token":
            cond = " and ".join(f"{c} contains the word {v!r}" for c, v in self.conditions.items())
        else:
            cond = " and ".join(f"{c} = {_fmt(v)}" for c, v in self.conditions.items())
        text = (
            f"{cond} -> class '{self.target}': {self.support} rows, {self.purity:.0%} of the rows with these values "
            f"are that class (about {self.expected:.1f} expected if the values were unrelated)"
        )
        if self.rest_agreement is not None:
            text += (
                f"; without these {len(self.conditions)} columns a model puts only {self.rest_agreement:.0%} of them "
                f"in '{self.target}'"
                if self.rest_agreement < 0.5
                else f"; the rest of these rows agrees with '{self.target}' ({self.rest_agreement:.0%}): a "
                "clean-label trigger or a genuine rule"
            )
        return text

    def mask(self, frame: pd.DataFrame) -> np.ndarray:
        """Rows of ``frame`` that carry every condition."""
        out = np.ones(len(frame), dtype=bool)
        for col, value in self.conditions.items():
            out &= _contains_word(frame[col], value) if self.kind == "token" else _equals(frame[col], value)
        return out

    def apply(self, frame: pd.DataFrame) -> pd.DataFrame:
        """A copy of ``frame`` with the trigger stamped on every row."""
        out = frame.copy()
        for col, value in self.conditions.items():
            if self.kind == "token":
                out[col] = out[col].astype(object).where(out[col].notna(), "").astype(str) + f" {value}"
            else:
                out[col] = np.nan if value is None else value
        return out

    def attack_success_rate(
        self, predict: Callable[[pd.DataFrame], np.ndarray] | Any, frame: pd.DataFrame, labels: Sequence[Any]
    ) -> float:
        """Share of rows not of the target class whose prediction becomes the target once the trigger is stamped.

        ``predict`` is a fitted estimator (its ``predict`` is used) or a function from a frame to labels; it
        must accept the columns of ``frame``. Rows already predicted as the target are left out.
        """
        fn = predict.predict if hasattr(predict, "predict") else predict
        labels = np.asarray(labels).astype(str)
        before = np.asarray(fn(frame)).astype(str)
        keep = (labels != str(self.target)) & (before != str(self.target))
        if not keep.any():
            return float("nan")
        after = np.asarray(fn(self.apply(frame.loc[keep]))).astype(str)
        return float(np.mean(after == str(self.target)))

    def to_dict(self) -> dict[str, Any]:
        return {
            "conditions": {c: _jsonable(v) for c, v in self.conditions.items()},
            "target": _jsonable(self.target),
            "support": self.support,
            "carriers": self.carriers,
            "purity": round(self.purity, 4),
            "expected": round(self.expected, 3),
            "pvalue": float(f"{self.pvalue:.3g}"),
            "specificity": round(self.specificity, 4),
            "rest_agreement": None if self.rest_agreement is None else round(self.rest_agreement, 4),
            "kind": self.kind,
            "description": self.describe(),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Trigger:
        """A trigger from ``to_dict``'s output (a saved scan's summary.json), enough to ``mask``, ``apply`` and
        measure ``attack_success_rate``; rows and tested pairs are not saved."""
        try:
            conditions = dict(d["conditions"])
            target = d["target"]
        except (KeyError, TypeError) as exc:
            raise ValueError(f"a trigger needs 'conditions' (column -> value) and 'target'; got {d!r}") from exc
        if not conditions:
            raise ValueError("a trigger needs at least one condition")
        return cls(
            conditions=conditions,
            target=target,
            support=int(d.get("support", 0)),
            carriers=int(d.get("carriers", 0)),
            expected=float(d.get("expected", 0.0)),
            pvalue=float(d.get("pvalue", 1.0)),
            specificity=float(d.get("specificity", 0.0)),
            rest_agreement=d.get("rest_agreement"),
            kind=str(d.get("kind", "values")),
        )


def _fmt(v: Any) -> str:
    if v is None:
        return "missing"
    if isinstance(v, float):
        return f"{v:.6g}"
    return repr(v) if isinstance(v, str) else str(v)


def _jsonable(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v if isinstance(v, int | float | str | bool) or v is None else str(v)


def _contains_word(s: pd.Series, word: str) -> np.ndarray:
    """Rows whose text contains ``word`` as a whole token (case-insensitive, as the tokenizer reads it)."""
    text = s.astype("string").str.lower()
    return text.str.contains(rf"(?<!\w){re.escape(word.lower())}(?!\w)", regex=True).fillna(False).to_numpy(bool)


def _equals(s: pd.Series, value: Any) -> np.ndarray:
    if value is None:
        return s.isna().to_numpy()
    if isinstance(value, int | float | np.number) and not isinstance(value, bool):
        x = pd.to_numeric(s, errors="coerce").to_numpy(dtype=float)
        return np.isclose(x, float(value), rtol=1e-9, atol=0.0)
    return (s.astype("string").str.strip() == str(value).strip()).fillna(False).to_numpy(dtype=bool)


# --- tokens ---------------------------------------------------------------------------------------------------


@dataclass
class Tokens:
    """Per-column integer codes of exact values (missing has its own code) and the value behind each code."""

    codes: np.ndarray  # n x d int32
    values: list[np.ndarray]  # per column: code -> value (None for missing)
    columns: list[str]
    novel: list[np.ndarray]  # per column: code -> value lies far outside the column's other values
    numeric: list[bool]
    usable: list[np.ndarray]  # per column: code -> may take part (not the shared code of rare values)

    @cached_property
    def grid_like(self) -> bool:
        """Hundreds of numeric columns (pixels, spectra), or dozens that share one scale (the columns of a small
        image, 8 x 8 grey levels 0-16): measurements on one grid, tied by the shapes of each class. There every
        pair of ordinary values may be tied in one class only, so the pair test keeps only values far outside a
        column's range (see ``discover``). Tabular data with many numeric columns (word frequencies, amounts)
        has a different range in nearly every column."""
        if len(self.columns) < GRID_MIN_COLUMNS or np.mean(self.numeric) < 0.9:
            return False
        if len(self.columns) >= GRID_COLUMNS:
            return True
        ranges = []
        for vals, num in zip(self.values, self.numeric, strict=True):
            x = [float(v) for v in vals if num and isinstance(v, int | float | np.number) and not isinstance(v, bool)]
            if x:
                ranges.append((min(x), max(x)))
        if not ranges:
            return False
        return pd.Series(ranges).value_counts().iloc[0] >= GRID_SHARED_RANGE * len(self.columns)


def tokenize(frame: pd.DataFrame, columns: dict[str, str], *, min_count: int = MIN_SUPPORT) -> Tokens:
    """Exact-value codes of every numeric, boolean, datetime and categorical column (text columns are left out).

    Values held by fewer than ``min_count`` rows share one code that never takes part: a continuous column would
    otherwise keep a million one-row values."""
    used = [c for c, kind in columns.items() if kind != "text"]
    codes = np.empty((len(frame), len(used)), dtype=np.int32)
    values: list[np.ndarray] = []
    novel: list[np.ndarray] = []
    usable: list[np.ndarray] = []
    numeric: list[bool] = []
    for j, col in enumerate(used):
        s = frame[col]
        is_cat = columns[col] == "categorical"
        if is_cat:
            s = s.astype("string").str.strip().replace("", pd.NA)
        c, uniques = pd.factorize(s, use_na_sentinel=True)
        c = np.asarray(c, dtype=np.int64)
        missing = c < 0
        cnt = np.bincount(c[~missing], minlength=len(uniques))
        keep = np.flatnonzero(cnt >= min_count)
        rare, miss = len(keep), len(keep) + 1
        remap = np.full(max(len(uniques), 1), rare, dtype=np.int32)
        remap[keep] = np.arange(len(keep), dtype=np.int32)
        codes[:, j] = np.where(missing, miss, remap[np.clip(c, 0, None)])
        vals = np.empty(len(keep) + 2, dtype=object)
        vals[: len(keep)] = np.asarray(uniques, dtype=object)[keep]
        vals[rare], vals[miss] = RARE, None
        ok = np.ones(len(vals), dtype=bool)
        ok[rare] = False
        values.append(vals)
        usable.append(ok)
        numeric.append(not is_cat)
        nov = np.zeros(len(vals), dtype=bool)
        if not is_cat and len(keep):
            nov[: len(keep)] = _novel(s, vals[: len(keep)])
        novel.append(nov)
    return Tokens(codes=codes, values=values, columns=used, novel=novel, numeric=numeric, usable=usable)


def _novel(s: pd.Series, kept: np.ndarray) -> np.ndarray:
    """Per kept value: the column's largest or smallest value, when it lies more than two standard deviations of
    the other rows beyond all of them (an out-of-range stamp)."""
    out = np.zeros(len(kept), dtype=bool)
    try:
        x = pd.to_numeric(s, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        k = pd.to_numeric(pd.Series(kept, dtype=object), errors="coerce").to_numpy(dtype=float)
    except (TypeError, ValueError):
        return out
    x = x[np.isfinite(x)]
    if x.size < 3:
        return out
    for v, others in ((x.max(), x[x < x.max()]), (x.min(), x[x > x.min()])):
        # a value most rows hold is the column's normal, however far the few other values lie
        if others.size < 2 or others.size < x.size / 2:
            continue
        gap = abs(v - (others.max() if v > others.max() else others.min()))
        sd = float(others.std())
        if (gap > 2 * sd) if sd > 0 else gap > 0:
            out |= k == v
    return out


# --- mining ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PairPattern:
    col_a: int
    code_a: int
    col_b: int
    code_b: int
    cls: int
    support: int
    carriers: int
    expected: float
    pvalue: float  # Bonferroni-corrected
    log10_p: float  # uncorrected, kept where ``pvalue`` underflows to 0
    phi: float
    phi_other: float


def _phi(k: np.ndarray, na: np.ndarray, nb: np.ndarray, m: np.ndarray | float) -> np.ndarray:
    """Phi coefficient of two binary indicators from counts; where a token fills the whole group (phi undefined),
    the share of the larger token's rows that hold both (1 when a trigger is stamped on every row of a class)."""
    den = np.sqrt(na * nb * (m - na) * (m - nb))
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (k * m - na * nb) / den
        full = np.where((na == m) | (nb == m), k / np.maximum(np.maximum(na, nb), 1), 0.0)
    return np.where(den > 0, out, np.where(m > 0, full, 0.0))


@dataclass(frozen=True)
class _TokenMatrix:
    """Rows x tokens incidence (the values that may take part in a trigger) and their co-occurrence counts."""

    A: sparse.csr_matrix
    N: np.ndarray  # rows holding each token
    J: np.ndarray  # rows holding each pair of tokens
    col: np.ndarray  # column of each token
    code: np.ndarray  # code of each token in its column
    novel: np.ndarray  # whether each token is an out-of-range value
    class_n: np.ndarray

    @property
    def T(self) -> int:
        return len(self.col)


def _token_matrix(
    codes: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    *,
    min_support: int,
    max_share: float,
    max_tokens: int,
    eligible: Sequence[np.ndarray] | None,
    novel: Sequence[np.ndarray] | None,
) -> _TokenMatrix | None:
    """Per column, the codes held by enough rows but not by most rows, as one sparse incidence matrix."""
    n, d = codes.shape
    offsets = np.zeros(d + 1, dtype=np.int64)
    keep_parts = []
    for j in range(d):
        cnt = np.bincount(codes[:, j])
        ok = (cnt >= min_support) & (cnt <= max_share * n)
        if eligible is not None:
            ok &= eligible[j][: len(cnt)]
        keep_parts.append(ok)
        offsets[j + 1] = offsets[j] + len(cnt)
    keep = np.concatenate(keep_parts)
    flat = codes.astype(np.int64) + offsets[:-1][None, :]
    tok_of = np.full(len(keep), -1, dtype=np.int64)
    cand = np.flatnonzero(keep)
    if len(cand) < 2:
        return None
    class_n = np.bincount(y, minlength=n_classes).astype(np.float64)
    if len(cand) > max_tokens:
        # keep the tokens whose class mix departs most from the base rates (a trigger's tokens do)
        hit = keep[flat]
        r, c = np.nonzero(hit)
        tc = np.bincount(flat[r, c] * n_classes + y[r], minlength=len(keep) * n_classes).reshape(-1, n_classes)
        tc = tc[cand].astype(np.float64)
        nt = tc.sum(axis=1, keepdims=True)
        pi = class_n / n
        z = (tc - nt * pi) / np.sqrt(nt * pi * (1 - pi) + 1e-9)
        cand = cand[np.argsort(-z.max(axis=1), kind="stable")[:max_tokens]]
        cand.sort()
    tok_of[cand] = np.arange(len(cand))
    col_of_tok = np.searchsorted(offsets, cand, side="right") - 1
    code_of_tok = cand - offsets[col_of_tok]
    tok_novel = np.zeros(len(cand), dtype=bool)
    if novel is not None:
        for j in range(d):
            sel = col_of_tok == j
            if sel.any():
                tok_novel[sel] = novel[j][code_of_tok[sel]]
    t = tok_of[flat]
    r, c = np.nonzero(t >= 0)
    A = sparse.csr_matrix((np.ones(len(r), dtype=np.float32), (r, t[r, c])), shape=(n, len(cand)))
    return _TokenMatrix(
        A=A,
        N=np.asarray(A.sum(axis=0)).ravel(),
        J=(A.T @ A).toarray(),
        col=col_of_tok,
        code=code_of_tok,
        novel=tok_novel,
        class_n=class_n,
    )


def _class_pairs(
    tm: _TokenMatrix, y: np.ndarray, k: int, min_support: int
) -> tuple[sparse.csr_matrix, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Inside class ``k``: its rows' tokens, token counts and co-occurrences, and the token pairs (a < b) held by
    at least ``min_support`` of its rows with their phi there."""
    Ak = tm.A[y == k]
    Nk = np.asarray(Ak.sum(axis=0)).ravel()
    Jk = (Ak.T @ Ak).toarray()
    np.fill_diagonal(Jk, 0)
    a, b = np.nonzero(np.triu(Jk >= min_support, k=1))
    return Ak, Nk, Jk, a, b, _phi(Jk[a, b], Nk[a], Nk[b], tm.class_n[k])


def _class_ties(
    tm: _TokenMatrix,
    codes: np.ndarray,
    y: np.ndarray,
    k: int,
    Nk: np.ndarray,
    Jk: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    eligible: Sequence[np.ndarray] | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For token pairs (a, b) in class ``k``: their phi there, their phi in the other classes, and whether the tie
    is specific to ``k`` (not a natural tie that the other classes show too)."""
    n = len(y)
    m = tm.class_n[k]
    kk = Jk[a, b]
    phi = _phi(kk, Nk[a], Nk[b], m)
    carriers = tm.J[a, b]
    oa, ob, om = tm.N[a] - Nk[a], tm.N[b] - Nk[b], n - m
    phi_o = _phi(carriers - kk, oa, ob, om)
    # tied elsewhere too: a clear tie (phi >= TIE) that is hardly an accident of sampling (z >= 2) in the others
    tied_elsewhere = (phi_o >= TIE) & (phi_o * np.sqrt(om) >= 2)
    # An ordinary value that the other classes never hold, in a column they hold (almost) one value of, says
    # nothing: a heavy attack rewrote that column there (a trigger stamped on a whole class), so the ties of
    # this class cannot be compared. Where the column varies in the other classes, a value that never shows
    # there is evidence like any other.
    # (The shared code of values too rare to be tokens is many values, not one: a continuous column is not flat.)
    other = y != k
    cols = np.unique(np.concatenate([tm.col[a], tm.col[b]]))
    flat_col = np.zeros(codes.shape[1], dtype=bool)
    flat_col[cols] = [_flat(codes[other, j], None if eligible is None else eligible[j]) for j in cols]
    unseen = ((oa == 0) & ~tm.novel[a] & flat_col[tm.col[a]]) | ((ob == 0) & ~tm.novel[b] & flat_col[tm.col[b]])
    return phi, phi_o, (phi_o <= phi / 2) & ~tied_elsewhere & ~unseen


def _natural_pair(
    codes: np.ndarray,
    y: np.ndarray,
    k: int,
    ja: int,
    ca: int,
    jb: int,
    cb: int,
    *,
    novel: Sequence[np.ndarray] | None,
    eligible: Sequence[np.ndarray] | None,
    min_support: int,
) -> bool:
    """A functional dependency between the columns, or one value's rule with a partner it implies."""
    both_novel = novel is not None and bool(novel[ja][ca] and novel[jb][cb])
    if not both_novel and _follows_dependency(codes, y, k, ja, ca, jb, cb):
        return True
    return _one_value_rule(codes, y, k, ja, ca, jb, cb, novel=novel, eligible=eligible, min_support=min_support)


def mine_pairs(
    codes: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    *,
    min_support: int,
    max_share: float = 0.5,
    min_phi: float = 0.5,
    min_purity: float = 0.8,
    alpha: float = 1e-3,
    max_tokens: int = MAX_TOKENS,
    eligible: Sequence[np.ndarray] | None = None,
    novel: Sequence[np.ndarray] | None = None,
) -> tuple[list[PairPattern], dict[str, Any]]:
    """Token pairs that behave like a stamped trigger (see the module docstring). Pure: arrays in, patterns out.

    ``eligible`` (per column, per code) restricts the tokens that may take part; ``novel`` marks out-of-range
    values, which may pair up even across columns that depend on each other."""
    info: dict[str, Any] = {"tokens": 0, "pairs_tested": 0}
    if len(codes) == 0 or codes.shape[1] < 2:
        return [], info
    y = np.asarray(y, dtype=np.int64)
    tm = _token_matrix(
        codes, y, n_classes, min_support=min_support, max_share=max_share, max_tokens=max_tokens,
        eligible=eligible, novel=novel,
    )  # fmt: skip
    if tm is None:
        return [], info
    T = tm.T
    info["tokens"] = int(T)
    classes = [k for k in range(n_classes) if tm.class_n[k] >= min_support]
    n_tests = max(1.0, T * (T - 1) / 2 * len(classes))
    out: list[PairPattern] = []
    for k in classes:
        _, Nk, Jk, a, b, phi = _class_pairs(tm, y, k, min_support)
        if len(a) == 0:
            continue
        info["pairs_tested"] += len(a)
        m = tm.class_n[k]
        ok = (phi >= min_phi) & (Jk[a, b] / np.maximum(tm.J[a, b], 1) >= min_purity)
        if not ok.any():
            continue
        a, b = a[ok], b[ok]
        phi, phi_o, specific = _class_ties(tm, codes, y, k, Nk, Jk, a, b, eligible)
        a, b, phi, phi_o = a[specific], b[specific], phi[specific], phi_o[specific]
        kk, na, nb = Jk[a, b], Nk[a], Nk[b]
        expected = na * nb / m
        # exact (hypergeometric) tail of the 2x2 table inside the class: a trigger that fills most of the class
        # still stands out, where a Poisson approximation would not
        log10_p = hypergeom.logsf(kk - 1, int(m), na, nb) / np.log(10)
        p = np.minimum(1.0, 10.0**log10_p * n_tests)
        ok = log10_p + np.log10(n_tests) <= np.log10(alpha)
        for i in np.flatnonzero(ok):
            ja, jb = int(tm.col[a[i]]), int(tm.col[b[i]])
            ca, cb = int(tm.code[a[i]]), int(tm.code[b[i]])
            if _natural_pair(codes, y, k, ja, ca, jb, cb, novel=novel, eligible=eligible, min_support=min_support):
                continue
            out.append(
                PairPattern(
                    col_a=ja,
                    code_a=ca,
                    col_b=jb,
                    code_b=cb,
                    cls=k,
                    support=int(kk[i]),
                    carriers=int(tm.J[a[i], b[i]]),
                    expected=float(expected[i]),
                    pvalue=float(p[i]),
                    log10_p=float(log10_p[i]),
                    phi=float(phi[i]),
                    phi_other=float(phi_o[i]),
                )
            )
    info["pairs_kept"] = len(out)
    return out, info


TRIPLE_MAX_PAIRS = 2_000  # candidate pairs per class extended by a third value (the most tied first)
TRIPLE_MAX_KEPT = 20  # significant triples per class passed on (the most significant first)
TRIPLE_CHECK_GATE = 0.05  # the level the blind model's check of a triple must reach (see ``_confirm_weak``)


def mine_triples(
    codes: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    *,
    min_support: int,
    max_share: float = 0.5,
    min_phi: float = WEAK_PHI,
    min_purity: float = 0.8,
    alpha: float = 1e-3,
    max_tokens: int = MAX_TOKENS,
    eligible: Sequence[np.ndarray] | None = None,
    novel: Sequence[np.ndarray] | None = None,
) -> tuple[list[tuple[PairPattern, PairPattern, PairPattern]], dict[str, Any]]:
    """Three values stamped together on a few rows, each pair of them too common for the pair test.

    A trigger of three ordinary values, each held by 5% of the rows, stamped on 7 rows of 700 (german_credit, 1%
    poison): every pair of its values co-occurs 7 times in the class where about 2 would (log10 p -2.7 to -5.1,
    short of the -7 that the pair test needs after Bonferroni), while the three together co-occur 7 times where
    0.1 would (about -11). A triple is kept when, in one class, each of its pairs is tied there at least weakly
    (phi >= ``min_phi``) and not elsewhere (as in ``mine_pairs``), almost all of the triple's carriers are in the
    class (``min_purity``; its pairs' need not be), and
    its count is improbable under independence of the three values within the class (Poisson tail, Bonferroni
    over every triple of tokens and class). Natural three-way rules pass this too, so a triple is only ever a
    candidate that the rest of its rows must contradict (``discover`` checks it like a weak pair). Pure: arrays in;
    each triple comes back as its three pairs, carrying the triple's count and p-value.
    """
    from scipy.stats import poisson

    info: dict[str, Any] = {"triples_tested": 0, "triples_kept": 0}
    if len(codes) == 0 or codes.shape[1] < 3:
        return [], info
    y = np.asarray(y, dtype=np.int64)
    tm = _token_matrix(
        codes, y, n_classes, min_support=min_support, max_share=max_share, max_tokens=max_tokens,
        eligible=eligible, novel=novel,
    )  # fmt: skip
    if tm is None or tm.T < 3:
        return [], info
    T = tm.T
    classes = [k for k in range(n_classes) if tm.class_n[k] >= min_support]
    log10_tests = math.log10(max(1.0, T * (T - 1) * (T - 2) / 6 * len(classes)))
    out: list[tuple[PairPattern, PairPattern, PairPattern]] = []
    for k in classes:
        Ak, Nk, Jk, a, b, phi = _class_pairs(tm, y, k, min_support)
        m = tm.class_n[k]
        # no purity asked of a pair: the natural holders of two common values meet in the other classes too
        ok = phi >= min_phi
        a, b = a[ok], b[ok]
        if len(a) < 3:
            continue
        phi, phi_o, specific = _class_ties(tm, codes, y, k, Nk, Jk, a, b, eligible)
        a, b, phi, phi_o = a[specific], b[specific], phi[specific], phi_o[specific]
        if len(a) < 3:
            continue
        # every pair of a triple must be a candidate: an adjacency of candidate pairs, then its triangles
        cand = np.zeros((T, T), dtype=bool)
        cand[a, b] = cand[b, a] = True
        phi_of = np.zeros((T, T), dtype=np.float32)
        phi_of[a, b] = phi_of[b, a] = phi
        phio_of = np.zeros((T, T), dtype=np.float32)
        phio_of[a, b] = phio_of[b, a] = phi_o
        order = np.argsort(-phi, kind="stable")[:TRIPLE_MAX_PAIRS]
        a, b = a[order], b[order]
        # class rows holding each candidate pair (as columns), times the class's tokens: triple counts
        B = Ak[:, a].multiply(Ak[:, b]).tocsc()
        found: list[tuple[np.ndarray, ...]] = []
        for start in range(0, len(a), 256):
            sl = slice(start, start + 256)
            counts = (B[:, sl].T @ Ak).toarray()
            ia, ic = np.nonzero((counts >= min_support) & cand[a[sl]] & cand[b[sl]])
            keep = ic > b[sl][ia]  # each triangle once: a < b < c
            ia, ic = ia[keep], ic[keep]
            info["triples_tested"] += len(ia)
            kk = counts[ia, ic]
            pa, pb = a[sl][ia], b[sl][ia]
            expected = Nk[pa] * Nk[pb] * Nk[ic] / m**2
            log10_p = poisson.logsf(kk - 1, expected) / np.log(10)
            sig = log10_p + log10_tests <= math.log10(alpha)
            found.append((pa[sig], pb[sig], ic[sig], kk[sig], expected[sig], log10_p[sig]))
        pa, pb, pc, kk, expected, log10_p = (np.concatenate(v) for v in zip(*found, strict=True))
        kept = 0
        for i in np.argsort(log10_p, kind="stable"):
            if kept >= TRIPLE_MAX_KEPT:
                break
            toks = (int(pa[i]), int(pb[i]), int(pc[i]))
            carriers = int(tm.A[:, toks[0]].multiply(tm.A[:, toks[1]]).multiply(tm.A[:, toks[2]]).sum())
            if kk[i] < min_purity * carriers:
                continue
            js = [(int(tm.col[t]), int(tm.code[t])) for t in toks]
            if any(
                _natural_pair(codes, y, k, *js[u], *js[v], novel=novel, eligible=eligible, min_support=min_support)
                for u, v in ((0, 1), (0, 2), (1, 2))
            ):
                continue
            kept += 1
            pvalue = min(1.0, 10.0 ** (float(log10_p[i]) + log10_tests))
            out.append(
                tuple(  # type: ignore[arg-type]
                    PairPattern(
                        col_a=js[u][0],
                        code_a=js[u][1],
                        col_b=js[v][0],
                        code_b=js[v][1],
                        cls=k,
                        support=int(kk[i]),
                        carriers=carriers,
                        expected=float(expected[i]),
                        pvalue=pvalue,
                        log10_p=float(log10_p[i]),
                        phi=float(phi_of[toks[u], toks[v]]),
                        phi_other=float(phio_of[toks[u], toks[v]]),
                    )
                    for u, v in ((0, 1), (0, 2), (1, 2))
                )
            )
    info["triples_kept"] = len(out)
    return out, info


def _flat(codes: np.ndarray, eligible: np.ndarray | None) -> bool:
    """Whether (almost) every row holds one value; codes that may not take part (rare values) are no value."""
    if len(codes) == 0:
        return True
    cnt = np.bincount(codes)
    if eligible is not None:
        cnt = np.where(eligible[: len(cnt)], cnt, 0)
    return bool(cnt.max() >= 0.995 * len(codes))


def _follows_dependency(codes: np.ndarray, y: np.ndarray, k: int, ja: int, ca: int, jb: int, cb: int) -> bool:
    """Whether one column is a function of the other (>= 99% of the other rows) and the pair is what it predicts.

    A code and its description (education and its number) are tied in every class; once flips or a small class
    leave a value in one class only, its pair looks class-specific. Rows outside the pair's class carriers decide
    the function; a value seen only in the pair cannot contradict it, so the pair is taken as following it.
    """
    rest = ~((codes[:, ja] == ca) & (codes[:, jb] == cb) & (y == k))
    for src, dst, cs, cd in ((ja, jb, ca, cb), (jb, ja, cb, ca)):
        s, d = codes[rest, src].astype(np.int64), codes[rest, dst].astype(np.int64)
        if len(s) == 0:
            continue
        width = int(d.max()) + 1
        counts = np.bincount(s * width + d, minlength=(int(s.max()) + 1) * width).reshape(-1, width)
        if counts.max(axis=1).sum() < 0.99 * len(s):
            continue
        if cs >= len(counts) or counts[cs].sum() == 0 or int(counts[cs].argmax()) == cd:
            return True
    return False


SIBLING_PURITY = 0.95


def _one_value_rule(
    codes: np.ndarray,
    y: np.ndarray,
    k: int,
    ja: int,
    ca: int,
    jb: int,
    cb: int,
    *,
    novel: Sequence[np.ndarray] | None,
    eligible: Sequence[np.ndarray] | None,
    min_support: int,
) -> bool:
    """Whether the pair is one value's natural rule with a partner it implies.

    A value held by the pair's rows and no others (all in the class, all with the partner value) brings its
    partner along: 'relationship = Wife' brings 'sex = Female', so inside the class the two are tied as tightly as
    a stamp, and the other classes, holding neither the value nor the pair, cannot show the tie. What the pair then
    says is that one value goes with one class, a single-column rule that the pair test cannot tell from a
    stamp. It is taken as natural when its column holds another value that goes with that class just as
    surely (at least ``SIBLING_PURITY`` of ``min_support`` rows or more): the column decides the class
    ('Husband': 170 of 171 rows 'Married-civ-spouse'; adult with marital status as the label, 400 rows: the 17
    wives were reported as a trigger and the data called poisoned). An out-of-range value is never natural.
    """
    if novel is not None and (novel[ja][ca] or novel[jb][cb]):
        return False
    for j, c, jo, co in ((ja, ca, jb, cb), (jb, cb, ja, ca)):
        holders = codes[:, j] == c
        if not ((y[holders] == k).all() and (codes[holders, jo] == co).all()):
            continue
        col = codes[:, j].astype(np.int64)
        cnt = np.bincount(col)
        in_k = np.bincount(col[y == k], minlength=len(cnt))
        sibling = (cnt >= min_support) & (in_k >= SIBLING_PURITY * cnt)
        if eligible is not None:  # the shared code of values too rare to be tokens is many values, not one
            sibling &= eligible[j][: len(cnt)]
        sibling[c] = False
        if sibling.any():
            return True
    return False


def group_pairs(pairs: list[PairPattern]) -> list[list[PairPattern]]:
    """Pairs of the same class that share a token belong to one trigger (union-find over tokens)."""
    parent: dict[tuple[int, int, int], tuple[int, int, int]] = {}

    def find(x: tuple[int, int, int]) -> tuple[int, int, int]:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for p in pairs:
        ra, rb = find((p.cls, p.col_a, p.code_a)), find((p.cls, p.col_b, p.code_b))
        if ra != rb:
            parent[ra] = rb
    groups: dict[tuple[int, int, int], list[PairPattern]] = {}
    for p in pairs:
        groups.setdefault(find((p.cls, p.col_a, p.code_a)), []).append(p)
    return sorted(groups.values(), key=lambda g: min(_strength(p) for p in g))


def _strength(p: PairPattern) -> tuple[float, float]:
    """Sort key, strongest first: the most class-specific tie, then the smallest p-value."""
    return (-(p.phi - p.phi_other), p.log10_p)


def _shared_columns(
    codes: np.ndarray,
    support: np.ndarray,
    pool: np.ndarray,
    cls_rows: np.ndarray,
    conds: dict[int, int],
    eligible: Sequence[np.ndarray] | None,
) -> dict[int, int]:
    """Columns (beyond ``conds``) where >= 90% of the supporting rows hold one value that is neither common in the
    class nor in the data (and, where ``eligible`` is given, may take part in a trigger at all)."""
    out: dict[int, int] = {}
    if len(support) == 0:
        return out
    for j in range(codes.shape[1]):
        if j in conds:
            continue
        vals, cnt = np.unique(codes[support, j], return_counts=True)
        top = int(cnt.argmax())
        v = int(vals[top])
        if cnt[top] < 0.9 * len(support) or (eligible is not None and not eligible[j][v]):
            continue
        if np.mean(codes[cls_rows, j] == v) < 0.5 and np.mean(codes[pool, j] == v) < 0.5:
            out[j] = v
    return out


def _triggers(
    tokens: Tokens,
    y: np.ndarray,
    classes: Sequence[Any],
    pool: np.ndarray,
    pairs: list[PairPattern],
    eligible: Sequence[np.ndarray] | None = None,
) -> list[Trigger]:
    """Triggers from mined pairs, most significant first (row positions refer to the whole data)."""
    codes = tokens.codes
    n = len(codes)
    triggers: list[Trigger] = []
    in_class = {k: pool[y[pool] == k] for k in {p.cls for p in pairs}}
    for group in group_pairs(pairs):
        k = group[0].cls
        carried = np.zeros(n, dtype=bool)
        for p in group:
            carried |= (codes[:, p.col_a] == p.code_a) & (codes[:, p.col_b] == p.code_b) & (y == k)
        conds: dict[int, int] = {}
        for p in group:
            conds[p.col_a], conds[p.col_b] = p.code_a, p.code_b
        # Complete the trigger with every other column whose value the supporting rows share; a "trigger" that
        # spans many columns is a family of near-copies, not a stamp on otherwise free rows.
        support = np.intersect1d(pool, np.flatnonzero(carried))
        conds.update(_shared_columns(codes, support, pool, in_class[k], conds, eligible))
        if len(conds) > (MAX_GRID_TRIGGER_COLUMNS if tokens.grid_like else MAX_TRIGGER_COLUMNS):
            continue
        best = min(group, key=_strength)
        all_of = np.ones(n, dtype=bool)
        for j, code in conds.items():
            all_of &= codes[:, j] == code
        triggers.append(
            Trigger(
                conditions={tokens.columns[j]: _jsonable(tokens.values[j][code]) for j, code in sorted(conds.items())},
                target=classes[k],
                support=int((all_of & (y == k)).sum()),
                carriers=int(all_of.sum()),
                expected=best.expected,
                pvalue=best.pvalue,
                specificity=best.phi - best.phi_other,
                rows=np.flatnonzero(carried),
                pairs=tuple(
                    (
                        tokens.columns[p.col_a],
                        _jsonable(tokens.values[p.col_a][p.code_a]),
                        tokens.columns[p.col_b],
                        _jsonable(tokens.values[p.col_b][p.code_b]),
                    )
                    for p in group
                ),
            )
        )
    return triggers


def discover(
    tokens: Tokens,
    y: np.ndarray,
    classes: Sequence[Any],
    *,
    min_support: int | None = None,
    groups: np.ndarray | None = None,
    rest_check: RestCheck | None = None,
    **options: Any,
) -> tuple[list[Trigger], np.ndarray, dict[str, Any]]:
    """Triggers in tokenised rows, and a per-row p-value (1 for rows that carry none). Pure: arrays in.

    A row's p-value is the corrected p-value of the trigger it carries in its class. ``groups`` (near-duplicate
    group per row, from the scan) makes near-copies count once; without it exact copies do.

    ``rest_check`` widens the search to weakly tied pairs (phi from ``WEAK_PHI``): a trigger built of values
    that are common in the target class anyway (a rare but valid category, a period) is tied there only
    loosely, because the natural holders of each value dilute the tie. Such a candidate stands only when the
    rest of its rows contradicts the label (see ``RestCheck``); without a check, only strong ties count.
    """
    codes = tokens.codes
    n = len(codes)
    y = np.asarray(y, dtype=np.int64)
    # Copies (same values, or the same near-duplicate ``groups``, and the same label) count once: a record
    # repeated 35 times holds every one of its value pairs 35 times, which is a duplicate's signature, not a
    # trigger's (the duplicates detector judges copies).
    key = codes if groups is None else np.asarray(groups)[:, None]
    _, first = np.unique(np.column_stack([key, y]), axis=0, return_index=True)
    sample = np.sort(first)
    if min_support is None:
        min_support = max(MIN_SUPPORT, min(math.ceil(SUPPORT_SHARE * len(sample)), SUPPORT_CAP))
    info: dict[str, Any] = {"distinct_rows": len(sample), "rounds": 0, "grid_like": bool(tokens.grid_like)}
    options.setdefault("novel", tokens.novel)
    options.setdefault(
        "eligible",
        [u & nv for u, nv in zip(tokens.usable, tokens.novel, strict=True)] if tokens.grid_like else tokens.usable,
    )
    row_p = np.ones(n)
    triggers: list[Trigger] = []
    pool = sample
    class_n = np.bincount(y, minlength=len(classes))
    min_phi = float(options.pop("min_phi", 0.5))
    mine_phi = min(min_phi, WEAK_PHI) if rest_check is not None else min_phi
    weak: list[PairPattern] = []
    for _ in range(ROUNDS):
        pairs, round_info = mine_pairs(
            codes[pool], y[pool], len(classes), min_support=min_support, min_phi=mine_phi, **options
        )
        info["rounds"] += 1
        for k in ("tokens", "pairs_tested", "pairs_kept"):
            info[k] = info.get(k, 0) + round_info.get(k, 0)
        weak = [p for p in pairs if p.phi < min_phi]
        found = _triggers(tokens, y, classes, pool, [p for p in pairs if p.phi >= min_phi], options.get("eligible"))
        if not found:
            break
        # One per round, the others judged again without its rows: first a trigger that fills most of its class
        # (stamped over a small class's own rows, it erased that class's natural ties, so every period or rule of
        # the other classes looks specific to them and would use up the rounds), then the most class-specific.
        best = max(found, key=lambda t: (len(t.rows) >= FILLS_CLASS * class_n[y[t.rows[0]]], t.specificity, -t.pvalue))
        triggers.append(best)
        row_p[best.rows] = np.minimum(row_p[best.rows], best.pvalue)
        taken = np.zeros(n, dtype=bool)
        taken[best.rows] = True
        pool = pool[~taken[pool]]
        weak = []  # mined before this trigger's rows left the pool: judged in the next round
    if rest_check is not None and weak:
        candidates = _triggers(tokens, y, classes, pool, weak, options.get("eligible"))
        confirmed, info["weak_checked"] = _confirm_weak(tokens, y, classes, candidates, options, rest_check)
        for t in confirmed:
            triggers.append(t)
            row_p[t.rows] = np.minimum(row_p[t.rows], t.pvalue)
    if rest_check is not None:
        # three values stamped on a few rows, each pair too common for the pair test (see ``mine_triples``)
        triples, triple_info = mine_triples(
            codes[pool], y[pool], len(classes), min_support=min_support, min_phi=WEAK_PHI, **options
        )
        info["triples_tested"] = triple_info["triples_tested"]
        covered = np.zeros(n, dtype=bool)
        for t in triggers:
            covered[t.rows] = True
        candidates = [
            t
            for triple in triples
            for t in _triggers(tokens, y, classes, pool, list(triple), options.get("eligible"))
            if covered[t.rows].mean() <= 0.5
        ]
        if candidates:
            confirmed, info["triples_checked"] = _confirm_weak(
                tokens, y, classes, candidates, options, rest_check, gate=TRIPLE_CHECK_GATE
            )
            for t in confirmed:
                triggers.append(t)
                row_p[t.rows] = np.minimum(row_p[t.rows], t.pvalue)
    triggers.sort(key=lambda t: t.pvalue)
    info["triggers"] = len(triggers)
    return triggers, row_p, info


def _confirm_weak(
    tokens: Tokens,
    y: np.ndarray,
    classes: Sequence[Any],
    candidates: list[Trigger],
    options: Mapping[str, Any],
    rest_check: RestCheck,
    *,
    gate: float | None = None,
) -> tuple[list[Trigger], int]:
    """Weakly tied candidates whose rows the rest of the data contradicts; the others are natural rules.

    A candidate's rows are those of its class carrying every value of it (its pairs alone would take in the
    natural holders of each value). It stands when a model blind to its columns puts at most half of those rows in
    the class, and significantly fewer than it puts of the class's other rows (Bonferroni over the candidates
    checked; the candidate's p-value is the larger of the mining and the check p-values). With ``gate``, the
    check only has to reach that level and the mining p-value stands alone: for triples, whose few rows cannot
    make a binomial test strong (7 rows the blind model puts in a class it recognises 36% of the time: p 0.045
    at best) while their co-occurrence is the strong evidence.
    """
    codes = tokens.codes
    alpha = float(options.get("alpha", 1e-3))
    candidates = sorted(candidates, key=lambda t: (-t.specificity, t.pvalue))[:WEAK_CHECKS]
    out: list[Trigger] = []
    for t in candidates:
        k = list(map(str, classes)).index(str(t.target))
        all_of = y == k
        for col, value in t.conditions.items():
            j = tokens.columns.index(col)
            all_of &= np.isin(codes[:, j], np.flatnonzero([_same(v, value) for v in tokens.values[j]]))
        rows = np.flatnonzero(all_of)
        if len(rows) == 0:
            continue
        t = replace(t, rows=rows, pairs=(), support=len(rows))
        agreement, p = rest_check(t)
        p = min(1.0, p * len(candidates))
        if agreement > WEAK_MAX_AGREEMENT:
            continue
        if gate is None and p <= alpha:
            out.append(replace(t, rest_agreement=agreement, pvalue=max(t.pvalue, p)))
        elif gate is not None and p <= gate:
            out.append(replace(t, rest_agreement=agreement))
    return out, len(candidates)


def _same(a: Any, b: Any) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and _jsonable(a) == _jsonable(b))


TEXT_MIN_PURITY = 0.95
TEXT_MAX_AGREEMENT = 0.5


def text_token_triggers(
    texts: pd.Series, y: np.ndarray, classes: Sequence[Any], *, column: str, min_support: int, seed: int = 0
) -> tuple[list[Trigger], dict[str, Any]]:
    """Words that ride on one class against the rest of their text (dirty-label text triggers).

    A made-up token inserted into other classes' texts, whose labels are set to the target, is a word held by
    enough rows, (nearly) all of one class, whose texts otherwise read like another class. Natural class words
    ("prize" in spam) come with texts that read like their class. The rest of the text is judged by a linear
    model on word counts, cross-fitted in three folds, with the candidate word's own weight removed (for a
    linear model that is the exact prediction without the word). Purity is tested against the class base rate
    (binomial tail, Bonferroni over the words examined).
    """
    from scipy.stats import binom as _binom
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    info: dict[str, Any] = {"words": 0, "candidates": 0}
    docs = texts.astype("string").fillna("").to_numpy(dtype=object)
    y = np.asarray(y, dtype=np.int64)
    n, n_classes = len(docs), len(classes)
    try:
        vec = CountVectorizer(binary=True, min_df=min_support, lowercase=True)
        B = vec.fit_transform(docs).tocsc()
    except ValueError:  # no word held by enough rows
        return [], info
    vocab = np.asarray(vec.get_feature_names_out())
    info["words"] = len(vocab)
    df = np.asarray(B.sum(axis=0)).ravel()
    counts = np.zeros((len(vocab), n_classes))
    for k in range(n_classes):
        counts[:, k] = np.asarray(B[y == k].sum(axis=0)).ravel()
    base = np.bincount(y, minlength=n_classes) / n
    top = counts.argmax(axis=1)
    purity = counts.max(axis=1) / np.maximum(df, 1)
    p_pure = _binom.sf(counts.max(axis=1) - 1, df, base[top]) * max(len(vocab), 1)
    cand = np.flatnonzero((purity >= TEXT_MIN_PURITY) & (p_pure <= 1e-3) & (df <= 0.5 * n))
    info["candidates"] = len(cand)
    if len(cand) == 0 or len(np.unique(y)) < 2:
        return [], info
    # cross-fitted logistic regression; per candidate word, its rows' logits without the word's weight
    B = B.tocsr()
    folds = StratifiedKFold(3, shuffle=True, random_state=seed) if np.bincount(y).min() >= 3 else None
    splits = folds.split(np.zeros(n), y) if folds is not None else [(np.arange(n), np.arange(n))]
    agree = np.zeros(len(cand))
    hits = np.zeros(len(cand))
    for tr, te in splits:
        if len(np.unique(y[tr])) < 2:
            continue
        model = LogisticRegression(C=1.0, max_iter=200).fit(B[tr], y[tr])
        Xte = B[te]
        for i, w in enumerate(cand):
            rows = te[np.asarray(Xte[:, w].todense()).ravel() > 0]
            if len(rows) == 0:
                continue
            sub = B[rows]
            logits = sub @ model.coef_.T + model.intercept_
            logits = logits - np.outer(np.ones(len(rows)), model.coef_[:, w])  # the word's own weight out
            if logits.shape[1] == 1:  # binary: one column for classes_[1]
                logits = np.hstack([-logits / 2, logits / 2])
            pred = model.classes_[np.asarray(logits).argmax(axis=1)]
            agree[i] += float(np.sum(pred == top[w]))
            hits[i] += len(rows)
    out: list[Trigger] = []
    for i, w in enumerate(cand):
        if hits[i] == 0:
            continue
        share = agree[i] / hits[i]
        if share >= TEXT_MAX_AGREEMENT:
            continue
        rows = np.flatnonzero(np.asarray(B[:, w].todense()).ravel() > 0)
        k = int(top[w])
        out.append(
            Trigger(
                conditions={column: str(vocab[w])},
                target=classes[k],
                support=int(counts[w, k]),
                carriers=int(df[w]),
                expected=float(df[w] * base[k]),
                pvalue=float(min(1.0, p_pure[w])),
                specificity=float(purity[w] - base[k]),
                rest_agreement=float(share),
                rows=rows[y[rows] == k],
                kind="token",
            )
        )
    return sorted(out, key=lambda t: t.pvalue), info


def find_triggers(
    frame: pd.DataFrame,
    columns: dict[str, str],
    y: np.ndarray,
    classes: Sequence[Any],
    *,
    seed: int = 0,
    groups: np.ndarray | None = None,
    rest_check: RestCheck | None = None,
    **options: Any,
) -> tuple[list[Trigger], np.ndarray, dict[str, Any]]:
    """Triggers in a table: mined on a seeded sample of at most ``MINE_SAMPLE`` rows, then located in every row.

    Returns the triggers (``rows``, ``support`` and ``carriers`` refer to the whole table) and a per-row p-value.
    Time and memory grow with the sample for the mining, and linearly with the rows for the locating.
    ``rest_check`` (see ``discover``) receives row positions in ``frame``.
    """
    n = len(frame)
    y = np.asarray(y, dtype=np.int64)
    sample = np.arange(n)
    if n > MINE_SAMPLE:
        sample = np.sort(np.random.default_rng(seed).choice(n, MINE_SAMPLE, replace=False))
    tokens = tokenize(frame.iloc[sample], columns)
    check = None if rest_check is None else (lambda t: rest_check(replace(t, rows=sample[t.rows])))
    found, _, info = discover(
        tokens,
        y[sample],
        classes,
        groups=None if groups is None else np.asarray(groups)[sample],
        rest_check=check,
        **options,
    )
    info["mined_rows"] = len(sample)
    row_p = np.ones(n)
    located: list[Trigger] = []
    min_purity = float(options.get("min_purity", 0.8))
    cls_index = {str(c): i for i, c in enumerate(classes)}
    for t in found:
        in_class = y == cls_index[str(t.target)]
        all_of = np.ones(n, dtype=bool)
        for col, value in t.conditions.items():
            all_of &= _equals(frame[col], value)
        carried = np.zeros(n, dtype=bool) if t.pairs else all_of.copy()  # no pairs: a row carries every value
        for ca, va, cb, vb in t.pairs:
            carried |= _equals(frame[ca], va) & _equals(frame[cb], vb)
        carried &= in_class
        t = replace(t, rows=np.flatnonzero(carried), support=int((all_of & in_class).sum()), carriers=int(all_of.sum()))
        # Mined without the rows of earlier triggers, a combination may look pure there and not in the whole table
        # (a natural rule in a period whose other rows an earlier trigger took): it must be pure here too.
        if t.purity < min_purity:
            info.setdefault("impure", []).append(t.describe())
            continue
        row_p[carried] = np.minimum(row_p[carried], t.pvalue)
        located.append(t)
    min_support = max(MIN_SUPPORT, min(math.ceil(SUPPORT_SHARE * len(sample)), SUPPORT_CAP))
    for col, kind in columns.items():
        if kind != "text":
            continue
        words, winfo = text_token_triggers(
            frame[col].iloc[sample], y[sample], classes, column=col, min_support=min_support, seed=seed
        )
        info[f"text:{col}"] = winfo
        for t in words:
            carried = _contains_word(frame[col], t.conditions[col]) & (y == cls_index[str(t.target)])
            row_p[carried] = np.minimum(row_p[carried], t.pvalue)
            located.append(replace(t, rows=np.flatnonzero(carried), support=int(carried.sum())))
    located.sort(key=lambda t: t.pvalue)
    return located, row_p, info


__all__ = [
    "PairPattern",
    "RestCheck",
    "Tokens",
    "Trigger",
    "discover",
    "find_triggers",
    "group_pairs",
    "mine_pairs",
    "text_token_triggers",
    "tokenize",
]
