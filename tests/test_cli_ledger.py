"""End-to-end CLI: contract infer/check, ledger add/trust/list/show, diff, and scan --baseline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import make_table


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("cli-ledger")
    full = make_table(600, seed=8)
    full.insert(0, "uid", np.arange(600))
    trusted, new = full.iloc[:400].reset_index(drop=True), full.iloc[400:].reset_index(drop=True)
    poisoned = new.copy()
    rows = np.arange(0, 200, 8)
    poisoned.loc[rows, "label"] = poisoned.loc[rows, "label"].map({"churn": "stay", "stay": "churn"}).to_numpy()
    relabelled = trusted.copy()
    relabelled.loc[[3, 4], "label"] = relabelled.loc[[3, 4], "label"].map({"churn": "stay", "stay": "churn"})
    relabelled.loc[9, "f1"] = 42.0
    broken = trusted.copy()
    broken.loc[[1, 2], "f0"] = 1e9
    broken.loc[5, "region"] = "atlantis"
    paths = {}
    for name, frame in (
        ("trusted", trusted),
        ("new", new),
        ("poisoned", poisoned),
        ("relabelled", relabelled),
        ("broken", broken),
    ):
        paths[name] = d / f"{name}.csv"
        frame.to_csv(paths[name], index=False)
    return paths


def test_contract_infer_and_check(invoke, files: dict[str, Path], tmp_path: Path) -> None:
    res = invoke("contract", "infer", files["trusted"], "--label", "label", "--id", "uid")
    assert res.exit_code == 0, res.output
    assert res.stdout.startswith("version: 1\n") and "region:" in res.stdout
    contract = tmp_path / "c.yaml"
    assert invoke("contract", "infer", files["trusted"], "--label", "label", "--out", contract).exit_code == 0
    again = invoke("contract", "infer", files["trusted"], "--label", "label", "--out", contract)
    assert again.exit_code == 2 and "exists; pass --force" in again.stderr
    ok = invoke("contract", "check", files["trusted"], contract)
    assert ok.exit_code == 0 and "holds the contract" in ok.stdout
    bad = invoke("contract", "check", files["broken"], contract)
    assert bad.exit_code == 2, bad.output
    assert "above_max" in bad.stdout and "category" in bad.stdout and "1, 2" in bad.stdout
    contract.write_text(contract.read_text().replace("type: numeric", "type: numerik", 1))
    err = invoke("contract", "check", files["trusted"], contract)
    assert err.exit_code == 2 and "error:" in err.stderr and "line" in err.stderr and "numerik" in err.stderr


def test_ledger_commands(invoke, files: dict[str, Path], tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'l.db'}"
    added = invoke("ledger", "add", files["trusted"], "--label", "label", "--db", db, "--id", "uid", "--meta", "by=ops")
    assert added.exit_code == 0, added.output
    assert "trusted@1" in added.stdout and "untrusted" in added.stdout and "by=ops" in added.stdout
    assert invoke("ledger", "trust", "trusted@1", "--db", db).exit_code == 0
    listed = invoke("ledger", "list", "--db", db)
    assert listed.exit_code == 0 and "trusted@1" in listed.stdout and "yes" in listed.stdout
    shown = invoke("ledger", "show", "trusted", "--db", db)
    assert shown.exit_code == 0 and "trusted@1" in shown.stdout and "label 'label', id uid" in shown.stdout
    missing = invoke("ledger", "show", "trusted@7", "--db", db)
    assert missing.exit_code == 2 and "no version 'trusted@7'" in missing.stderr
    bad_meta = invoke("ledger", "add", files["trusted"], "--label", "label", "--db", db, "--meta", "novalue")
    assert bad_meta.exit_code == 2 and "--meta expects KEY=VALUE" in bad_meta.stderr


def test_diff_command(invoke, files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "diff"
    res = invoke("diff", files["trusted"], files["relabelled"], "--id", "uid", "--label", "label", "--out", out)
    assert res.exit_code == 0, res.output
    assert "0 added, 0 removed, 3 changed (2 label changes)" in res.stdout
    changes = pd.read_csv(out / "label_changes.csv")
    assert sorted(changes["id"]) == [3, 4]
    assert pd.read_csv(out / "changed.csv").set_index("id").loc[9, "changed_columns"] == "f1"
    assert invoke("diff", files["trusted"], files["new"], "--id", "nope").exit_code == 2


def test_scan_against_a_baseline(invoke, files: dict[str, Path], tmp_path: Path) -> None:
    clean = invoke("scan", files["new"], "--label", "label", "--baseline", files["trusted"], "--quiet")
    assert clean.exit_code == 0, clean.output
    assert clean.stdout.startswith("clean:")
    out = tmp_path / "inc"
    pois = invoke("scan", files["poisoned"], "--label", "label", "--baseline", files["trusted"], "--out", out)
    assert pois.exit_code == 1, pois.output
    assert "POISONED" in pois.stdout and "(significant)" in pois.stdout and "200 rows scored" in pois.stdout
    assert {p.name for p in out.iterdir()} == {"rows.csv", "flagged.csv", "summary.json"}


def test_scan_against_a_ledger_version(invoke, files: dict[str, Path], tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'l.db'}"
    assert invoke("ledger", "add", files["trusted"], "--label", "label", "--id", "uid", "--db", db).exit_code == 0
    args = ("scan", files["relabelled"], "--label", "label", "--db", db, "--quiet")
    untrusted = invoke(*args, "--baseline", "ledger:trusted@1")
    assert untrusted.exit_code == 2 and "is not trusted" in untrusted.stderr
    none = invoke(*args, "--baseline", "ledger:trusted")
    assert none.exit_code == 2 and "no trusted version" in none.stderr
    assert invoke("ledger", "trust", "trusted@1", "--db", db).exit_code == 0
    res = invoke(*args, "--baseline", "ledger:trusted", "--fail-on", "never")
    assert res.exit_code == 0, res.output
    assert "of 3 new rows flagged" in res.stdout  # two relabelled rows and one changed feature, matched by uid
    missing = invoke("scan", files["new"], "--label", "label", "--baseline", tmp_path / "nope.csv")
    assert missing.exit_code == 2 and "no such file" in missing.stderr
