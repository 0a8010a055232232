"""Feature encoding: one table in, two numeric views out.

* The *tree view* feeds gradient boosting: numbers stay raw (NaN for missing), categories become integer codes
  the booster treats natively, text becomes a few dense components.
* The *metric view* feeds distances (neighbours, outliers): robust-scaled numbers with heavy tails compressed,
  one-hot categories weighted so that a mismatch counts like one robust unit, missing indicators, text
  components, then a PCA when there are many columns (exact up to 2,048 columns, seeded randomized beyond).

Encoders are fitted on the data (or a sample of it) and transform any batch of rows, so scoring can be chunked.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.decomposition import PCA, TruncatedSVD
from sklearn.feature_extraction.text import HashingVectorizer, TfidfTransformer

MAX_CATEGORIES_TREE = 250  # HistGradientBoosting allows at most max_bins (255) categories per feature
MAX_ONEHOT = 24
TEXT_COMPONENTS = 48
METRIC_MAX_DIMS = 48
PCA_EXACT_MAX_COLUMNS = 2048
FIT_SAMPLE = 100_000


def _as_text(s: pd.Series) -> pd.Series:
    return s.astype("string").fillna("").str.strip()


def _lookup(s: pd.Series, index: pd.Index) -> np.ndarray:
    """Position of each value's text in ``index`` (-1 when absent or missing).

    Categorical columns are looked up once per category instead of once per row."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        per_category = index.get_indexer(pd.Series(s.cat.categories).astype("string").str.strip())
        codes = s.cat.codes.to_numpy()
        return np.where(codes >= 0, per_category[np.clip(codes, 0, None)], -1)
    return index.get_indexer(_as_text(s))


def _as_numeric(s: pd.Series, kind: str) -> np.ndarray:
    if kind == "boolean":
        if pd.api.types.is_numeric_dtype(s.dtype) or pd.api.types.is_bool_dtype(s.dtype):
            return s.astype("float64").to_numpy(na_value=np.nan)
        low = _as_text(s).str.lower()
        out = np.full(len(s), np.nan)
        out[low.isin(["true", "yes", "y", "t", "1"]).to_numpy()] = 1.0
        out[low.isin(["false", "no", "n", "f", "0"]).to_numpy()] = 0.0
        return out
    if kind == "datetime":
        dt = (
            pd.to_datetime(s, errors="coerce", format="mixed")
            if not pd.api.types.is_datetime64_any_dtype(s.dtype)
            else s
        )
        if getattr(dt.dt, "tz", None) is not None:
            dt = dt.dt.tz_convert(None)
        out = dt.astype("datetime64[ns]").to_numpy().astype("int64").astype(float) / 86_400e9
        out = out.copy()
        out[dt.isna().to_numpy()] = np.nan
        return out
    if pd.api.types.is_numeric_dtype(s.dtype):
        return s.astype("float64").to_numpy(na_value=np.nan)
    return pd.to_numeric(_as_text(s).replace("", pd.NA), errors="coerce").astype("float64").to_numpy(na_value=np.nan)


@dataclass
class _TextModel:
    hasher: HashingVectorizer
    tfidf: TfidfTransformer
    svd: TruncatedSVD | None
    # hashed columns that occur in the fitting sample: the SVD is fitted on those only (2^18 mostly empty
    # columns cost seconds for nothing); tokens unseen at fit time carry no component anyway
    used: np.ndarray | None = None

    def tokens(self, s: pd.Series) -> sparse.csr_matrix:
        """Which hashed words each row holds (0/1, sparse), by the same tokeniser as the components."""
        m = self.hasher.transform(_as_text(s).to_numpy()).tocsr()
        m.data = np.ones_like(m.data)
        return m

    def transform(self, s: pd.Series) -> np.ndarray:
        m = self.tfidf.transform(self.hasher.transform(_as_text(s).to_numpy()))
        if self.used is not None:
            m = m[:, self.used]
        if self.svd is None:
            return np.asarray(m.todense(), dtype=np.float32)
        return self.svd.transform(m).astype(np.float32)


@dataclass
class FeatureEncoder:
    """Fitted encoder for both views. Build with ``FeatureEncoder.fit``."""

    columns: dict[str, str]
    seed: int = 0
    categories: dict[str, pd.Index] = field(default_factory=dict)
    onehot: dict[str, pd.Index] = field(default_factory=dict)
    freq: dict[str, pd.Series] = field(default_factory=dict)
    center: dict[str, float] = field(default_factory=dict)
    scale: dict[str, float] = field(default_factory=dict)
    has_missing: dict[str, bool] = field(default_factory=dict)
    text: dict[str, _TextModel] = field(default_factory=dict)
    pca: PCA | None = None
    tree_names: list[str] = field(default_factory=list)
    tree_categorical: list[bool] = field(default_factory=list)
    tree_sources: list[str] = field(default_factory=list)  # the input column behind each tree column
    metric_names: list[str] = field(default_factory=list)

    @classmethod
    def fit(cls, frame: pd.DataFrame, columns: dict[str, str], *, seed: int = 0) -> FeatureEncoder:
        rng = np.random.default_rng(seed)
        sample = frame
        if len(frame) > FIT_SAMPLE:
            sample = frame.iloc[np.sort(rng.choice(len(frame), FIT_SAMPLE, replace=False))]
        enc = cls(columns=dict(columns), seed=seed)
        for col, kind in columns.items():
            s = sample[col]
            enc.has_missing[col] = bool(frame[col].isna().any())
            if kind == "categorical":
                counts = _as_text(s).value_counts()
                counts = counts[counts.index != ""]
                enc.categories[col] = pd.Index(counts.index[:MAX_CATEGORIES_TREE])
                enc.onehot[col] = pd.Index(counts.index[:MAX_ONEHOT])
                enc.freq[col] = counts / max(len(s), 1)
                enc.tree_names.append(col)
                enc.tree_categorical.append(True)
                enc.tree_sources.append(col)
                enc.metric_names += [f"{col}={v}" for v in enc.onehot[col]]
                if len(counts) > MAX_ONEHOT:
                    enc.metric_names.append(f"{col}:frequency")
            elif kind == "text":
                hasher = HashingVectorizer(n_features=2**18, alternate_sign=False, norm=None, lowercase=True)
                texts = _as_text(s).to_numpy()
                tfidf = TfidfTransformer(sublinear_tf=True).fit(hasher.transform(texts))
                m = tfidf.transform(hasher.transform(texts)).tocsr()
                used = np.unique(m.indices) if m.nnz else np.arange(1)  # CSR indices are column numbers
                m = m[:, used]
                k = min(TEXT_COMPONENTS, m.shape[0] - 1, max(m.shape[1] - 1, 1))
                svd = TruncatedSVD(n_components=k, random_state=seed).fit(m) if k >= 1 else None
                enc.text[col] = _TextModel(hasher, tfidf, svd, used)
                n_out = svd.n_components if svd is not None else m.shape[1]
                names = [f"{col}:text{i}" for i in range(n_out)]
                enc.tree_names += names
                enc.tree_categorical += [False] * n_out
                enc.tree_sources += [col] * n_out
                enc.metric_names += names
            else:
                x = _as_numeric(s, kind)
                finite = x[np.isfinite(x)]
                med = float(np.median(finite)) if finite.size else 0.0
                q25, q75 = np.percentile(finite, [25, 75]) if finite.size else (0.0, 0.0)
                sc = float(q75 - q25) / 1.349
                sd = float(np.std(finite)) if finite.size else 0.0
                # a column whose middle half sits in a sliver (mostly zeros, say) must not blow differences of a
                # thousandth of its spread up into whole units: the scale is at least a tenth of the sd
                sc = max(sc, 0.1 * sd)
                if not sc > 0:
                    sc = 1.0
                enc.center[col], enc.scale[col] = med, sc
                enc.tree_names.append(col)
                enc.tree_categorical.append(False)
                enc.tree_sources.append(col)
                enc.metric_names.append(col)
                if enc.has_missing[col]:
                    enc.metric_names.append(f"{col}:missing")
        if len(enc.metric_names) > METRIC_MAX_DIMS:
            raw = enc._metric_raw(sample)
            # exact (eigenvectors of the covariance) up to PCA_EXACT_MAX_COLUMNS columns: the randomized solver's
            # result moved with the number of threads (its products sum in another order), and with it every
            # distance; beyond that width the exact solve costs too much and the seeded randomized one is used
            solver = "covariance_eigh" if raw.shape[1] <= PCA_EXACT_MAX_COLUMNS else "randomized"
            enc.pca = PCA(n_components=METRIC_MAX_DIMS, random_state=seed, svd_solver=solver).fit(raw)
        return enc

    def tree(self, frame: pd.DataFrame) -> np.ndarray:
        """Tree view: float32, NaN for missing, categories as codes (see ``tree_categorical``)."""
        parts: list[np.ndarray] = []
        for col, kind in self.columns.items():
            s = frame[col]
            if kind == "categorical":
                codes = _lookup(s, self.categories[col]).astype(np.float32)
                codes[codes < 0] = np.nan
                parts.append(codes[:, None])
            elif kind == "text":
                parts.append(self.text[col].transform(s))
            else:
                parts.append(_as_numeric(s, kind).astype(np.float32)[:, None])
        return np.hstack(parts).astype(np.float32, copy=False)

    def _metric_raw(self, frame: pd.DataFrame) -> np.ndarray:
        parts: list[np.ndarray] = []
        for col, kind in self.columns.items():
            s = frame[col]
            if kind == "categorical":
                codes = _lookup(s, self.onehot[col])
                oh = np.zeros((len(s), len(self.onehot[col])), dtype=np.float32)
                hit = codes >= 0
                oh[np.flatnonzero(hit), codes[hit]] = np.sqrt(0.5)
                parts.append(oh)
                if col in self.freq and len(self.freq[col]) > MAX_ONEHOT:
                    pos = _lookup(s, pd.Index(self.freq[col].index))
                    f = np.where(pos >= 0, self.freq[col].to_numpy()[np.clip(pos, 0, None)], 0.0)
                    parts.append((np.log10(f + 1e-4)[:, None] / 2).astype(np.float32))
            elif kind == "text":
                t = self.text[col].transform(s)
                norm = np.sqrt((t**2).sum(axis=1, keepdims=True)) + 1e-9
                parts.append((t / norm).astype(np.float32))
            else:
                x = (_as_numeric(s, kind) - self.center[col]) / self.scale[col]
                miss = ~np.isfinite(x)
                x = np.where(miss, 0.0, x)
                # Compress heavy tails: distances stay monotone (outliers stay far) without one column dominating.
                x = np.sign(x) * np.log1p(np.abs(x))
                parts.append(x.astype(np.float32)[:, None])
                if self.has_missing[col]:
                    parts.append(miss.astype(np.float32)[:, None])
        return np.hstack(parts).astype(np.float32, copy=False)

    def metric(self, frame: pd.DataFrame) -> np.ndarray:
        """Metric view: dense float32 for Euclidean distances."""
        raw = self._metric_raw(frame)
        if self.pca is not None:
            return self.pca.transform(raw).astype(np.float32)
        return raw


__all__ = ["FeatureEncoder"]


BOOST_BINS = 255  # the bins gradient boosting keeps per numeric feature (scikit-learn's max_bins)
BIN_SAMPLE = 200_000  # rows the bin edges are read from, as scikit-learn's own binning subsamples


def boosting_early_stopping(y: np.ndarray) -> bool:
    """scikit-learn's 'auto' rule (stop early beyond 10,000 rows), where it can work: it holds out a stratified
    tenth, which fails when some class has a single row (a label value that occurs once in a large table)."""
    counts = np.bincount(np.asarray(y, dtype=np.int64))
    return len(y) > 10_000 and int(counts[counts > 0].min()) >= 2


def boosting_bin_edges(
    X: np.ndarray, categorical: np.ndarray, *, max_bins: int = BOOST_BINS, seed: int = 0
) -> list[np.ndarray | None]:
    """Per numeric column of the tree view, the thresholds that gradient boosting's binning would use: midpoints of
    the distinct values when there are at most ``max_bins`` of them, else quantiles (None for categorical columns).

    Binning once per scan, without weights, replaces the booster's own binning in every fold and pass: with sample
    weights, scikit-learn >= 1.6 computes one weighted percentile per threshold, each re-sorting the column
    (about 0.1 s per column on 15,000 rows: minutes for a 512-dimensional embedding)."""
    n = len(X)
    rows = np.sort(np.random.default_rng(seed).choice(n, BIN_SAMPLE, replace=False)) if n > BIN_SAMPLE else None
    edges: list[np.ndarray | None] = []
    percentiles = np.linspace(0, 100, max_bins + 1)[1:-1]
    for j in range(X.shape[1]):
        if categorical[j]:
            edges.append(None)
            continue
        col = np.asarray(X[:, j] if rows is None else X[rows, j], dtype=np.float64)
        col = col[~np.isnan(col)]
        distinct = np.unique(col)
        if len(distinct) <= 1:
            edges.append(np.zeros(0))
        elif len(distinct) <= max_bins:
            edges.append((distinct[:-1] + distinct[1:]) / 2.0)
        else:
            edges.append(np.unique(np.percentile(col, percentiles, method="averaged_inverted_cdf")))
    return edges


def apply_bin_edges(X: np.ndarray, edges: list[np.ndarray | None]) -> np.ndarray:
    """The tree view with each numeric column replaced by its bin index (NaN stays NaN, for the booster's
    missing-value branch); value ``x`` goes to bin ``i`` iff ``edges[i-1] < x <= edges[i]``, as in scikit-learn."""
    out = np.array(X, dtype=np.float32, copy=True)
    for j, e in enumerate(edges):
        if e is None:
            continue
        col = X[:, j]
        missing = np.isnan(col)
        out[:, j] = np.searchsorted(e, col, side="left")
        out[missing, j] = np.nan
    return out
