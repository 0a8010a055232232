"""Row fingerprints and diffs: planted added, removed and changed rows and label changes are found exactly."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import make_table
from poisonguard.diff import diff, row_fingerprints
from poisonguard.errors import InputError


@pytest.fixture(scope="module")
def old() -> pd.DataFrame:
    f = make_table(120, seed=5)
    f.insert(0, "key", [f"r{i}" for i in range(120)])
    return f


def test_fingerprints_ignore_formatting_and_column_order(old: pd.DataFrame) -> None:
    text = old.astype(str)
    text["f0"] = "  " + text["f0"] + "0 "  # "1.5" -> "  1.50 ": the same number
    text["region"] = text["region"] + " "
    shuffled = text[list(reversed(text.columns))]
    assert np.array_equal(row_fingerprints(old), row_fingerprints(shuffled))
    ints = pd.DataFrame({"a": [1, 2, None], "b": ["x", " y", None]})
    floats = pd.DataFrame({"b": ["x", "y", ""], "a": [1.0, 2.0, np.nan]})
    assert np.array_equal(row_fingerprints(ints), row_fingerprints(floats))
    big = pd.DataFrame({"id": np.array([2**53, 2**53 + 1, 2**62 + 7], dtype=np.int64)})
    assert len(np.unique(row_fingerprints(big))) == 3  # 64-bit ids stay distinct
    assert np.array_equal(row_fingerprints(big), row_fingerprints(big.astype(str)))
    changed = old.copy()
    changed.loc[7, "f3"] += 1e-9
    fo, fc = row_fingerprints(old), row_fingerprints(changed)
    assert np.flatnonzero(fo != fc).tolist() == [7]
    assert len(np.unique(fo)) == len(old)


def test_diff_by_id_finds_planted_changes_exactly(old: pd.DataFrame) -> None:
    new = old.drop(index=[3, 50, 99]).copy()  # removed r3, r50, r99
    new.loc[10, "f2"] = 99.0  # feature change
    new.loc[20, "label"] = "stay" if old.loc[20, "label"] == "churn" else "churn"  # label flip
    new.loc[30, ["label", "region"]] = ["stay" if old.loc[30, "label"] == "churn" else "churn", "mars"]
    added = make_table(5, seed=9)
    added.insert(0, "key", [f"n{i}" for i in range(5)])
    new = pd.concat([new, added], ignore_index=True).sample(frac=1.0, random_state=1).reset_index(drop=True)
    d = diff(old, new, id="key", label="label")
    assert sorted(new.loc[d.added, "key"]) == [f"n{i}" for i in range(5)]
    assert sorted(old.loc[d.removed, "key"]) == ["r3", "r50", "r99"]
    ch = d.changed.set_index("id")
    assert sorted(ch.index) == ["r10", "r20", "r30"]
    assert ch.loc["r10", "changed_columns"] == ["f2"] and not ch.loc["r10", "label_changed"]
    assert ch.loc["r20", "changed_columns"] == ["label"]
    assert sorted(ch.loc["r30", "changed_columns"]) == ["label", "region"]
    lab = d.label_changes.set_index("id")
    assert sorted(lab.index) == ["r20", "r30"]
    assert lab.loc["r20", "old_label"] == old.loc[20, "label"] and lab.loc["r20", "new_label"] != old.loc[20, "label"]
    assert (new.loc[lab["new_row"].to_numpy(), "key"].to_numpy() == lab.index.to_numpy()).all()
    assert d.unchanged == 120 - 3 - 3
    assert sorted(new.loc[d.new_rows, "key"]) == sorted([f"n{i}" for i in range(5)] + ["r10", "r20", "r30"])


def test_diff_without_id_is_a_multiset_difference(old: pd.DataFrame) -> None:
    body = old.drop(columns=["key"])
    new = pd.concat([body.drop(index=[4, 5]), body.iloc[[8, 8]]], ignore_index=True)  # two copies of row 8 more
    new.loc[0, "label"] = "stay" if body.loc[0, "label"] == "churn" else "churn"
    d = diff(body, new, label="label")
    assert sorted(d.removed.tolist()) == [0, 4, 5]
    assert sorted(d.added.tolist()) == [0, len(new) - 2, len(new) - 1]
    assert d.unchanged == len(new) - 3 and len(d.changed) == 0


def test_repeated_ids_are_an_input_error(old: pd.DataFrame) -> None:
    dup = old.copy()
    dup.loc[5, "key"] = "r4"
    with pytest.raises(InputError, match=r"repeats values .* first at row 4"):
        diff(old, dup, id="key")
    with pytest.raises(InputError, match="no column 'nope'"):
        diff(old, old, id="nope")
