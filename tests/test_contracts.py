"""Data contracts: inferred from trusted data, they hold on it and report every violation of a corrupted copy."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from poisonguard.contracts import Contract, check_contract, infer_contract
from poisonguard.errors import ConfigError
from synth import mixed_frame


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    f = mixed_frame(200, seed=2)
    f.insert(0, "uid", np.arange(1000, 1200))
    return f


def test_round_trip_holds_on_the_data_it_was_inferred_from(frame: pd.DataFrame, tmp_path) -> None:
    contract = infer_contract(frame, label="label", id="uid")
    path = tmp_path / "contract.yaml"
    contract.save(path)
    loaded = Contract.load(path)
    assert loaded.spec == contract.spec
    spec = loaded.spec
    assert spec["version"] == 1 and spec["id"] == {"column": "uid", "unique": True}
    assert spec["columns"]["amount"]["type"] == "numeric" and spec["columns"]["colour"]["type"] == "categorical"
    assert spec["columns"]["member"]["type"] == "boolean" and spec["columns"]["note"]["type"] == "text"
    assert spec["columns"]["colour"]["categories"] == ["blue", "green", "grey", "red"]
    assert set(spec["label"]["classes"]) == {"ham", "spam"}
    result = check_contract(frame, path)
    assert result.ok, result.violations
    # a file written by another tool (shuffled rows, numbers as text with spaces) still holds
    text = frame.sample(frac=1.0, random_state=0).astype(str).replace({"nan": "", "None": ""})
    text["amount"] = " " + text["amount"]
    assert loaded.check(text).ok


def test_every_violation_is_reported_with_counts_and_examples(frame: pd.DataFrame) -> None:
    contract = infer_contract(frame, label="label", id="uid")
    bad = frame.copy()
    bad.loc[[3, 17, 40], "amount"] = 1e6  # above the maximum (and it moves the mean and spread)
    bad.loc[[5, 6], "colour"] = "purple"  # unseen category
    bad["weight"] = bad["weight"].astype(object)
    bad.loc[9, "weight"] = "heavy"  # not a number
    bad.loc[0:99, "score"] = np.nan  # null rate 50%
    bad.loc[[11, 12], "uid"] = 1000  # duplicate ids (with row 0)
    bad.loc[[21], "label"] = "eggs"  # unknown label
    bad["extra"] = 1
    bad = bad.drop(columns=["member"])
    result = contract.check(bad)
    assert not result.ok
    found = {(v.rule, v.column): v for v in result.violations}
    assert found[("above_max", "amount")].count == 3 and found[("above_max", "amount")].examples == [3, 17, 40]
    assert ("mean", "amount") in found and ("std", "amount") in found
    assert found[("category", "colour")].examples == [5, 6]
    assert found[("type", "weight")].examples == [9]
    assert found[("null_rate", "score")].count == 100 and found[("null_rate", "score")].examples[:2] == [0, 1]
    assert found[("id_unique", "uid")].examples == [0, 11, 12]
    assert found[("label_set", "label")].examples == [21]
    assert ("missing_column", "member") in found and ("unexpected_column", "extra") in found
    assert all(v.message for v in result.violations)
    assert result.to_dict()["violations"][0].keys() == {"rule", "column", "count", "examples", "message"}


def test_class_balance_bounds(frame: pd.DataFrame) -> None:
    contract = infer_contract(frame, label="label")
    skewed = pd.concat([frame, frame[frame["label"] == "spam"].iloc[:80]], ignore_index=True)
    rules = {v.rule for v in contract.check(skewed).violations}
    assert "class_balance" in rules


@pytest.mark.parametrize(
    ("text", "line", "what"),
    [
        ("version: 1\ncolumns:\n  a: {type: numeric\n  b: 2\n", 4, "not valid YAML"),
        ("version: 1\ncolumns:\n  a:\n    type: numeric\n    maxx: 3\n", 5, "unknown rule 'maxx'"),
        ("version: 1\ncolumns:\n  a:\n    type: number\n", 4, "unknown type 'number'"),
        ("version: 2\ncolumns:\n  a: {type: numeric}\n", 1, "version must be 1"),
        ("version: 1\ncolumns:\n  a:\n    mean: [3]\n", 4, "'mean' must be"),
        ("version: 1\nlabel: y\ncolumns:\n  a: {}\n", 2, "'label' must be"),
    ],
)
def test_yaml_errors_give_the_line(text: str, line: int, what: str) -> None:
    with pytest.raises(ConfigError, match=rf"c\.yaml: line {line}\b.*{what}"):
        Contract.from_yaml(text, "c.yaml")


def test_edited_contract_is_honoured(frame: pd.DataFrame) -> None:
    contract = infer_contract(frame, label="label")
    text = contract.to_yaml()
    loosened = Contract.from_yaml(text.replace("allow_extra_columns: false", "allow_extra_columns: true"))
    assert loosened.check(frame.assign(extra=1)).ok
    assert not contract.check(frame.assign(extra=1)).ok
