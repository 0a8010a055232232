"""Representation-based detection: loading embeddings, the spectral methods on planted poison, deep k-NN in a scan."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

import poisonguard as pg
from poisonguard.errors import InputError
from poisonguard.representation import (
    leaf_embedding,
    load_embeddings,
    published_activation_clustering,
    published_spectral_signatures,
    que_class_scores,
    removed_mask,
)


def planted(
    n: int = 600, d: int = 24, share: float = 0.08, seed: int = 0, correlated: bool = True, shift: float = 6.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two classes of Gaussian features; a tight block of class-1 rows shifted along one direction."""
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(d, d)) / np.sqrt(d) if correlated else np.eye(d)
    E = rng.normal(size=(n, d)) @ A
    y = np.repeat([0, 1], n // 2)
    E[y == 1] += 1.0
    k = int(share * n)
    rows = rng.choice(np.flatnonzero(y == 1), k, replace=False)
    direction = rng.normal(size=d)
    E[rows] += shift * direction / np.linalg.norm(direction) + rng.normal(scale=0.05, size=(k, d))
    mask = np.zeros(n, dtype=bool)
    mask[rows] = True
    return E.astype(np.float32), y, mask


def test_published_methods_find_a_block_in_isotropic_features() -> None:
    E, y, mask = planted(correlated=False)
    ss = published_spectral_signatures(E, y, mask.mean())
    assert roc_auc_score(mask[y == 1], ss[y == 1]) > 0.95
    eps = mask[y == 1].mean()  # the poisoned share of the target class, given as in the paper
    removed = removed_mask(ss, y, eps)
    assert removed[mask].mean() > 0.9
    assert removed.sum() <= 2 * np.ceil(1.5 * eps * 300)  # the top 1.5 eps of each class
    assert roc_auc_score(mask, que_class_scores(E, y)) > 0.97
    ac = published_activation_clustering(E, y, seed=0)
    assert (ac[mask] > 0).mean() > 0.9
    assert (ac[~mask] > 0).mean() < 0.05


def test_robust_whitening_finds_the_block_where_the_top_direction_is_natural() -> None:
    """With correlated features the top singular vector is the data's own; whitening first (SPECTRE) is needed."""
    E, y, mask = planted(correlated=True)
    que = roc_auc_score(mask, que_class_scores(E, y))
    ss = roc_auc_score(mask, published_spectral_signatures(E, y, mask.mean()))
    assert que > 0.99
    assert que > ss


def test_load_embeddings_checks_shape_rows_and_values(tmp_path: Path) -> None:
    E = np.arange(12, dtype=np.float64).reshape(6, 2)
    assert load_embeddings(E, 6).dtype == np.float32
    np.save(tmp_path / "e.npy", E)
    assert load_embeddings(tmp_path / "e.npy", 6).shape == (6, 2)
    pd.DataFrame(E, columns=["a", "b"]).to_parquet(tmp_path / "e.parquet")
    assert np.allclose(load_embeddings(tmp_path / "e.parquet", 6), E)
    with pytest.raises(InputError, match="5 embedding rows for 6 data rows"):
        load_embeddings(E[:5], 6)
    bad = E.copy()
    bad[3, 1] = np.nan
    with pytest.raises(InputError, match="first: row 3"):
        load_embeddings(bad, 6)
    with pytest.raises(InputError, match="no such embeddings file"):
        load_embeddings(tmp_path / "missing.npy", 6)
    (tmp_path / "e.txt").write_text("1 2\n")
    with pytest.raises(InputError, match="unknown embeddings format"):
        load_embeddings(tmp_path / "e.txt", 1)


def test_leaf_embedding_is_deterministic_and_shaped() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 5))
    y = (X[:, 0] > 0).astype(int)
    a = leaf_embedding(X, y, seed=3, dims=8, trees=20)
    b = leaf_embedding(X, y, seed=3, dims=8, trees=20)
    assert a.shape == (300, 8)
    assert np.array_equal(a, b)


def test_label_only_table_scans_its_embeddings_and_deep_knn_finds_misplaced_rows() -> None:
    """Rows labelled 'cat' whose representation sits deep inside the 'dog' cluster (feature-collision poison)."""
    rng = np.random.default_rng(1)
    n = 600
    y = np.repeat(["cat", "dog"], n // 2)
    E = rng.normal(size=(n, 8)) + np.where(y == "dog", 5.0, 0.0)[:, None]
    poison = rng.choice(np.flatnonzero(y == "cat"), 12, replace=False)
    E[poison] = rng.normal(size=(12, 8)) + 5.0
    frame = pd.DataFrame({"id": np.arange(n), "label": y})
    result = pg.scan(frame, label="label", id="id", embeddings=E, seed=0)
    assert "deep_knn" in result.info["detectors"]
    assert "trigger_pattern" not in result.info["detectors"]
    assert any("embedding dimensions serve as its features" in note for note in result.summary["notes"])
    mask = np.zeros(n, dtype=bool)
    mask[poison] = True
    assert roc_auc_score(mask, result.rows["deep_knn_score"]) > 0.98
    flagged = result.rows["flagged"].to_numpy()
    assert flagged[mask].mean() > 0.6
    assert flagged[~mask].mean() < 0.02


def test_clean_embeddings_stay_clean() -> None:
    rng = np.random.default_rng(2)
    n = 800
    y = np.repeat(["a", "b"], n // 2)
    E = rng.normal(size=(n, 16)) + np.where(y == "b", 2.0, 0.0)[:, None]
    result = pg.scan(pd.DataFrame({"label": y}), label="label", embeddings=E, seed=0)
    assert result.verdict == "clean"
    assert result.rows["flagged"].mean() <= 0.02


def test_embeddings_must_line_up_with_the_rows(invoke, tmp_path: Path, clean_csv: Path) -> None:
    np.save(tmp_path / "e.npy", np.zeros((7, 3)))
    res = invoke("scan", clean_csv, "--label", "label", "--embeddings", tmp_path / "e.npy", "-q")
    assert res.exit_code == 2
    assert "7 embedding rows for 300 data rows" in res.output
    with pytest.raises(pg.ConfigError, match="representation must be"):
        pg.scan(pd.read_csv(clean_csv), label="label", representation="pixels")


def test_cli_scans_with_embeddings(invoke, tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    y = np.repeat(["a", "b"], 150)
    pd.DataFrame({"label": y}).to_csv(tmp_path / "labels.csv", index=False)
    np.save(tmp_path / "e.npy", rng.normal(size=(300, 6)) + np.where(y == "b", 3.0, 0.0)[:, None])
    res = invoke(
        "scan", tmp_path / "labels.csv", "--label", "label", "--embeddings", tmp_path / "e.npy", "--fail-on", "never"
    )
    assert res.exit_code == 0, res.output
    assert "embedding dimensions serve as its features" in res.output


def test_boosting_reads_principal_components_of_a_wide_embedding_only() -> None:
    """A 200-wide embedding as the table's features: boosting reads 64 components; a table's own columns stay."""
    rng = np.random.default_rng(3)
    n = 600
    y = np.repeat(["a", "b", "c"], n // 3)
    E = rng.normal(size=(n, 200)) + (np.searchsorted(["a", "b", "c"], y) * 1.5)[:, None]
    result = pg.scan(pd.DataFrame({"label": y}), label="label", embeddings=E, seed=0)
    info = result.info["detectors"]["label_consistency"]
    assert info["boosting_reads"] == "64 principal components of the embedding"
    assert result.verdict == "clean"
    table = pd.DataFrame(E[:, :140], columns=[f"f{i}" for i in range(140)]).assign(label=y)
    plain = pg.scan(table, label="label", embeddings=E, seed=0)
    assert plain.info["detectors"]["label_consistency"]["boosting_reads"] == "all features"
