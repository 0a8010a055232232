"""Loading a table: column types, left-out columns with their notes, labels, and array input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandas.testing as pdt
import pytest

from poisonguard.errors import InputError
from poisonguard.io import Dataset, load_dataset

N = 60


@pytest.fixture(scope="module")
def typed() -> pd.DataFrame:
    """One column of every kind, plus an identifier, a constant and a sequential number column."""
    rng = np.random.default_rng(0)
    words = np.array("the quick brown fox jumps over a lazy dog and runs far away home".split())
    frame = pd.DataFrame(
        {
            "amount": rng.normal(size=N).round(3),
            "count": rng.integers(0, 5, N),
            "city": rng.choice(["Paris", "Rome", "Oslo"], N),
            "active": rng.choice(["yes", "no"], N),
            "flag01": rng.integers(0, 2, N),
            "truth": rng.choice([True, False], N),
            "signup": pd.date_range("2021-01-01", periods=N, freq="37h").strftime("%Y-%m-%d %H:%M"),
            "comment": [" ".join(rng.choice(words, rng.integers(3, 7))) for _ in range(N)],
            "customer_id": [f"C{i:05d}" for i in range(N)],
            "seq": np.arange(100, 100 + N),
            "country": ["FR"] * N,
            "label": rng.choice(["a", "b"], N),
        }
    )
    frame.loc[[3, 17], "amount"] = np.nan
    frame.loc[[4], "city"] = None
    return frame


@pytest.fixture(scope="module")
def loaded(typed: pd.DataFrame) -> Dataset:
    return load_dataset(typed, label="label")


def test_column_types_are_inferred(loaded: Dataset) -> None:
    assert loaded.columns == {
        "amount": "numeric",
        "count": "numeric",
        "city": "categorical",
        "active": "boolean",
        "flag01": "boolean",
        "truth": "boolean",
        "signup": "datetime",
        "comment": "text",
    }


def test_identifier_and_constant_columns_are_left_out_with_a_note(loaded: Dataset) -> None:
    assert loaded.ignored == {
        "label": "label",
        "customer_id": "identifier",
        "seq": "identifier",
        "country": "constant",
    }
    notes = " | ".join(loaded.notes)
    assert "'customer_id' looks like a row identifier" in notes
    assert "'seq' looks like a row identifier" in notes
    assert "'country' has the same value in every row" in notes
    assert len(loaded.notes) == 3


def test_type_overrides_are_respected(typed: pd.DataFrame) -> None:
    ds = load_dataset(typed, label="label", types={"count": "categorical", "seq": "numeric", "comment": "categorical"})
    assert ds.columns["count"] == "categorical"
    assert ds.columns["seq"] == "numeric"  # an override keeps a column that looks like an identifier
    assert ds.columns["comment"] == "categorical"
    assert "seq" not in ds.ignored
    assert not any("'seq'" in note for note in ds.notes)


def test_source_id_and_exclude_are_not_features(typed: pd.DataFrame) -> None:
    ds = load_dataset(typed, label="label", source="city", id="customer_id", exclude=["amount"])
    assert ds.source == "city" and ds.id == "customer_id"
    assert ds.ignored["city"] == "source"
    assert ds.ignored["customer_id"] == "id"
    assert ds.ignored["amount"] == "excluded"
    assert not {"city", "customer_id", "amount", "label"} & set(ds.columns)
    assert ds.sources()[4] == "<missing>"


def test_loading_leaves_the_input_untouched(typed: pd.DataFrame) -> None:
    before = typed.copy(deep=True)
    ds = load_dataset(typed, label="label")
    pdt.assert_frame_equal(typed, before)
    # the dataset's frame is the data as read: nothing encoded in place
    pdt.assert_frame_equal(ds.frame, before)


@pytest.mark.parametrize(
    ("values", "classes", "codes"),
    [
        (["dog", "cat", "cat", "dog"], ["cat", "dog"], [1, 0, 0, 1]),
        ([" dog", "cat ", "cat", "dog"], ["cat", "dog"], [1, 0, 0, 1]),
        ([7, 3, 3, 7], [3, 7], [1, 0, 0, 1]),
        ([7.0, 3.0, 3.0, 7.0], [3, 7], [1, 0, 0, 1]),
        ([True, False, False, True], [False, True], [1, 0, 0, 1]),
    ],
    ids=["strings", "padded-strings", "ints", "whole-floats", "bools"],
)
def test_labels_of_every_kind_become_class_codes(values: list, classes: list, codes: list) -> None:
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"x": rng.normal(size=40), "z": rng.normal(size=40), "y": values * 10})
    ds = load_dataset(frame, label="y")
    assert ds.classes.tolist() == classes
    assert ds.n_classes == 2
    np.testing.assert_array_equal(ds.y, codes * 10)
    assert ds.y.dtype == np.int64
    assert [ds.class_name(c) for c in (0, 1)] == [str(c) for c in classes]


def test_numpy_input_with_a_label_array() -> None:
    rng = np.random.default_rng(2)
    X = rng.normal(size=(50, 3))
    y = rng.choice(["u", "v"], 50)
    X_before, y_before = X.copy(), y.copy()
    ds = load_dataset(X, label=y)
    assert list(ds.frame.columns) == ["x0", "x1", "x2", "label"]
    assert ds.columns == {"x0": "numeric", "x1": "numeric", "x2": "numeric"}
    assert ds.label == "label"
    np.testing.assert_array_equal(ds.classes[ds.y], y)
    np.testing.assert_array_equal(X, X_before)
    np.testing.assert_array_equal(y, y_before)


def test_numpy_input_with_a_label_column_index() -> None:
    rng = np.random.default_rng(3)
    X = np.column_stack([rng.normal(size=40), rng.normal(size=40), rng.integers(0, 3, 40)])
    ds = load_dataset(X, label=2)
    assert ds.label == "x2"
    assert set(ds.columns) == {"x0", "x1"}
    assert ds.classes.tolist() == [0, 1, 2]


def test_a_label_array_for_a_dataframe_leaves_the_frame_alone() -> None:
    frame = pd.DataFrame({"a": np.arange(30) % 7, "b": np.linspace(0, 1, 30)})
    before = frame.copy(deep=True)
    ds = load_dataset(frame, label=np.array([0, 1] * 15))
    pdt.assert_frame_equal(frame, before)
    assert "label" in ds.frame.columns and "label" not in frame.columns


def test_a_label_array_of_the_wrong_length_is_refused() -> None:
    with pytest.raises(InputError, match="one value per row"):
        load_dataset(np.zeros((30, 2)), label=np.zeros(29))


def test_a_non_range_index_is_reset_to_positions() -> None:
    rng = np.random.default_rng(4)
    frame = pd.DataFrame({"x": rng.normal(size=30), "label": ["p", "q"] * 15}, index=np.arange(30)[::-1] * 10)
    ds = load_dataset(frame, label="label")
    assert isinstance(ds.frame.index, pd.RangeIndex)
    np.testing.assert_array_equal(ds.frame["x"].to_numpy(), frame["x"].to_numpy())
    assert list(frame.index[:2]) == [290, 280]


@pytest.mark.parametrize(("sep", "decimal"), [(";", ","), (";", "."), ("|", "."), ("\t", ".")])
def test_csv_with_another_separator_is_read_as_its_columns(tmp_path, sep: str, decimal: str) -> None:
    """European spreadsheets (and the UCI bank marketing file) write ';' between fields, often with decimal
    commas; read with a comma, such a file was one column whose name held every header."""
    from poisonguard.io import read_table

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"amount": rng.normal(size=30).round(4), "city": rng.choice(["Paris", "Rome"], 30)})
    frame["label"] = rng.choice(["yes", "no"], 30)
    path = tmp_path / "data.csv"
    frame.to_csv(path, sep=sep, decimal=decimal, index=False)
    read = read_table(path)
    assert list(read.columns) == ["amount", "city", "label"]
    assert pd.api.types.is_float_dtype(read["amount"])
    np.testing.assert_allclose(read["amount"].to_numpy(), frame["amount"].to_numpy())
