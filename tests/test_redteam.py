"""Red-team runs: damage, detection and sanitizing per attack and rate; the poison budget; the CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from sklearn.datasets import make_classification
from typer.testing import CliRunner

from poisonguard.cli import app
from poisonguard.redteam import redteam


def _table(n: int = 400) -> pd.DataFrame:
    X, y = make_classification(n_samples=n, n_features=6, n_informative=4, class_sep=2.0, random_state=3)
    df = pd.DataFrame(X, columns=[f"x{i}" for i in range(6)])
    df["label"] = np.where(y == 1, "yes", "no")
    return df


def test_backdoor_works_and_the_budget_is_its_smallest_damaging_rate() -> None:
    r = redteam(_table(), label="label", attacks=["backdoor", "duplicate_flood"], rates=[0.05, 0.1], seed=0)
    assert set(r.runs["attack"]) == {"backdoor", "duplicate_flood"}
    assert len(r.runs) == 4
    bd = r.runs[r.runs["attack"] == "backdoor"]
    assert (bd["asr"] > 0.5).all()  # the planted trigger works on the poisoned model
    budget = r.budget.set_index("attack")["budget"]
    assert budget["backdoor"] == 0.05
    # the scan finds the trigger, and dropping its rows takes the backdoor out of the retrained model
    assert (bd["detection_auroc"] > 0.97).all()
    assert (bd["sanitized_asr"] <= 0.05).all()
    flood = r.runs[r.runs["attack"] == "duplicate_flood"]
    assert (flood["detection_auroc"] > 0.9).all()
    assert ((flood["flag_recall"] > 0.5) & (flood["flag_precision"] > 0.5)).all()


def test_redteam_cli_writes_json_and_exits_zero(tmp_path) -> None:
    data = tmp_path / "train.csv"
    _table(300).to_csv(data, index=False)
    before = data.read_bytes()
    out = tmp_path / "rt.json"
    res = CliRunner().invoke(
        app, ["redteam", str(data), "--label", "label", "-a", "label_flip", "-r", "0.05", "--json", str(out), "-q"]
    )
    assert res.exit_code == 0, res.output
    report = json.loads(out.read_text())
    assert report["runs"][0]["attack"] == "label_flip"
    assert 0.0 <= report["runs"][0]["detection_auroc"] <= 1.0
    assert data.read_bytes() == before


def test_redteam_cli_rejects_an_unknown_attack(tmp_path) -> None:
    data = tmp_path / "train.csv"
    _table(100).to_csv(data, index=False)
    res = CliRunner().invoke(app, ["redteam", str(data), "--label", "label", "-a", "nope"])
    assert res.exit_code == 2
    assert "unknown attack 'nope'" in res.output


def test_redteam_cli_prints_notes_about_the_input(tmp_path) -> None:
    data = tmp_path / "train.csv"
    _table(300).assign(customer_id=np.arange(300)).to_csv(data, index=False)
    res = CliRunner().invoke(app, ["redteam", str(data), "--label", "label", "-a", "label_flip", "-r", "0.05", "-q"])
    assert res.exit_code == 0, res.output
    assert "note:" in res.stdout and "customer_id" in res.stdout


def test_a_class_of_one_row_is_left_out_with_a_note() -> None:
    """A class held by one row can be neither split between training and testing nor measured; it used to go
    wherever the split put it, and the ASR then read the target's code among the test split's own classes (an
    IndexError when the target was missing there)."""
    df = _table(600)
    df.loc[378, "label"] = "a-single"
    r = redteam(df, label="label", attacks=["backdoor"], rates=[0.05], seed=0)
    assert any("1 row(s) of classes held by a single row ('a-single')" in n for n in r.settings["notes"])
    assert r.settings["train_rows"] + r.settings["test_rows"] == 599
    run = r.runs.iloc[0]
    assert run["asr"] > 0.5 and run["sanitized_asr"] < run["asr"]  # a target that the model can learn


def test_a_class_too_small_for_the_test_split_is_a_clear_input_error(tmp_path) -> None:
    df = _table(300)
    df["label"] = "no"
    df.loc[0, "label"] = "yes"
    path = tmp_path / "one_positive.csv"
    df.to_csv(path, index=False)
    res = CliRunner().invoke(app, ["redteam", str(path), "--label", "label", "--attacks", "label_flip"])
    assert res.exit_code == 2
    assert "all but 'yes' (1 row) of the rows are of class 'no'" in res.output
