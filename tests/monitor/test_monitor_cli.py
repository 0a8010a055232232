"""`poisonguard monitor` and `poisonguard profile` end to end on files."""

from __future__ import annotations

import json

import joblib
import numpy as np

from monitor_data import draw, fit_model
from poisonguard.triggers import Trigger


def test_monitor_quiet_then_alerting(invoke, tmp_path) -> None:
    ref, same, moved = draw(3000, 0), draw(2000, 1), draw(2000, 2, shift=1.0)
    for name, frame in (("ref", ref), ("same", same), ("moved", moved)):
        frame.to_csv(tmp_path / f"{name}.csv", index=False)
    out = tmp_path / "report.json"
    res = invoke("monitor", tmp_path / "ref.csv", tmp_path / "same.csv", "--label", "label", "--json", out)
    assert res.exit_code == 0, res.output
    assert "No alert." in res.output
    res = invoke("monitor", tmp_path / "ref.csv", tmp_path / "moved.csv", "--label", "label", "--json", out)
    assert res.exit_code == 1, res.output
    assert "feature_drift" in res.output and "Domain classifier" in res.output
    report = json.loads(out.read_text())
    assert {a["subject"] for a in report["alerts"] if a["kind"] == "feature_drift"} == {"a"}
    # predictions in a column of both files: prediction drift, and accuracy once the new file has labels
    ref.assign(pred=ref["label"]).to_csv(tmp_path / "ref_p.csv", index=False)
    wrong = same.assign(pred=np.where(np.arange(len(same)) % 3 == 0, "yes", same["label"]))
    wrong.to_csv(tmp_path / "new_p.csv", index=False)
    args = ("--label", "label", "--prediction", "pred", "--no-multivariate", "--json", out)
    res = invoke("monitor", tmp_path / "ref_p.csv", tmp_path / "new_p.csv", *args)
    assert res.exit_code == 1, res.output
    report = json.loads(out.read_text())
    assert {a["kind"] for a in report["alerts"]} == {"performance", "prediction_drift"}
    assert "pred" not in {f["column"] for f in report["drift"]["features"]}


def test_profile_then_monitor_with_model_and_triggers(invoke, tmp_path) -> None:
    ref = draw(3000, 0)
    model_path = tmp_path / "model.joblib"
    joblib.dump(fit_model(ref), model_path)
    trig = Trigger(
        conditions={"c": 8.0, "region": "west"}, target="yes", support=5, carriers=5, expected=0.1, pvalue=1e-6
    )
    (tmp_path / "summary.json").write_text(json.dumps({"verdict": "poisoned", "triggers": [trig.to_dict()]}))
    ref.to_csv(tmp_path / "ref.csv", index=False)
    res = invoke(
        "profile",
        tmp_path / "ref.csv",
        "--label",
        "label",
        "--model",
        model_path,
        "--triggers",
        tmp_path / "summary.json",
        "--out",
        tmp_path / "profile.json",
    )
    assert res.exit_code == 0, res.output
    new = draw(5000, 3).drop(columns="label")
    rows = np.arange(0, 5000, 500)
    new.iloc[rows] = trig.apply(new.iloc[rows]).to_numpy()
    new.to_csv(tmp_path / "new.csv", index=False)
    out = tmp_path / "r.json"
    res = invoke("monitor", tmp_path / "profile.json", tmp_path / "new.csv", "--model", model_path, "--json", out)
    assert res.exit_code == 1, res.output
    assert "10 hits" in res.output and "trigger" in res.output
    report = json.loads(out.read_text())
    assert report["watch"]["triggers"][0]["hits"] == 10
    assert report["drift"]["prediction"] is not None  # the model's predictions were profiled and compared


def test_monitor_bad_input_exits_2(invoke, tmp_path) -> None:
    draw(100, 0).to_csv(tmp_path / "ref.csv", index=False)
    draw(100, 1).drop(columns=["b"]).to_csv(tmp_path / "new.csv", index=False)
    res = invoke(
        "monitor", tmp_path / "ref.csv", tmp_path / "new.csv", "--label", "label", "--json", tmp_path / "o.json"
    )
    assert res.exit_code == 2
    assert "error:" in res.output and "'b'" in res.output and "Traceback" not in res.output
    res = invoke("monitor", tmp_path / "ref.csv", tmp_path / "nope.csv", "--json", tmp_path / "o.json")
    assert res.exit_code == 2 and "no such file" in res.output
    res = invoke("monitor", tmp_path / "ref.csv", tmp_path / "ref.csv", "--model", tmp_path / "ref.csv")
    assert res.exit_code == 2 and "joblib" in res.output


def test_serve_refuses_to_run_without_a_token(invoke, monkeypatch) -> None:
    monkeypatch.delenv("POISONGUARD_TOKEN", raising=False)
    res = invoke("serve", "--db", "sqlite://")
    assert res.exit_code == 2
    assert "--token" in res.output and "POISONGUARD_TOKEN" in res.output
    res = invoke("serve", "--db", "sqlite://", "--token", "t", "--model", "churn")
    assert res.exit_code == 2 and "NAME=PATH" in res.output


def test_public_names() -> None:
    import poisonguard.monitor as m

    assert m.__all__ == sorted(m.__all__)
    assert set(m.__all__) == {
        "Alert",
        "ColumnProfile",
        "DriftReport",
        "DriftThresholds",
        "GateResult",
        "JsonlEventLog",
        "Profile",
        "RetrainEvent",
        "RetrainPolicy",
        "RetrainTrigger",
        "TriggerWatch",
        "WatchReport",
        "command_gate",
        "compare",
    }


def test_a_profile_saved_under_any_name_is_read_as_a_profile(invoke, tmp_path) -> None:
    """`profile --out ref` writes exactly `ref`; monitor read only `.json` names as profiles and then refused
    `ref` as a data file of unknown type."""
    draw(2000, 0).to_csv(tmp_path / "ref.csv", index=False)
    draw(1000, 1).to_csv(tmp_path / "new.csv", index=False)
    res = invoke("profile", tmp_path / "ref.csv", "--label", "label", "--out", tmp_path / "reference")
    assert res.exit_code == 0, res.output
    out = tmp_path / "r.json"
    res = invoke("monitor", tmp_path / "reference", tmp_path / "new.csv", "--label", "label", "--json", out)
    assert res.exit_code == 0, res.output
    assert json.loads(out.read_text())["drift"]["n_reference"] == 2000
