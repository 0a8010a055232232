"""Every bad input ends in exit code 2 and one message naming the file, column or row; never a traceback."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import make_table


def assert_input_error(res, *needles: str) -> str:
    """Exit 2, one ``error: ...`` line last on stderr, no traceback anywhere, and every needle in the message.

    Stages of the scan that finished before the error (progress lines) may come first on stderr.
    """
    assert res.exit_code == 2, f"exit {res.exit_code}\n{res.output}"
    assert "Traceback" not in res.output
    lines = res.stderr.strip().splitlines()
    assert lines, res.output
    message = lines[-1]
    assert message.startswith("error: "), res.stderr
    assert sum(line.startswith("error: ") for line in lines) == 1, res.stderr
    for needle in needles:
        assert needle in message, f"{needle!r} not in {message!r}"
    return message


@pytest.fixture
def table() -> pd.DataFrame:
    return make_table(n=120)


def write_csv(frame: pd.DataFrame, path: Path, **kwargs) -> Path:
    frame.to_csv(path, index=False, **kwargs)
    return path


# ------------------------------------------------------------------------------------------------ files


def test_missing_file(invoke, tmp_path):
    path = tmp_path / "no_such.csv"
    assert_input_error(invoke("scan", path, "--label", "label"), str(path), "no such file")


def test_a_directory_instead_of_a_file(invoke, tmp_path):
    assert_input_error(invoke("scan", tmp_path, "--label", "label"), str(tmp_path), "directory")


def test_spreadsheet_is_refused_with_a_hint(invoke, tmp_path):
    path = tmp_path / "data.xlsx"
    path.write_bytes(b"PK\x03\x04 not really a workbook")
    assert_input_error(invoke("scan", path, "--label", "label"), str(path), ".xlsx", "CSV")


def test_garbage_parquet(invoke, tmp_path):
    path = tmp_path / "data.parquet"
    path.write_bytes(b"this is not a parquet file\n" * 20)
    assert_input_error(invoke("scan", path, "--label", "label"), str(path), "PARQUET")


def test_binary_bytes_in_a_csv(invoke, tmp_path):
    path = tmp_path / "data.csv"
    path.write_bytes(bytes(range(256)) * 20)
    assert_input_error(invoke("scan", path, "--label", "label"), str(path), "binary")


def test_empty_file(invoke, tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("")
    assert_input_error(invoke("scan", path, "--label", "label"), str(path), "empty")


def test_header_without_rows(invoke, tmp_path):
    path = tmp_path / "header.csv"
    path.write_text("f0,f1,label\n")
    assert_input_error(invoke("scan", path, "--label", "label"), str(path), "no rows")


def test_ragged_csv(invoke, tmp_path, table):
    path = tmp_path / "ragged.csv"
    text = table.to_csv(index=False).splitlines()
    text[5] += ",1,2,3"
    path.write_text("\n".join(text) + "\n")
    assert_input_error(invoke("scan", path, "--label", "label"), str(path), "line 6")


def test_broken_json_lines(invoke, tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text('{"f0": 1, "label": "a"}\n{"f0": 2, "label": \n')
    assert_input_error(invoke("scan", path, "--label", "label"), str(path), "JSONL")


def test_non_utf8_text_suggests_encoding(invoke, tmp_path, table):
    table["city"] = ["Zürich", "Genève", "Köln"] * (len(table) // 3)
    path = write_csv(table, tmp_path / "latin1.csv", encoding="latin-1")
    message = assert_input_error(invoke("scan", path, "--label", "label"), str(path), "--encoding", "utf-8")
    assert "line 2" in message  # the first data line holds the first non-UTF-8 byte
    ok = invoke("scan", path, "--label", "label", "--encoding", "latin-1", "--quiet")
    assert ok.exit_code in (0, 1), ok.output


def test_unknown_encoding(invoke, tmp_path, table):
    path = write_csv(table, tmp_path / "data.csv")
    assert_input_error(invoke("scan", path, "--label", "label", "--encoding", "klingon"), "klingon", "--encoding")


# ------------------------------------------------------------------------------------------------ labels


def test_absent_label_column_suggests_close_names(invoke, tmp_path, table):
    path = write_csv(table, tmp_path / "data.csv")
    assert_input_error(
        invoke("scan", path, "--label", "lable"), str(path), "'lable'", "Did you mean 'label'", "--label"
    )


def test_single_class(invoke, tmp_path, table):
    table["label"] = "stay"
    path = write_csv(table, tmp_path / "data.csv")
    assert_input_error(invoke("scan", path, "--label", "label"), str(path), "'label'", "single class", "'stay'")


def test_all_labels_missing(invoke, tmp_path, table):
    table["label"] = np.nan
    path = write_csv(table, tmp_path / "data.csv")
    assert_input_error(invoke("scan", path, "--label", "label"), str(path), "'label'", "empty in every row")


def test_some_labels_missing_names_the_first_row(invoke, tmp_path, table):
    table.loc[[7, 30, 31], "label"] = np.nan
    path = write_csv(table, tmp_path / "data.csv")
    assert_input_error(
        invoke("scan", path, "--label", "label"), str(path), "'label'", "3 empty cells", "first at row 7"
    )


def test_blank_labels_count_as_missing(invoke, tmp_path, table):
    table.loc[12, "label"] = "   "
    path = write_csv(table, tmp_path / "data.csv")
    assert_input_error(invoke("scan", path, "--label", "label"), str(path), "first at row 12")


def test_too_few_rows(invoke, tmp_path, table):
    path = write_csv(table.head(10), tmp_path / "data.csv")
    assert_input_error(invoke("scan", path, "--label", "label"), str(path), "only 10 rows", "20")


@pytest.mark.parametrize("kind", ["float", "integer"])
def test_regression_target_is_not_supported_yet(invoke, tmp_path, table, kind):
    values = np.random.default_rng(0).normal(size=len(table)) * 1000
    table["label"] = values if kind == "float" else np.round(values).astype(int)
    path = write_csv(table, tmp_path / "data.csv")
    assert_input_error(invoke("scan", path, "--label", "label"), str(path), "'label'", "not supported yet")


@pytest.mark.parametrize("offset", [17, 1000])
def test_many_integers_that_are_not_class_codes_are_a_quantity(invoke, tmp_path, offset):
    """Ages (60 values from 17 up) or amounts with gaps, on 2,000 rows, where 60 values are fewer than the 5% of
    the rows that the id check allows: not class codes."""
    table = make_table(n=2000)
    table["label"] = offset + np.arange(len(table)) % 60 * (1 if offset == 17 else 7)
    path = write_csv(table, tmp_path / "data.csv")
    assert_input_error(
        invoke("scan", path, "--label", "label"), str(path), "'label'", "not class codes", "store them as text"
    )


def test_codes_of_many_classes_are_classes() -> None:
    from poisonguard.io import load_dataset

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=6000), "label": np.arange(6000) % 60})
    assert len(load_dataset(frame, label="label").classes) == 60
    frame["label"] += 1  # 1..K
    assert len(load_dataset(frame, label="label").classes) == 60
    frame = frame[frame["label"] != 30]  # a sample without one class keeps its codes
    assert len(load_dataset(frame, label="label").classes) == 59


# ------------------------------------------------------------------------------------------------ features


def test_mixed_type_column_names_column_row_and_value(invoke, tmp_path, table):
    table["f2"] = table["f2"].astype(object)
    table.loc[[3, 50], "f2"] = "oops"
    path = write_csv(table, tmp_path / "data.csv")
    assert_input_error(
        invoke("scan", path, "--label", "label"),
        str(path),
        "'f2'",
        "'oops'",
        "row 3",
        "--type f2=categorical",
    )


def test_declaring_the_mixed_column_categorical_makes_it_scannable(invoke, tmp_path, table):
    table["f2"] = table["f2"].astype(object)
    table.loc[[3, 50], "f2"] = "oops"
    path = write_csv(table, tmp_path / "data.csv")
    res = invoke("scan", path, "--label", "label", "--type", "f2=categorical", "--quiet")
    assert res.exit_code in (0, 1), res.output


def test_only_feature_constant(invoke, tmp_path, table):
    frame = pd.DataFrame({"k": 1.0, "label": table["label"]})
    path = write_csv(frame, tmp_path / "data.csv")
    assert_input_error(invoke("scan", path, "--label", "label"), str(path), "no usable feature columns", "k: constant")


def test_one_constant_column_among_others_is_noted(invoke, tmp_path, table):
    table["k"] = 5
    path = write_csv(table, tmp_path / "data.csv")
    res = invoke("scan", path, "--label", "label", "--out", tmp_path / "o", "--fail-on", "never")
    assert res.exit_code == 0, res.output
    assert "Notes:" in res.stdout and "column 'k'" in res.stdout
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["data"]["ignored"]["k"] == "constant"
    assert any("'k'" in note for note in summary["notes"])


def test_infinity_names_column_and_row(invoke, tmp_path, table):
    table.loc[12, "f1"] = np.inf
    path = write_csv(table, tmp_path / "data.csv")
    assert_input_error(
        invoke("scan", path, "--label", "label"), str(path), "'f1'", "infinite", "row 12", "--exclude f1"
    )


def test_nested_json_values_are_read_as_text(invoke, tmp_path, table):
    path = tmp_path / "data.jsonl"
    with path.open("w") as fh:
        for i, rec in enumerate(table.to_dict("records")):
            fh.write(json.dumps({**rec, "meta": {"k": i % 3}, "tags": [i % 2, 1]}) + "\n")
    res = invoke("scan", path, "--label", "label", "--quiet")
    assert res.exit_code in (0, 1), res.output


# ------------------------------------------------------------------------------------------------ options


def test_unknown_type_kind(invoke, tmp_path, table):
    path = write_csv(table, tmp_path / "data.csv")
    assert_input_error(invoke("scan", path, "--label", "label", "--type", "f0=weird"), "'weird'", "'f0'", "categorical")


def test_malformed_type_option(invoke, tmp_path, table):
    path = write_csv(table, tmp_path / "data.csv")
    assert_input_error(invoke("scan", path, "--label", "label", "--type", "f0"), "COL=KIND", "'f0'")


def test_type_for_an_absent_column(invoke, tmp_path, table):
    path = write_csv(table, tmp_path / "data.csv")
    assert_input_error(invoke("scan", path, "--label", "label", "--type", "f9=numeric"), "'f9'", "--type")


@pytest.mark.parametrize("fpr", ["0", "0.7", "-0.1"])
def test_bad_fpr(invoke, tmp_path, table, fpr):
    path = write_csv(table, tmp_path / "data.csv")
    assert_input_error(invoke("scan", path, "--label", "label", "--fpr", fpr), "fpr", "0.5")


def test_negative_seed(invoke, tmp_path, table):
    path = write_csv(table, tmp_path / "data.csv")
    assert_input_error(invoke("scan", path, "--label", "label", "--seed", "-3"), "seed")


def test_absent_source_column(invoke, tmp_path, table):
    path = write_csv(table, tmp_path / "data.csv")
    assert_input_error(invoke("scan", path, "--label", "label", "--source", "regoin"), "'regoin'", "'region'")


def test_out_dir_not_empty(invoke, tmp_path, table):
    path = write_csv(table, tmp_path / "data.csv")
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("keep me")
    assert_input_error(invoke("scan", path, "--label", "label", "--out", out), str(out), "not empty", "--force")
    assert [p.name for p in out.iterdir()] == ["old.txt"]


def test_bad_options_are_checked_before_the_file_is_read(invoke, tmp_path):
    # an invalid --fpr is reported even when the file is missing: options are checked first
    assert_input_error(invoke("scan", tmp_path / "missing.csv", "--label", "label", "--fpr", "2"), "fpr")


# -------------------------------------------------------------------------------------------- input safety


def test_input_file_is_unchanged_by_a_scan(invoke, tmp_path, poisoned_frame):
    path = write_csv(poisoned_frame, tmp_path / "data.csv")
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    mtime = path.stat().st_mtime_ns
    res = invoke("scan", path, "--label", "label", "--out", tmp_path / "out", "--quiet")
    assert res.exit_code in (0, 1), res.output
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    assert path.stat().st_mtime_ns == mtime
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.csv", "out"]
