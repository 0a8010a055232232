"""A scan gives the same result whatever the number of threads the machine lends it."""

from __future__ import annotations

import numpy as np

from poisonguard.context import knn


def test_neighbour_distances_between_near_copies_are_exact() -> None:
    """Exact and near copies among 4,000 rows: faiss's float32 distances (|x|^2 + |y|^2 - 2xy on this many rows)
    were off by about 0.001, as much as such copies lie apart; the distances returned are those of the
    differences."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(4000, 48)) * 10 + 50
    X[1000:1100] = X[0]
    X[1100:1200] = X[1] + 1e-4 * rng.normal(size=(100, 48))
    X = X.astype(np.float32)
    nb = knn(X, 5)
    direct = np.linalg.norm(X[:, None, :].astype(np.float64) - X[nb.idx].astype(np.float64), axis=2)
    np.testing.assert_allclose(nb.dist, direct, rtol=1e-5, atol=1e-6)
    assert (np.diff(nb.dist, axis=1) >= 0).all()
