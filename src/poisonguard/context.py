"""Shared state for one scan: the encoded views of the data and the neighbour graph.

Detectors read from the context instead of re-encoding or re-searching, so a neighbour graph built once serves
neighbour disagreement, duplicates and canaries alike.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .features import FeatureEncoder
from .io import Dataset

CHUNK = 100_000
EXACT_KNN_MAX = 30_000
KNN_REFERENCE_MAX = 100_000


@dataclass
class Neighbors:
    """k nearest reference rows of every row (itself excluded); ``idx`` are row positions."""

    idx: np.ndarray
    dist: np.ndarray
    reference: np.ndarray  # row positions that make up the searchable reference set


class Progress:
    """Minimal progress interface; the CLI passes a rich-backed one, the API a silent one."""

    @contextmanager
    def task(self, description: str, total: int | None = None) -> Iterator[Callable[[int], None]]:
        yield lambda advance=1: None


@dataclass
class ScanContext:
    data: Dataset
    seed: int = 0
    progress: Progress = field(default_factory=Progress)
    encoder: FeatureEncoder | None = None
    tree_X: np.ndarray | None = None
    metric_X: np.ndarray | None = None
    cache: dict[str, Any] = field(default_factory=dict)
    # a model's representation of each row (user embeddings), or None; see ``representation``
    embeddings: np.ndarray | None = None
    # "embeddings" (given), "leaves" (derive a forest's leaf embedding from the table) or None (no representation)
    representation_kind: str | None = None

    @property
    def has_representation(self) -> bool:
        return self.representation_kind is not None

    def representation(self) -> np.ndarray:
        """The rows in a model's feature space: the user's embeddings, or a leaf embedding derived once."""
        if self.representation_kind == "embeddings" and self.embeddings is not None:
            self.cache["representation_kind"] = "embeddings"
            return self.embeddings
        cached = self.cache.get("representation")
        if cached is None:
            from .representation import leaf_embedding

            self.encode()
            with self.progress.task("leaf embedding"):
                cached = leaf_embedding(self.tree_X, self.y, seed=self.seed)
            self.cache["representation"] = cached
            self.cache["representation_kind"] = "leaves"
        return cached

    def representation_neighbors(self, k: int = 10) -> Neighbors:
        """k-NN in the representation (deep k-NN); computed once per scan."""
        cached = self.cache.get("representation_neighbors")
        if cached is not None and cached.idx.shape[1] >= k:
            return Neighbors(cached.idx[:, :k], cached.dist[:, :k], cached.reference)
        self.cache["representation_neighbors"] = knn(self.representation(), k, seed=self.seed, progress=self.progress)
        return self.cache["representation_neighbors"]

    @property
    def n(self) -> int:
        return self.data.n_rows

    @property
    def y(self) -> np.ndarray:
        return self.data.y

    def chunks(self, size: int = CHUNK) -> Iterator[np.ndarray]:
        for start in range(0, self.n, size):
            yield np.arange(start, min(start + size, self.n))

    def encode(self) -> None:
        if self.tree_X is not None:
            return
        frame = self.data.frame
        with self.progress.task("encoding features", total=self.n) as advance:
            self.encoder = FeatureEncoder.fit(frame, self.data.columns, seed=self.seed)
            # filled in place: stacking the chunks held each view twice (1,000,000 rows x 50 columns: a peak
            # 330 MB higher, and by how much more depended on when the allocator handed the chunks back)
            tree_X = metric_X = None
            for rows in self.chunks():
                part = frame.iloc[rows]
                t, m = self.encoder.tree(part), self.encoder.metric(part)
                if tree_X is None or metric_X is None:
                    tree_X = np.empty((self.n, t.shape[1]), dtype=t.dtype)
                    metric_X = np.empty((self.n, m.shape[1]), dtype=np.float32)
                tree_X[rows[0] : rows[-1] + 1] = t
                metric_X[rows[0] : rows[-1] + 1] = m
                advance(len(rows))
        assert tree_X is not None and metric_X is not None  # a scan has rows (``io.MIN_ROWS``)
        self.tree_X = tree_X
        self.metric_X = metric_X

    def neighbors(self, k: int = 10) -> Neighbors:
        """Approximate k-NN in the metric view (exact below 30,000 rows); computed once per scan."""
        cached = self.cache.get("neighbors")
        if cached is not None and cached.idx.shape[1] >= k:
            return Neighbors(cached.idx[:, :k], cached.dist[:, :k], cached.reference)
        self.encode()
        self.cache["neighbors"] = knn(self.metric_X, k, seed=self.seed, progress=self.progress)
        return self.cache["neighbors"]


def knn(X: np.ndarray, k: int, *, seed: int = 0, progress: Progress | None = None) -> Neighbors:
    """k nearest neighbours of every row among a reference set, excluding the row itself.

    Below ``EXACT_KNN_MAX`` rows the search is exact; above it an inverted-file index (faiss IVF, k-means
    coarse quantiser with a fixed seed, so results are reproducible) is built on at most
    ``KNN_REFERENCE_MAX`` sampled rows and every row is queried against it.
    """
    import faiss

    progress = progress or Progress()
    n, d = X.shape
    rng = np.random.default_rng(seed)
    X = np.ascontiguousarray(X, dtype=np.float32)
    if n > KNN_REFERENCE_MAX:
        reference = np.sort(rng.choice(n, KNN_REFERENCE_MAX, replace=False))
    else:
        reference = np.arange(n)
    R = np.ascontiguousarray(X[reference])
    kk = min(k + 1, len(reference))
    if n <= EXACT_KNN_MAX:
        index = faiss.IndexFlatL2(d)
    else:
        nlist = int(min(4096, max(64, 2 * np.sqrt(len(reference)))))
        quantizer = faiss.IndexFlatL2(d)
        index = faiss.IndexIVFFlat(quantizer, d, nlist)
        cp = faiss.ClusteringParameters()
        train = R[rng.choice(len(R), min(len(R), 40 * nlist), replace=False)]
        clus = faiss.Clustering(d, nlist, cp)
        clus.seed = int(seed) % (2**31)
        clus.niter = 10
        clus.train(train, quantizer)
        index.is_trained = True
        index.nprobe = 4
    index.add(R)
    idx = np.empty((n, kk), dtype=np.int64)
    dist = np.empty((n, kk), dtype=np.float32)
    with progress.task("searching neighbours", total=n) as advance:
        step = 50_000
        for start in range(0, n, step):
            stop = min(start + step, n)
            found_dist, found_idx = index.search(X[start:stop], kk)
            idx[start:stop] = found_idx
            dist[start:stop] = found_dist
            advance(stop - start)
    missing = idx < 0
    rows = np.where(missing, -1, reference[np.clip(idx, 0, None)])
    own = rows == np.arange(n)[:, None]
    # drop the row itself; where it was not returned (duplicates tie), drop the farthest instead
    drop = np.where(own.any(axis=1), own.argmax(axis=1), kk - 1)
    keep = np.ones_like(own)
    keep[np.arange(n), drop] = False
    rows = rows[keep].reshape(n, kk - 1)[:, :k]
    dist = np.sqrt(np.maximum(dist[keep].reshape(n, kk - 1)[:, :k], 0.0))
    rows, dist = _exact_distances(X, rows, dist)
    return Neighbors(idx=rows, dist=dist, reference=reference)


EXACT_CHUNK_BYTES = 64 * 2**20  # the differences held at once while recomputing neighbour distances


def _exact_distances(X: np.ndarray, rows: np.ndarray, dist: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distances of the neighbours found, recomputed from the differences, and each row's neighbours in that
    order (ties by position).

    faiss computes squared distances as |x|^2 + |y|^2 - 2 x.y in float32: between near-copies the cancellation
    leaves an error of a few thousandths of the typical distance, which decided whether two rows counted as copies
    and changed with the number of threads (its matrix products sum in another order), so a scan's groups of
    copies, and the flags that follow, depended on the machine."""
    n, k = rows.shape
    if n == 0 or k == 0:
        return rows, dist
    rows_out = np.empty_like(rows)
    out = np.empty((n, k), dtype=np.float32)
    # Differences taken directly cancel nothing (between near-copies they are exact in float32), and numpy's
    # einsum sums each row's squares in one fixed order on one thread: float32 is as reproducible as float64
    # here and reads half the memory (1,000,000 rows x 10 neighbours x 40 columns: 1.3 s against 3.3 s). Each
    # chunk is re-sorted on its own, so the memory held beyond the output stays within the chunk's.
    X = np.asarray(X, dtype=np.float32)
    chunk = max(1, EXACT_CHUNK_BYTES // (4 * k * max(X.shape[1], 1)))
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        r = rows[start:stop]
        valid = r >= 0
        diff = X[np.clip(r, 0, None)]
        diff -= X[start:stop, None, :]
        d = np.where(valid, np.sqrt(np.einsum("ijk,ijk->ij", diff, diff)), np.inf).astype(np.float32)
        del diff
        # missing neighbours (-1) stay last; the rest by distance, then by position
        order = np.lexsort((np.where(valid, r, np.iinfo(np.int64).max), d), axis=1)
        rows_out[start:stop] = np.take_along_axis(r, order, axis=1)
        d = np.take_along_axis(d, order, axis=1)
        out[start:stop] = np.where(np.isfinite(d), d, np.take_along_axis(dist[start:stop], order, axis=1))
    return rows_out, out


def knn_query(R: np.ndarray, Q: np.ndarray, k: int, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """k nearest rows of ``R`` (positions; -1 where fewer exist) for every row of ``Q``, and their distances.

    Exact search against at most ``KNN_REFERENCE_MAX`` seeded sampled reference rows: queries are new rows,
    so none of them is in ``R`` and there is nothing to exclude.
    """
    import faiss

    reference = np.arange(len(R))
    if len(R) > KNN_REFERENCE_MAX:
        reference = np.sort(np.random.default_rng(seed).choice(len(R), KNN_REFERENCE_MAX, replace=False))
    index = faiss.IndexFlatL2(R.shape[1])
    index.add(np.ascontiguousarray(R[reference], dtype=np.float32))
    kk = min(k, len(reference))
    dist, idx = index.search(np.ascontiguousarray(Q, dtype=np.float32), kk)
    idx = np.where(idx >= 0, reference[np.clip(idx, 0, None)], -1)
    return idx, np.sqrt(np.maximum(dist, 0.0))


@dataclass
class DuplicateGroups:
    """Exact groups (identical features) and near groups (connected within a tiny distance)."""

    exact: np.ndarray
    near: np.ndarray
    epsilon: float

    def sizes(self, groups: np.ndarray) -> np.ndarray:
        return np.bincount(groups)[groups]


COPY_TOLERANCE = 0.01  # in standard deviations per column (root mean square)
COPY_CHUNK = 200_000


def _sd_close(ctx: ScanContext, nb: Neighbors, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Neighbour pairs (from the metric-view graph, within ``radius`` there) that agree within
    ``COPY_TOLERANCE`` standard deviations per column, on every category and on which values are missing."""
    assert ctx.tree_X is not None and ctx.encoder is not None
    X = ctx.tree_X
    cat = np.asarray(ctx.encoder.tree_categorical, dtype=bool)
    rng = np.random.default_rng(ctx.seed + 31)
    sample = rng.choice(ctx.n, min(ctx.n, 100_000), replace=False)
    with np.errstate(all="ignore"):
        sd = np.nanstd(X[sample], axis=0)
    inv = np.where(np.isfinite(sd) & (sd > 0), 1.0 / sd, 0.0).astype(np.float32)
    inv[cat] = 0.0
    d_num = max(int((~cat).sum()), 1)
    r_all, c_all = np.nonzero((nb.dist <= radius) & (nb.idx >= 0))
    keep = np.zeros(len(r_all), dtype=bool)
    for start in range(0, len(r_all), COPY_CHUNK):
        r = r_all[start : start + COPY_CHUNK]
        a, b = X[r], X[nb.idx[r, c_all[start : start + COPY_CHUNK]]]
        diff = np.where(np.isnan(a) & np.isnan(b), 0.0, a - b)
        bad = np.isnan(diff)  # missing on one side only
        rms = np.sqrt((np.nan_to_num(diff * inv) ** 2).sum(axis=1) / d_num)
        keep[start : start + COPY_CHUNK] = (rms <= COPY_TOLERANCE) & ~bad.any(axis=1) & ~(diff[:, cat] != 0).any(axis=1)
    r = r_all[keep]
    return r.astype(np.int64), nb.idx[r, c_all[keep]].astype(np.int64)


def duplicate_groups(ctx: ScanContext, k: int = 10) -> DuplicateGroups:
    """Group identical and near-identical rows; cached on the context."""
    cached = ctx.cache.get("dup_groups_full")
    if cached is not None:
        return cached
    import pandas as pd
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    ctx.encode()
    hashed = pd.util.hash_pandas_object(pd.DataFrame(ctx.tree_X), index=False).to_numpy()
    exact = pd.factorize(hashed)[0].astype(np.int64)
    nb = ctx.neighbors(k)
    first = nb.dist[:, 0]
    # the typical distance to the nearest other row, read on rows without an exact copy: an exact copy's
    # distance is 0 or a rounding error of the metric view (its PCA sums in an order that depends on the number of
    # threads), and counting those as distances made the scale, and with it the groups, depend on the machine
    single = np.bincount(exact)[exact] == 1
    positive = first[single & (first > 0)]
    scale = float(np.median(positive)) if positive.size else 1.0
    eps = 0.05 * scale
    close = (nb.dist <= eps) & (nb.idx >= 0)
    r, c = np.nonzero(close)
    nbr = nb.idx[r, c]
    # The metric view stretches columns with a tiny interquartile range, so copies jittered by a fraction of a
    # standard deviation can sit farther apart than eps there. Neighbours within the typical distance that
    # agree within 1% of a standard deviation per column (root mean square) and on every category are copies too.
    r2, c2 = _sd_close(ctx, nb, radius=scale)
    r, nbr = np.concatenate([r, r2]), np.concatenate([nbr, c2])
    # link every row to the first member of its exact group too, so large exact groups stay whole
    rep = np.zeros(int(exact.max()) + 1, dtype=np.int64)
    rep[exact[::-1]] = np.arange(ctx.n)[::-1]
    rows = np.concatenate([r, np.arange(ctx.n)])
    cols = np.concatenate([nbr, rep[exact]])
    graph = coo_matrix((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(ctx.n, ctx.n))
    _, near = connected_components(graph, directed=False)
    out = DuplicateGroups(exact=exact, near=near.astype(np.int64), epsilon=eps)
    ctx.cache["dup_groups_full"] = out
    ctx.cache["dup_groups"] = out.near
    return out
