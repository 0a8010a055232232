"""The CI gate: policy files (with line numbers for mistakes), rule judgements, JUnit and SARIF outputs."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pandas as pd
import pytest

from poisonguard.errors import ConfigError
from poisonguard.gate import evaluate_gate
from poisonguard.policy import Policy, find_policy, load_policy

SCAN = {
    "verdict": "suspicious",
    "evidence": ["duplicates: 40 rows flagged"],
    "rows": 1000,
    "flagged": 30,
    "flagged_fraction": 0.03,
    "estimated_poisoned_fraction": {"value": 0.02, "low": 0.01, "high": 0.03},
    "triggers": [{"description": "a = 9 -> class 'x'"}],
    "by_source": [
        {"source": "acme", "rows": 500, "flagged": 5, "flagged_fraction": 0.01, "worse_than_rest": False},
        {"source": "shady", "rows": 500, "flagged": 25, "flagged_fraction": 0.05, "worse_than_rest": True},
    ],
}


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        (
            "version: 1\nscan:\n  allowed_verdicts: [clean]\n  max_flaged_fraction: 0.02\n",
            4,
            "did you mean 'max_flagged_fraction'",
        ),
        ("version: 1\nscan:\n  max_flagged_fraction: 2\n", 3, "between 0 and 1"),
        ("scan:\n  allowed_verdicts: [clean, dirty]\n", 2, "clean, suspicious, poisoned"),
        ("version: 1\nscan:\n  allowed_verdicts: [clean\n  x: 1\n", 4, "not valid YAML"),
        (
            "version: 1\nredteam:\n  min_poison_budget: 0.05\nevaluaton:\n  max_asr: 0.1\n",
            4,
            "did you mean 'evaluation'",
        ),
        ("version: 2\n", 1, "version 2"),
        ("scan:\n  sources:\n    vendor_b: 0.1\n", 3, "must be a mapping"),
        ("scan:\n  sources:\n    vendor_b: {max_rows: 3}\n", 3, "unknown key 'max_rows'"),
    ],
)
def test_bad_yaml_policy_names_the_line(tmp_path: Path, text: str, line: int, fragment: str) -> None:
    p = write(tmp_path, "poisonguard.yaml", text)
    with pytest.raises(ConfigError) as exc:
        load_policy(p)
    msg = str(exc.value)
    assert msg.startswith(f"{p}, line {line}:"), msg
    assert fragment in msg


def test_pyproject_policy_and_its_line_numbers(tmp_path: Path) -> None:
    good = write(
        tmp_path,
        "pyproject.toml",
        '[project]\nname = "x"\n\n[tool.poisonguard.scan]\nallowed_verdicts = ["clean"]\nmax_triggers = 0\n',
    )
    assert find_policy(tmp_path) == good
    pol = load_policy(good)
    assert pol.scan == {"allowed_verdicts": ["clean"], "max_triggers": 0}
    good.write_text(good.read_text().replace("max_triggers = 0", "max_triggers = -1"))
    with pytest.raises(ConfigError, match=r"pyproject.toml, line 6: 'scan.max_triggers'"):
        load_policy(good)
    write(tmp_path, "poisonguard.yaml", "scan: {max_triggers: 0}\n")
    assert find_policy(tmp_path).name == "poisonguard.yaml"  # the YAML file wins


def test_scan_rules(tmp_path: Path) -> None:
    pol = Policy(
        scan={
            "allowed_verdicts": ["clean", "suspicious"],
            "max_flagged_fraction": 0.02,
            "max_estimated_poisoned_fraction": 0.05,
            "max_triggers": 0,
            "sources": {"default": {"max_flagged_fraction": 0.04}, "acme": {"max_flagged_fraction": 0.005}},
            "forbid_worse_sources": True,
        }
    )
    res = evaluate_gate(pol, scan=SCAN)
    verdicts = {c.rule: c.passed for c in res.checks}
    assert verdicts == {
        "scan.allowed_verdicts": True,
        "scan.max_flagged_fraction": False,
        "scan.max_estimated_poisoned_fraction": True,
        "scan.max_triggers": False,
        "scan.sources": False,
        "scan.forbid_worse_sources": False,
    }
    sources = next(c for c in res.checks if c.rule == "scan.sources")
    assert len(sources.details) == 2  # acme over its own limit, shady over the default
    assert not res.passed


def test_missing_inputs_break_rules_instead_of_passing() -> None:
    pol = Policy(
        scan={"max_triggers": 0}, redteam={"min_poison_budget": 0.05}, evaluation={"max_asr": 0.1}, contracts=["c.yaml"]
    )
    res = evaluate_gate(pol)
    assert res.checks and not any(c.passed for c in res.checks)
    assert {c.section for c in res.checks} == {"scan", "redteam", "evaluation", "contracts"}


def test_redteam_and_evaluation_rules() -> None:
    redteam = {
        "runs": [
            {"attack": "label_flip", "rate": 0.01, "flag_recall": 0.2, "detection_auroc": 0.7, "sanitized_asr": None},
            {"attack": "label_flip", "rate": 0.1, "flag_recall": 0.9, "detection_auroc": 0.95, "sanitized_asr": None},
            {"attack": "backdoor", "rate": 0.1, "flag_recall": 1.0, "detection_auroc": 1.0, "sanitized_asr": 0.3},
        ],
        "budget": [
            {"attack": "label_flip", "budget": 0.1, "max_damage": 0.03},
            {"attack": "backdoor", "budget": 0.01, "max_damage": 0.9},
        ],
    }
    pol = Policy(
        redteam={"min_poison_budget": 0.05, "min_flag_recall": 0.8, "recall_from_rate": 0.05, "max_sanitized_asr": 0.1}
    )
    got = {c.rule: c for c in evaluate_gate(pol, redteam=redteam).checks}
    assert not got["redteam.min_poison_budget"].passed and "backdoor" in got["redteam.min_poison_budget"].details[0]
    assert got["redteam.min_flag_recall"].passed  # the 1% run is below recall_from_rate
    assert not got["redteam.max_sanitized_asr"].passed
    evaluation = {
        "regressions": [
            {
                "rule": "metric_drop",
                "metric": "accuracy",
                "slice": None,
                "baseline": 0.9,
                "new": 0.895,
                "significant": True,
            },
            {
                "rule": "slice_drop",
                "metric": "accuracy",
                "slice": "education = Bachelors",
                "baseline": 0.85,
                "new": 0.6,
                "significant": True,
                "p_value": 1e-6,
            },
            {
                "rule": "slice_drop",
                "metric": "accuracy",
                "slice": "age <= 25",
                "baseline": 0.9,
                "new": 0.7,
                "significant": False,
            },
            {"rule": "asr", "metric": "trigger 1", "baseline": 0.02, "new": 0.97},
        ]
    }
    pol = Policy(evaluation={"max_metric_drop": 0.01, "max_slice_drop": 0.05, "max_asr": 0.05})
    got = {c.rule: c for c in evaluate_gate(pol, evaluation=evaluation).checks}
    assert got["evaluation.max_metric_drop"].passed  # 0.005 is within the allowed drop
    assert not got["evaluation.max_slice_drop"].passed
    assert got["evaluation.max_slice_drop"].details == [
        "accuracy in slice education = Bachelors: 0.85 -> 0.6 (p = 1e-06)"
    ]
    assert not got["evaluation.max_asr"].passed


def test_gate_cli_on_a_saved_scan(invoke, poisoned_csv: Path, poisoned_frame: pd.DataFrame, tmp_path: Path) -> None:
    out = tmp_path / "scan"
    assert invoke("scan", poisoned_csv, "-l", "label", "--out", out, "-q", "--fail-on", "never").exit_code == 0
    policy = write(
        tmp_path, "poisonguard.yaml", "version: 1\nscan:\n  allowed_verdicts: [clean]\n  max_flagged_fraction: 0.5\n"
    )
    junit, sarif, js = tmp_path / "gate.xml", tmp_path / "gate.sarif", tmp_path / "gate.json"
    res = invoke(
        "gate",
        "--policy",
        policy,
        "--scan",
        out,
        "--data",
        poisoned_csv,
        "--junit",
        junit,
        "--sarif",
        sarif,
        "--json",
        js,
    )
    assert res.exit_code == 1, res.output
    assert "scan.allowed_verdicts" in res.output and "Gate failed: 1 of 2 rules broken" in res.output
    suite = ET.parse(junit).getroot().find("testsuite")
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == ["scan.allowed_verdicts", "scan.max_flagged_fraction"]
    assert cases[0].find("failure") is not None and cases[1].find("failure") is None
    doc = json.loads(sarif.read_text())
    assert doc["version"] == "2.1.0"
    results = doc["runs"][0]["results"]
    assert results[0]["ruleId"] == "scan.allowed_verdicts" and results[0]["level"] == "error"
    # each flagged row points at its own line of the CSV (line 1 is the header)
    rows = pd.read_csv(out / "rows.csv")
    lines = poisoned_csv.read_text().splitlines()
    row_results = [r for r in results if r["ruleId"] == "scan.flagged_row"]
    assert len(row_results) == int(rows["flagged"].sum())
    assert {int(r["message"]["text"].split()[1]) for r in row_results} == set(rows.loc[rows["flagged"], "row"])
    for r in row_results[:5]:
        line = r["locations"][0]["physicalLocation"]["region"]["startLine"]
        row = int(r["message"]["text"].split()[1])
        assert lines[line - 1] == poisoned_frame.iloc[[row]].to_csv(index=False, header=False).strip()
    assert json.loads(js.read_text())["passed"] is False
    lenient = write(tmp_path, "lenient.yaml", "scan:\n  allowed_verdicts: [clean, suspicious, poisoned]\n")
    assert invoke("gate", "--policy", lenient, "--scan", out / "summary.json").exit_code == 0


def test_scan_with_policy_decides_the_exit_code(invoke, clean_csv: Path, poisoned_csv: Path, tmp_path: Path) -> None:
    policy = write(tmp_path, "p.yaml", "scan:\n  allowed_verdicts: [clean]\n  max_triggers: 0\n")
    assert invoke("scan", clean_csv, "-l", "label", "--policy", policy, "-q").exit_code == 0
    res = invoke("scan", poisoned_csv, "-l", "label", "--policy", policy, "-q", "--junit", tmp_path / "j.xml")
    assert res.exit_code == 1 and (tmp_path / "j.xml").is_file()
    bad = write(tmp_path, "bad.yaml", "scan:\n  max_trigers: 0\n")
    res = invoke("scan", clean_csv, "-l", "label", "--policy", bad, "-q")
    assert res.exit_code == 2 and "line 2" in res.output
    res = invoke("scan", clean_csv, "-l", "label", "--junit", tmp_path / "j2.xml", "-q")
    assert res.exit_code == 2 and "--policy" in res.output


def test_gate_without_policy_or_with_bad_inputs(invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    res = invoke("gate")
    assert res.exit_code == 2 and "no policy" in res.output
    write(tmp_path, "poisonguard.yaml", "redteam:\n  min_poison_budget: 0.05\n")
    write(tmp_path, "rt.json", "{not json")
    res = invoke("gate", "--redteam", "rt.json")
    assert res.exit_code == 2 and "not valid JSON" in res.output
    res = invoke("gate")  # found in the working directory; the red-team result is missing: broken, exit 1
    assert res.exit_code == 1 and "no red-team result" in res.output


def test_the_documented_example_policy_loads() -> None:
    root = Path(__file__).resolve().parents[1]
    pol = load_policy(root / "docs" / "ci" / "poisonguard.yaml")
    assert pol.scan["allowed_verdicts"] == ["clean"]


def test_gate_reads_evaluate_regressions_directly(invoke, tmp_path: Path) -> None:
    """evaluate --json feeds the policy's evaluation rules: a damaged segment breaks max_slice_drop."""
    import numpy as np

    import poisonguard as pg
    from test_evaluate import planted

    df, base_p, base_right = planted(3000, 1, 0.85)
    rng = np.random.default_rng(5)
    seg = (df["region"] == "south").to_numpy()
    spoil = seg & base_right & (rng.random(len(df)) < 0.3)
    new_p = np.where(spoil[:, None], base_p[:, ::-1], base_p)
    damaged = pg.evaluate(new_p, df, label="label", baseline=base_p, n_boot=100)
    same = pg.evaluate(base_p, df, label="label", baseline=base_p, n_boot=100)
    pol = Policy(evaluation={"max_metric_drop": 0.05, "max_slice_drop": 0.05})
    got = {c.rule: c for c in evaluate_gate(pol, evaluation=damaged.to_dict()).checks}
    assert not got["evaluation.max_slice_drop"].passed
    assert any("region = 'south'" in d for d in got["evaluation.max_slice_drop"].details)
    assert evaluate_gate(pol, evaluation=same.to_dict()).passed
    damaged.to_json(tmp_path / "ev.json")
    policy = write(tmp_path, "p.yaml", "evaluation:\n  max_slice_drop: 0.05\n")
    res = invoke("gate", "--policy", policy, "--evaluation", tmp_path / "ev.json")
    assert res.exit_code == 1 and "evaluation.max_slice_drop" in res.output


def test_required_contracts_are_checked_on_the_data(invoke, clean_csv: Path, tmp_path: Path) -> None:
    res = invoke("contract", "infer", clean_csv, "--label", "label", "--out", tmp_path / "contract.yaml")
    assert res.exit_code == 0, res.output
    policy = write(tmp_path, "poisonguard.yaml", "contracts: [contract.yaml]\n")  # relative to the policy file
    assert invoke("gate", "--policy", policy, "--data", clean_csv).exit_code == 0
    broken = pd.read_csv(clean_csv)
    broken.loc[:9, "region"] = "atlantis"  # a category the contract does not allow
    broken.to_csv(tmp_path / "broken.csv", index=False)
    res = invoke("gate", "--policy", policy, "--data", tmp_path / "broken.csv", "--junit", tmp_path / "j.xml")
    assert res.exit_code == 1, res.output
    assert "contracts.contract.yaml" in res.output and "region" in res.output
    res = invoke("gate", "--policy", policy)
    assert res.exit_code == 1 and "no data file was given" in res.output
