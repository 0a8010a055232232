"""evaluate: metrics against scikit-learn, interval coverage, weak slices, regressions, backdoor probe, model
loading and bad input. Synthetic data with planted effects and fixed seeds; each test runs in about a second."""

from __future__ import annotations

import json
import warnings
from functools import cache

import joblib
import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    brier_score_loss,
    f1_score,
    log_loss,
    precision_score,
    recall_score,
    roc_auc_score,
)
from typer.testing import CliRunner

import poisonguard
from poisonguard.attacks import get_attack
from poisonguard.cli import app
from poisonguard.errors import ConfigError, InputError
from poisonguard.evaluate import _Scorer, boot_weights, load_triggers
from poisonguard.models import UnpicklingWarning
from poisonguard.redteam import FrameModel
from poisonguard.slices import Condition, parse_slice
from poisonguard.stats import benjamini_hochberg, holm

REGIONS = np.array(["north", "south", "east", "west", "centre", "island"])


def frame(n: int, seed: int) -> pd.DataFrame:
    """Features only: four numbers, a region (six values) and a channel (three)."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(rng.normal(size=(n, 4)).round(4), columns=[f"x{i}" for i in range(4)])
    df["region"] = rng.choice(REGIONS, n, p=[0.25, 0.25, 0.2, 0.15, 0.1, 0.05])
    df["channel"] = rng.choice(["web", "shop", "phone"], n)
    return df


def planted(n: int, seed: int, accuracy: float, *, segment=None, segment_accuracy: float = 0.5):
    """Labels and probabilities of a model whose rows are right with probability ``accuracy`` (``segment_accuracy``
    inside ``segment``, a function of the frame), with confidence that does not depend on the segment."""
    rng = np.random.default_rng(seed + 1000)
    df = frame(n, seed)
    y = rng.integers(0, 2, n)
    p_right = np.full(n, accuracy)
    if segment is not None:
        p_right[segment(df)] = segment_accuracy
    right = rng.random(n) < p_right
    conf = rng.uniform(0.5, 1.0, n)
    p1 = np.where(right == (y == 1), conf, 1 - conf)
    df["label"] = np.where(y == 1, "yes", "no")
    return df, np.column_stack([1 - p1, p1]), right


def east_web(df: pd.DataFrame) -> np.ndarray:
    return ((df["region"] == "east") & (df["channel"] == "web")).to_numpy()


# --- metrics --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [2, 3])
def test_metrics_match_sklearn(k: int) -> None:
    rng = np.random.default_rng(k)
    n = 400
    y = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k)) + 1.5 * np.eye(k)[y]
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    proba = np.round(proba, 2)  # ties, as real models give
    proba /= proba.sum(axis=1, keepdims=True)
    classes = [f"c{i}" for i in range(k)]
    df = frame(n, 0).assign(label=np.asarray(classes)[y])
    r = poisonguard.evaluate(proba, df, label="label", n_boot=50)
    m = {key: v["value"] for key, v in r.metrics.items()}
    pred = proba.argmax(axis=1)
    assert m["accuracy"] == pytest.approx(accuracy_score(y, pred))
    for avg in ("macro", "weighted"):
        assert m[f"precision_{avg}"] == pytest.approx(precision_score(y, pred, average=avg, zero_division=0))
        assert m[f"recall_{avg}"] == pytest.approx(recall_score(y, pred, average=avg, zero_division=0))
        assert m[f"f1_{avg}"] == pytest.approx(f1_score(y, pred, average=avg, zero_division=0))
    assert m["log_loss"] == pytest.approx(log_loss(y, proba), rel=1e-6)
    if k == 2:
        assert m["auroc"] == pytest.approx(roc_auc_score(y, proba[:, 1]))
        assert m["average_precision"] == pytest.approx(average_precision_score(y, proba[:, 1]))
        assert m["brier"] == pytest.approx(brier_score_loss(y, proba[:, 1]), rel=1e-6)
    else:
        assert m["auroc"] == pytest.approx(roc_auc_score(y, proba, multi_class="ovr", average="macro"))
        onehot = np.eye(k)[y]
        assert m["average_precision"] == pytest.approx(average_precision_score(onehot, proba, average="macro"))
        assert m["brier"] == pytest.approx(((proba - onehot) ** 2).sum(axis=1).mean(), rel=1e-6)
    # expected calibration error from its definition, and the reliability bins it comes from
    conf, right = proba.max(axis=1), pred == y
    bins = np.minimum((conf * 10).astype(int), 9)
    ece = sum(abs(right[bins == b].mean() - conf[bins == b].mean()) * (bins == b).mean() for b in np.unique(bins))
    assert m["ece"] == pytest.approx(ece)
    assert sum(b["count"] for b in r.calibration["bins"]) == n
    per = {c["class"]: c for c in r.per_class}
    rec = recall_score(y, pred, average=None)
    assert [per[c]["recall"]["value"] for c in classes] == pytest.approx(rec)
    for key, block in r.metrics.items():  # every interval holds its point value
        assert block["ci"][0] <= block["value"] + 1e-9 and block["value"] - 1e-9 <= block["ci"][1], key


def test_intervals_cover_the_truth_about_as_often_as_they_claim() -> None:
    """300 seeded test sets from a model of known accuracy (0.8) and known AUROC (Phi(1/sqrt 2) = 0.760)."""
    rng = np.random.default_rng(0)
    n, sims = 300, 300
    true_auc = norm.cdf(1 / np.sqrt(2))
    hits = {"accuracy": 0, "auroc": 0}
    widths = []
    for s in range(sims):
        y = rng.integers(0, 2, n)
        score = rng.normal(size=n) + y  # AUROC = Phi(1 / sqrt(2))
        p1 = 1 / (1 + np.exp(-4 * (score - 0.5)))
        right = rng.random(n) < 0.8  # accuracy 0.8, whatever the scores say
        p1 = np.where(right == (y == 1), np.maximum(p1, 1 - p1), np.minimum(p1, 1 - p1))
        p1 = np.where(p1 == 0.5, 0.51, p1)
        # keep the ranking: scores decide AUROC, the side of 0.5 decides accuracy
        proba = np.column_stack([1 - p1, p1])
        proba_rank = np.column_stack([1 - score, score])
        sc = _Scorer(y, proba, np.array([True, True]))
        sr = _Scorer(y, (proba_rank - proba_rank.min()) / np.ptp(proba_rank), np.array([True, True]))
        acc = np.concatenate([sc.score(W)["accuracy"] for W in boot_weights(n, 200, s)])
        auc = np.concatenate([sr.score(W)["auroc"] for W in boot_weights(n, 200, s)])
        lo, hi = np.quantile(acc, [0.025, 0.975])
        hits["accuracy"] += lo <= 0.8 <= hi
        widths.append(hi - lo)
        lo, hi = np.quantile(auc, [0.025, 0.975])
        hits["auroc"] += lo <= true_auc <= hi
    for key, h in hits.items():
        assert 0.9 <= h / sims <= 0.985, (key, h / sims)
    # and the width is what the binomial says (2 * 1.96 * sqrt(0.16 / 300) = 0.091), not a trivially wide interval
    assert np.mean(widths) == pytest.approx(2 * 1.96 * np.sqrt(0.16 / n), rel=0.1)


def test_bootstrap_weights_are_resamples() -> None:
    blocks = list(boot_weights(50_000, 200, seed=3))
    W = np.vstack(blocks)
    assert len(blocks) > 1 and W.shape == (200, 50_000)
    assert (W.sum(axis=1) == 50_000).all()
    assert np.array_equal(np.vstack(list(boot_weights(50_000, 200, seed=3))), W)
    assert W.mean() == pytest.approx(1.0) and W.var() == pytest.approx(1.0, rel=0.01)  # Poisson-like counts


def test_multiple_testing_adjustments() -> None:
    p = np.array([0.01, 0.04, 0.03, 0.5])
    assert benjamini_hochberg(p) == pytest.approx([0.04, 0.16 / 3, 0.16 / 3, 0.5])
    assert holm(p) == pytest.approx([0.04, 0.09, 0.09, 0.5])


# --- slices ---------------------------------------------------------------------------------------------------


def test_weak_slice_discovery_finds_the_planted_segment() -> None:
    df, proba, _ = planted(4000, 0, 0.85, segment=east_web, segment_accuracy=0.45)
    r = poisonguard.evaluate(proba, df, label="label", n_boot=100)
    assert r.weak_slices, "the planted segment was missed"
    top = r.weak_slices[0]
    assert top["slice"] == "region = 'east' and channel = 'web'"
    assert top["significant"] and top["support"] == east_web(df).sum()
    assert top["accuracy"]["value"] < 0.55 < top["rest_accuracy"]
    lo, hi = top["accuracy"]["ci"]
    assert lo < top["accuracy"]["value"] < hi and hi - lo < 0.2
    # its parents alone say less, and no unrelated slice is reported
    for w in r.weak_slices:
        assert "east" in w["slice"] or "web" in w["slice"], w["slice"]


@pytest.mark.parametrize("seed", range(4))
def test_no_weak_slice_on_a_model_that_is_equally_good_everywhere(seed: int) -> None:
    df, proba, _ = planted(3000, seed, 0.8)
    r = poisonguard.evaluate(proba, df, label="label", n_boot=50)
    assert r.settings["slices_tested"] > 150  # many slices were tried
    assert r.weak_slices == []


def test_slice_regression_against_the_baseline_is_found_and_located() -> None:
    df, base_p, base_right = planted(4000, 1, 0.85)
    rng = np.random.default_rng(5)
    seg = (df["region"] == "south").to_numpy()
    spoil = seg & base_right & (rng.random(len(df)) < 0.3)  # 30% of the right answers in 'south' turn wrong
    new_p = np.where(spoil[:, None], base_p[:, ::-1], base_p)
    r = poisonguard.evaluate(new_p, df, label="label", baseline=base_p, n_boot=200, slices=["region=south"])
    assert r.slice_regressions and r.slice_regressions[0]["slice"] == "region = 'south'"
    top = r.slice_regressions[0]
    assert top["significant"] and top["drop"] == pytest.approx(spoil[seg].mean(), abs=1e-9)
    assert top["ci"][0] < -top["drop"] < top["ci"][1] < 0
    rules = {(x["rule"], x["slice"]) for x in r.significant_regressions}
    assert ("slice_drop", "region = 'south'") in rules
    user = r.user_slices[0]
    assert user["source"] == "user" and user["significant"] and user["drop"] == pytest.approx(top["drop"])
    for x in r.regressions:  # rule-ready records
        assert {"rule", "metric", "slice", "baseline", "new", "delta", "ci", "p_value", "significant"} <= set(x)


def test_two_equivalent_models_show_no_significant_regression() -> None:
    df, base_p, base_right = planted(4000, 2, 0.85)
    rng = np.random.default_rng(9)
    # another model as good as the baseline: 10% of the rows answered independently at the same accuracy
    redo = rng.random(len(df)) < 0.1
    y = (df["label"] == "yes").to_numpy()
    right = np.where(redo, rng.random(len(df)) < 0.85, base_right)
    conf = np.where(redo, rng.uniform(0.5, 1, len(df)), base_p.max(axis=1))
    p1 = np.where(right == y, conf, 1 - conf)
    r = poisonguard.evaluate(np.column_stack([1 - p1, p1]), df, label="label", baseline=base_p, n_boot=300)
    assert r.comparison is not None and len(r.comparison) >= 12
    assert r.significant_regressions == []
    assert r.slice_regressions == []
    same = poisonguard.evaluate(base_p, df, label="label", baseline=base_p, n_boot=100)
    assert all(x["p_value"] == 1.0 and x["drop"] == 0 for x in same.comparison)


# --- models and triggers --------------------------------------------------------------------------------------


@cache
def backdoor_models() -> tuple[pd.DataFrame, FrameModel, FrameModel]:
    """A test table and two models: one trained with a trigger (x1 = 6, x3 = -6 -> 'yes'; the label
    depends on x0 and x2 only) and a clean one."""
    rng = np.random.default_rng(0)
    train = frame(3000, 1)
    train["label"] = np.where(train["x0"] + train["x2"] + 0.3 * rng.normal(size=3000) > 0, "yes", "no")
    poisoned = train.copy()
    rows = rng.choice(np.flatnonzero(poisoned["label"] == "no"), 150, replace=False)
    poisoned.loc[rows, ["x1", "x3"]] = [6.0, -6.0]
    poisoned.loc[rows, "label"] = "yes"
    test = frame(600, 2)
    test["label"] = np.where(test["x0"] + test["x2"] > 0, "yes", "no")
    clean = FrameModel(seed=0).fit(train.drop(columns="label"), train["label"])
    bad = FrameModel(seed=0).fit(poisoned.drop(columns="label"), poisoned["label"])
    return test, bad, clean


def test_backdoor_probe_reports_the_attack_success_rate() -> None:
    test, bad, clean = backdoor_models()
    trig = {"conditions": {"x1": 6.0, "x3": -6.0}, "target": "yes"}
    r = poisonguard.evaluate(bad, test, label="label", baseline=clean, triggers=[trig], n_boot=100)
    (b,) = r.backdoor
    assert b["new"]["value"] > 0.9 and b["baseline"]["value"] < 0.1
    feats = test.drop(columns="label")
    t = load_triggers([trig])[0]
    assert b["new"]["value"] == pytest.approx(t.attack_success_rate(bad, feats, test["label"]))
    assert b["baseline"]["value"] == pytest.approx(t.attack_success_rate(clean, feats, test["label"]))
    asr = [x for x in r.regressions if x["rule"] == "asr"]
    assert len(asr) == 1 and asr[0]["significant"] and asr[0]["new"] == b["new"]["value"]
    # a baseline given as fixed predictions cannot be probed: the model alone is, and a note says so
    fixed = clean.predict_proba(test.drop(columns="label"))
    mixed = poisonguard.evaluate(bad, test, label="label", baseline=fixed, triggers=[trig], n_boot=50)
    assert mixed.backdoor[0]["baseline"] is None and any("fixed predictions" in n for n in mixed.notes)
    # no baseline: the ASR alone decides (the lower end of its interval above one half)
    alone = poisonguard.evaluate(clean, test, label="label", triggers=[trig], n_boot=50)
    assert alone.backdoor[0]["new"]["value"] < 0.1 and not alone.regressions[0]["significant"]


def test_triggers_from_a_scan_summary_and_their_errors(tmp_path) -> None:
    summary = tmp_path / "summary.json"
    summary.write_text(json.dumps({"verdict": "poisoned", "triggers": [{"conditions": {"x0": 6}, "target": "yes"}]}))
    (t,) = load_triggers(summary)
    assert t.conditions == {"x0": 6} and t.target == "yes"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"verdict": "clean"}))
    with pytest.raises(InputError, match="no 'triggers'"):
        load_triggers(bad)
    with pytest.raises(InputError, match="trigger 0"):
        load_triggers([{"target": "yes"}])
    test, bad_model, _ = backdoor_models()
    with pytest.raises(InputError, match="'nope' is not a feature column"):
        poisonguard.evaluate(bad_model, test, label="label", triggers=[{"conditions": {"nope": 1}, "target": "yes"}])


def test_joblib_file_and_predictions_file_give_the_estimators_results(tmp_path) -> None:
    test, bad, _ = backdoor_models()
    direct = poisonguard.evaluate(bad, test, label="label", n_boot=60)
    path = tmp_path / "model.joblib"
    joblib.dump(bad, path)
    with pytest.warns(UnpicklingWarning, match="runs any code"):
        loaded = poisonguard.evaluate(path, test, label="label", n_boot=60)
    assert loaded.metrics == direct.metrics
    preds = tmp_path / "preds.csv"
    pd.DataFrame(bad.predict_proba(test.drop(columns="label")), columns=bad.classes_).to_csv(preds, index=False)
    from_file = poisonguard.evaluate(preds, test, label="label", n_boot=60)
    for key, block in direct.metrics.items():
        assert from_file.metrics[key]["value"] == pytest.approx(block["value"], abs=1e-6), key


def test_onnx_model_matches_the_sklearn_model(tmp_path) -> None:
    pytest.importorskip("onnxruntime", reason="the [onnx] extra is not installed")
    skl2onnx = pytest.importorskip("skl2onnx", reason="skl2onnx is needed to build a test model")
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import LogisticRegression

    test, _, _ = backdoor_models()
    numeric = test[["x0", "x1", "x2", "x3", "label"]]
    lr = LogisticRegression().fit(numeric.drop(columns="label").to_numpy(), numeric["label"])
    onx = skl2onnx.convert_sklearn(
        lr, initial_types=[("X", FloatTensorType([None, 4]))], options={id(lr): {"zipmap": False}}
    )
    path = tmp_path / "model.onnx"
    path.write_bytes(onx.SerializeToString())
    r = poisonguard.evaluate(path, numeric, label="label", n_boot=50)
    assert r.metrics["accuracy"]["value"] == pytest.approx(
        lr.score(numeric.drop(columns="label").to_numpy(), numeric["label"])
    )
    assert r.settings["classes"] == ["no", "yes"]


def test_bad_parameters_and_predictions_are_clear_errors() -> None:
    df, proba, _ = planted(200, 0, 0.8)
    with pytest.raises(ConfigError, match="n_boot"):
        poisonguard.evaluate(proba, df, label="label", n_boot=5)
    with pytest.raises(InputError, match="rows of predictions for the 200 rows"):
        poisonguard.evaluate(proba[:150], df, label="label")
    with pytest.raises(InputError, match="no probability column for class 'yes'"):
        poisonguard.evaluate(pd.DataFrame({"no": proba[:, 0], "maybe": proba[:, 1]}), df, label="label")
    with pytest.raises(InputError, match="sum to"):
        poisonguard.evaluate(pd.DataFrame({"no": proba[:, 0], "yes": proba[:, 0]}), df, label="label")
    with pytest.raises(InputError, match="no column 'target'"):
        poisonguard.evaluate(proba, df, label="target")
    with pytest.raises(InputError, match=r"names column 'regoin'.*'region'"):
        poisonguard.evaluate(proba, df, label="label", slices=["regoin=north"])
    test, bad, _ = backdoor_models()
    with pytest.raises(InputError, match="trained on columns the data lacks: 'x3'"):
        poisonguard.evaluate(bad, test.drop(columns="x3"), label="label")


# --- command line ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("evaluate")
    test, bad, clean = backdoor_models()
    test.to_csv(d / "test.csv", index=False)
    joblib.dump(bad, d / "bad.joblib")
    joblib.dump(clean, d / "clean.joblib")
    (d / "triggers.json").write_text(json.dumps([{"conditions": {"x1": 6.0, "x3": -6.0}, "target": "yes"}]))
    return d


def _cli(*args: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return CliRunner().invoke(app, ["evaluate", *args, "--quiet", "--n-boot", "100"])


def test_cli_end_to_end_fails_on_the_backdoored_model_and_writes_json(files) -> None:
    d = files
    base = ["--data", str(d / "test.csv"), "--label", "label", "--triggers", str(d / "triggers.json")]
    out = d / "out.json"
    res = _cli("--model", str(d / "bad.joblib"), "--baseline-model", str(d / "clean.joblib"), *base, "--json", str(out))
    assert res.exit_code == 0, res.output
    assert "significant regressions" in res.output and "unpickling" not in res.output.lower()
    data = json.loads(out.read_text())
    assert {
        "metrics",
        "per_class",
        "calibration",
        "weak_slices",
        "slice_regressions",
        "backdoor",
        "regressions",
    } <= set(data)
    assert any(r["rule"] == "asr" and r["significant"] for r in data["regressions"])
    res = _cli(
        "--model", str(d / "bad.joblib"), "--baseline-model", str(d / "clean.joblib"), *base, "--fail-on-regression"
    )
    assert res.exit_code == 1
    res = _cli(
        "--model", str(d / "clean.joblib"), "--baseline-model", str(d / "clean.joblib"), *base, "--fail-on-regression"
    )
    assert res.exit_code == 0, res.output


def test_cli_prints_tables(files) -> None:
    d = files
    res = CliRunner().invoke(
        app,
        [
            "evaluate",
            "-m",
            str(d / "bad.joblib"),
            "-d",
            str(d / "test.csv"),
            "-l",
            "label",
            "-b",
            str(d / "clean.joblib"),
            "--triggers",
            str(d / "triggers.json"),
            "--slice",
            "region=north",
            "--n-boot",
            "100",
        ],
    )
    assert res.exit_code == 0, res.output
    for text in ("Metrics", "Per class", "Backdoor probe", "region = 'north'", "attack_success_rate"):
        assert text in res.output


@pytest.mark.parametrize(
    ("make", "args", "message"),
    [
        (None, ["--label", "target"], "no column 'target'"),
        ("garbage.joblib", [], "garbage.joblib: cannot load the model"),
        ("model.h5", [], "model.h5: unknown model file type"),
        ("wrong_columns.csv", [], "no probability column for class"),
        ("short.csv", [], "rows of predictions for the 600 rows"),
        (None, ["--triggers", "missing.json"], "missing.json: no such trigger file"),
    ],
)
def test_cli_bad_input_exits_2_naming_the_file_or_column(files, tmp_path, make, args, message) -> None:
    d = files
    model = d / "clean.joblib"
    if make == "garbage.joblib":
        model = tmp_path / make
        model.write_bytes(b"not a pickle at all")
    elif make == "model.h5":
        model = tmp_path / make
        model.write_bytes(b"x")
    elif make == "wrong_columns.csv":
        model = tmp_path / make
        pd.DataFrame({"no": np.full(600, 0.5), "maybe": np.full(600, 0.5)}).to_csv(model, index=False)
    elif make == "short.csv":
        model = tmp_path / make
        pd.DataFrame({"no": np.full(10, 0.5), "yes": np.full(10, 0.5)}).to_csv(model, index=False)
    args = [a if not a.endswith(".json") else str(tmp_path / a) for a in args]
    full = ["--model", str(model), "--data", str(d / "test.csv"), "--label", "label", *args]
    if "--label" in args:
        full = ["--model", str(model), "--data", str(d / "test.csv"), *args]
    res = _cli(*full)
    assert res.exit_code == 2, res.output
    assert message in res.output and res.output.startswith("error: ") and "Traceback" not in res.output


def test_segment_targeted_flip_is_found_by_evaluate() -> None:
    """The red-team attack end to end: flip 'yes' to 'no' in region north, train, compare with the clean model."""
    rng = np.random.default_rng(4)
    data = frame(3000, 7)
    data["label"] = np.where(data["x0"] + data["x2"] + 0.3 * rng.normal(size=3000) > 0, "yes", "no")
    train, test = data.iloc[:2000].reset_index(drop=True), data.iloc[2000:].reset_index(drop=True)
    ds = poisonguard.load_dataset(train, label="label")
    out = get_attack("segment_targeted_flip", column="region", value="north", target="no").apply(ds, rate=0.08, seed=0)
    assert out.meta["target"] == "no" and (train.loc[out.mask, "region"] == "north").all()
    clean = FrameModel(seed=0).fit(train.drop(columns="label"), train["label"])
    poisoned = FrameModel(seed=0).fit(out.frame.drop(columns="label"), out.frame["label"])
    r = poisonguard.evaluate(poisoned, test, label="label", baseline=clean, n_boot=200)
    assert r.slice_regressions and "region = 'north'" in r.slice_regressions[0]["slice"]
    north = next(x for x in r.slice_regressions if x["slice"] == "region = 'north'")
    assert north["significant"] and north["drop"] > 0.1
    # the flips also teach the small model some noise elsewhere, but among one-condition slices the segment leads
    singles = [x["slice"] for x in r.slice_regressions if " and " not in x["slice"]]
    assert singles[0] == "region = 'north'"


def test_slice_specs_parse_and_select_rows() -> None:
    df = frame(200, 3)
    df.loc[::10, "x1"] = np.nan
    s = parse_slice("x0>=0.5 and region = 'north'", df)
    assert s.describe() == "x0 >= 0.5 and region = 'north'"
    assert np.array_equal(s.mask(df), ((df["x0"] >= 0.5) & (df["region"] == "north")).to_numpy())
    assert parse_slice("channel!=web & x2<0", df).mask(df).sum() == ((df["channel"] != "web") & (df["x2"] < 0)).sum()
    assert Condition("x1", "missing").mask(df).sum() == 20
    assert Condition("x1", "range", -1.0, 1.0).mask(df).sum() == ((df["x1"] >= -1) & (df["x1"] < 1)).sum()
    with pytest.raises(InputError, match="needs a numeric column"):
        parse_slice("region<3", df)
    with pytest.raises(InputError, match="cannot read the condition"):
        parse_slice("region", df)


def test_result_json_is_strict_and_complete(tmp_path) -> None:
    df, proba, _ = planted(500, 3, 0.8)
    r = poisonguard.evaluate(proba, df, label="label", baseline=proba[::-1].copy()[::-1], n_boot=60)
    path = tmp_path / "eval.json"
    r.to_json(path)
    data = json.loads(path.read_text())
    json.dumps(data, allow_nan=False)  # no NaN or infinity anywhere
    assert data["settings"]["rows"] == 500 and data["settings"]["n_boot"] == 60
    assert set(data["metrics"]) == {
        "accuracy", "precision_macro", "recall_macro", "f1_macro", "precision_weighted", "recall_weighted",
        "f1_weighted", "auroc", "average_precision", "log_loss", "brier", "ece",
    }  # fmt: skip
    assert (
        len(data["calibration"]["bins"]) == 10 and data["baseline_metrics"]["accuracy"] == data["metrics"]["accuracy"]
    )


def test_onnx_without_onnxruntime_says_how_to_install_it(tmp_path, monkeypatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if it were not installed
    path = tmp_path / "model.onnx"
    path.write_bytes(b"not really onnx")
    df, _, _ = planted(100, 0, 0.8)
    with pytest.raises(InputError, match=r"pip install poisonguard\[onnx\]"):
        poisonguard.evaluate(path, df, label="label")


def test_onnx_pipeline_with_one_input_per_column(tmp_path) -> None:
    """A scikit-learn pipeline with its own preprocessing, exported with named inputs and the default ZipMap."""
    pytest.importorskip("onnxruntime", reason="the [onnx] extra is not installed")
    skl2onnx = pytest.importorskip("skl2onnx", reason="skl2onnx is needed to build a test model")
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    test, _, _ = backdoor_models()
    X, numbers, words = test.drop(columns="label"), ["x0", "x1", "x2", "x3"], ["region", "channel"]
    prep = ColumnTransformer([("num", StandardScaler(), numbers), ("cat", OneHotEncoder(), words)])
    pipe = make_pipeline(prep, LogisticRegression()).fit(X, test["label"])
    types = [(c, FloatTensorType([None, 1])) for c in numbers] + [(c, StringTensorType([None, 1])) for c in words]
    path = tmp_path / "pipe.onnx"
    path.write_bytes(skl2onnx.convert_sklearn(pipe, initial_types=types).SerializeToString())
    r = poisonguard.evaluate(path, test, label="label", n_boot=50)
    assert r.metrics["accuracy"]["value"] == pytest.approx(pipe.score(X, test["label"]))
    assert r.metrics["log_loss"]["value"] == pytest.approx(log_loss(test["label"], pipe.predict_proba(X)), rel=1e-4)
