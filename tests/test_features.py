"""Feature encoding: the tree view (raw, NaN kept, category codes) and the metric view (finite, chunkable)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from poisonguard.features import FeatureEncoder
from poisonguard.io import load_dataset
from synth import mixed_frame


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return mixed_frame(n=120, seed=1)


# fitting the text column's SVD takes seconds: one encoder serves the module
@pytest.fixture(scope="module")
def encoder(frame: pd.DataFrame) -> FeatureEncoder:
    columns = load_dataset(frame, label="label").columns
    assert columns["note"] == "text" and columns["member"] == "boolean" and columns["colour"] == "categorical"
    return FeatureEncoder.fit(frame, columns, seed=0)


def _col(enc: FeatureEncoder, name: str) -> int:
    return enc.tree_names.index(name)


def test_tree_view_keeps_missing_values_as_nan(encoder: FeatureEncoder, frame: pd.DataFrame) -> None:
    T = encoder.tree(frame)
    assert T.dtype == np.float32
    assert T.shape == (len(frame), len(encoder.tree_names)) == (len(frame), len(encoder.tree_categorical))
    for col in ("amount", "colour", "member"):
        np.testing.assert_array_equal(np.isnan(T[:, _col(encoder, col)]), frame[col].isna().to_numpy(), err_msg=col)
    present = frame["weight"].notna().to_numpy()
    np.testing.assert_allclose(T[present, _col(encoder, "weight")], frame.loc[present, "weight"], rtol=1e-6)


def test_tree_view_gives_category_codes(encoder: FeatureEncoder, frame: pd.DataFrame) -> None:
    T = encoder.tree(frame)
    j = _col(encoder, "colour")
    assert encoder.tree_categorical[j]
    assert sum(encoder.tree_categorical) == 1
    codes = T[:, j]
    seen = ~np.isnan(codes)
    assert set(codes[seen].astype(int)) == set(range(len(encoder.categories["colour"])))
    decoded = encoder.categories["colour"][codes[seen].astype(int)]
    np.testing.assert_array_equal(decoded, frame.loc[seen, "colour"].to_numpy())
    # booleans are 0/1, 'yes' is 1
    member = T[:, _col(encoder, "member")]
    np.testing.assert_array_equal(member[frame["member"].eq("yes").to_numpy()], 1.0)
    np.testing.assert_array_equal(member[frame["member"].eq("no").to_numpy()], 0.0)


def test_metric_view_is_finite_and_reduced(encoder: FeatureEncoder, frame: pd.DataFrame) -> None:
    M = encoder.metric(frame)
    assert M.dtype == np.float32
    assert np.isfinite(M).all()
    assert M.shape[0] == len(frame)
    assert M.shape[1] <= 48
    # rows that differ get different coordinates
    assert len(np.unique(M.round(5), axis=0)) == len(frame)


def test_chunked_transform_equals_full_transform(encoder: FeatureEncoder, frame: pd.DataFrame) -> None:
    parts = [frame.iloc[:37], frame.iloc[37:90], frame.iloc[90:]]
    np.testing.assert_allclose(np.vstack([encoder.tree(p) for p in parts]), encoder.tree(frame), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        np.vstack([encoder.metric(p) for p in parts]), encoder.metric(frame), rtol=1e-5, atol=1e-5
    )


def test_unseen_values_in_a_later_batch_do_not_crash(encoder: FeatureEncoder, frame: pd.DataFrame) -> None:
    batch = frame.iloc[:5].copy()
    batch["colour"] = ["purple", "red", "", None, " red "]
    batch["member"] = ["maybe", "yes", "no", None, "YES"]
    batch["note"] = ["zebra quantum xylophone", "", None, "red car fast", "completely new words here"]
    T = encoder.tree(batch)
    M = encoder.metric(batch)
    assert T.shape == (5, len(encoder.tree_names))
    assert np.isfinite(M).all() and M.shape[0] == 5
    colour = T[:, _col(encoder, "colour")]
    assert np.isnan(colour[[0, 2, 3]]).all()  # unseen, empty, missing: no code
    assert colour[1] == colour[4] == encoder.categories["colour"].get_loc("red")  # padding is stripped
    member = T[:, _col(encoder, "member")]
    assert np.isnan(member[[0, 3]]).all() and member[1] == 1 and member[2] == 0 and member[4] == 1


def test_encoder_without_text_keeps_one_metric_column_per_value() -> None:
    rng = np.random.default_rng(5)
    frame = pd.DataFrame(
        {
            "x": rng.normal(size=80),
            "kind": rng.choice(["a", "b", "c"], 80),
            "when": pd.date_range("2022-01-01", periods=80, freq="D").astype(str),
        }
    )
    frame.loc[[1, 2], "x"] = np.nan
    columns = {"x": "numeric", "kind": "categorical", "when": "datetime"}
    enc = FeatureEncoder.fit(frame, columns)
    assert enc.pca is None
    assert sorted(enc.metric_names) == sorted(["x", "x:missing", "kind=a", "kind=b", "kind=c", "when"])
    M = enc.metric(frame)
    assert M.shape == (80, 6) and np.isfinite(M).all()
    # a missing number is 0 with its missing indicator set
    miss = enc.metric_names.index("x:missing")
    np.testing.assert_array_equal(M[:, miss], frame["x"].isna().to_numpy())
    T = enc.tree(frame)
    days = T[:, enc.tree_names.index("when")]
    assert np.all(np.diff(days) > 0)  # dates become increasing day numbers
    # a one-hot mismatch counts like one robust unit: two different categories are 1 apart
    a, b = enc.metric_names.index("kind=a"), enc.metric_names.index("kind=b")
    ra = M[frame["kind"].eq("a").to_numpy()][0]
    rb = M[frame["kind"].eq("b").to_numpy()][0]
    assert np.linalg.norm(ra[[a, b]] - rb[[a, b]]) == pytest.approx(1.0, rel=1e-6)


def test_a_pandas_categorical_column_encodes_like_the_same_text() -> None:
    rng = np.random.default_rng(6)
    values = rng.choice(["red", "green", " blue ", "grey"], 90).astype(object)
    values[[4, 40]] = None
    plain = pd.DataFrame({"x": rng.normal(size=90), "colour": values})
    as_category = plain.assign(colour=plain["colour"].astype("category"))
    columns = {"x": "numeric", "colour": "categorical"}
    enc = FeatureEncoder.fit(plain, columns)
    np.testing.assert_array_equal(enc.tree(as_category), enc.tree(plain))
    np.testing.assert_array_equal(enc.metric(as_category), enc.metric(plain))
    # fitted on the categorical column, the encoder gives the same views too
    enc_cat = FeatureEncoder.fit(as_category, columns)
    np.testing.assert_array_equal(enc_cat.tree(as_category), enc.tree(plain))
    np.testing.assert_array_equal(enc_cat.metric(as_category), enc.metric(plain))
    # a later batch whose categorical dtype knows an unseen category
    batch = as_category.iloc[:3].copy()
    batch["colour"] = pd.Categorical(["purple", "red", None], categories=["purple", "red"])
    codes = enc.tree(batch)[:, enc.tree_names.index("colour")]
    assert np.isnan(codes[[0, 2]]).all() and codes[1] == enc.categories["colour"].get_loc("red")


def test_binning_once_gives_boosting_the_same_trees() -> None:
    """Boosting on the pre-binned view predicts exactly as on the raw one: the bins are the ones it would make."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    from poisonguard.features import apply_bin_edges, boosting_bin_edges

    rng = np.random.default_rng(0)
    X = np.column_stack([rng.normal(size=3000), rng.integers(0, 7, 3000), rng.exponential(size=3000)]).astype(
        np.float32
    )
    X[rng.random(3000) < 0.05, 0] = np.nan
    y = (np.nan_to_num(X[:, 0]) + 0.3 * X[:, 1] + rng.normal(size=3000) > 1).astype(int)
    edges = boosting_bin_edges(X, np.zeros(3, dtype=bool))
    B = apply_bin_edges(X, edges)
    assert np.isnan(B[:, 0]).sum() == np.isnan(X[:, 0]).sum()
    assert all(len(np.unique(B[~np.isnan(B[:, j]), j])) <= 255 for j in range(3))
    raw = HistGradientBoostingClassifier(max_iter=30, early_stopping=False, random_state=0).fit(X, y)
    binned = HistGradientBoostingClassifier(max_iter=30, early_stopping=False, random_state=0).fit(B, y)
    np.testing.assert_allclose(raw.predict_proba(X), binned.predict_proba(B), atol=1e-9)
