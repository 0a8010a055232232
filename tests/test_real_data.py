"""Detection on real data from ../shared/datasets (skipped where that folder is absent).

The full matrix lives in benchmarks/oracle_check.py; these are the cheapest cases of the issue's acceptance
criteria: random flips on adult come within 0.01 AUROC of the oracle, and unmodified data is not 'poisoned'.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from sklearn.metrics import roc_auc_score

import poisonguard

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from common import oracle_scores, random_flip
from datasets import LOADERS, available

_spec = importlib.util.spec_from_file_location(
    "clean_tasks_run", Path(__file__).resolve().parents[1] / "benchmarks" / "clean_tasks" / "run.py"
)
_clean_tasks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_clean_tasks)
task_frame = _clean_tasks.task_frame

pytestmark = pytest.mark.skipif(not available(), reason="../shared/datasets is not present")


def test_adult_random_flips_come_within_a_hundredth_of_the_oracle() -> None:
    df = LOADERS["adult"]()
    poisoned, mask = random_flip(df, 0.05, seed=0)
    result = poisonguard.scan(poisoned, label="label", seed=0)
    scan_auc = roc_auc_score(mask, result.rows["score"])
    oracle_auc = roc_auc_score(mask, oracle_scores(poisoned, df, mask, seed=0))
    assert oracle_auc - scan_auc <= 0.01, (scan_auc, oracle_auc)
    # the flags are few but right: natural ambiguity is not flagged
    flagged = result.rows["flagged"].to_numpy()
    assert mask[flagged].mean() >= 0.8


@pytest.mark.parametrize("name", ["german_credit", "spambase"])
def test_unmodified_real_data_is_not_called_poisoned(name: str) -> None:
    result = poisonguard.scan(LOADERS[name](), label="label", seed=0)
    assert result.verdict != "poisoned", result.summary["evidence"]
    assert result.summary["flagged_fraction"] <= 2 * 0.01


@pytest.mark.parametrize(
    ("name", "label", "n"),
    [
        ("adult", "sex", 2000),  # relationship = 'Wife' fixes the label: a natural segment, not a stamp
        ("adult", "sex", 400),  # 17 wives, too few for the segment test: the other face of 'Husband' -> Male
        ("bank_marketing", "contact", 2000),  # whole months were called on one kind of phone
        ("bank_marketing", "default", 400),  # six rows of one month, all of the class 80% hold
        ("bank_marketing", "job", 2000),  # a label the columns predict poorly: ten neighbours often lack it
        ("bank_marketing", "label", 400),
        ("adult", "race", 2000),  # 18 'Amer-Indian-Eskimo' rows: a rare class's column needs its own calibration
        ("adult", "education", 8000),  # 16 classes, centres that nearly coincide: class_outlier's capped statistic
        ("adult", "marital_status", 400),  # 17 wives: 'Wife' implies 'Female' and one status, as 'Husband' does
    ],
)
def test_clean_data_under_another_label_or_size_is_not_called_poisoned(name: str, label: str, n: int) -> None:
    """The benchmark's tasks are five; real users bring others. Other columns of the same real tables as the
    label, and small samples: each of these was called 'poisoned' (3% to 29% flagged) before trigger_pattern
    asked whether its rows were a segment and whether their label was remarkable, and neighbor_disagreement
    calibrated its neighbour shares."""
    df = task_frame(name, label, n, seed=0)
    assert df is not None
    result = poisonguard.scan(df, label=label, seed=0)
    assert result.verdict != "poisoned", result.summary["evidence"]
    assert result.summary["flagged_fraction"] <= 2 * 0.01


@pytest.mark.xfail(
    strict=True, reason="known false alarm below 400 rows, not fixed yet (see README, trigger discovery)"
)
@pytest.mark.parametrize("seed", [0, 2])
def test_a_natural_period_in_a_300_row_sample_is_not_a_trigger(seed: int) -> None:
    """bank_marketing, 300 rows (38 'yes'): a campaign period (May 2009 and its economic indicators, or a failed
    previous contact at that rate) is 'no' in 42 of 44 rows where a model blind to those columns expects 62%.
    With so few 'yes' rows the segment test cannot tell the period's rows from them (AUROC 0.63, z 2.0), and the
    rows' purity (95.5%) is just above the clean-label line, so the period reads as a dirty-label stamp: 11-15%
    flagged, 'poisoned', in 4 of 8 samples (at 400 and 600 rows: none of 8)."""
    df = task_frame("bank_marketing", "label", 300, seed=seed)
    assert df is not None
    result = poisonguard.scan(df, label="label", seed=seed)
    assert result.verdict != "poisoned"
    assert result.summary["flagged_fraction"] <= 2 * 0.01


@pytest.mark.parametrize(
    ("name", "n", "share", "seed"),
    [
        ("bank_marketing", 8000, 0.02, 0),
        ("spambase", 2000, 0.01, 1),
        ("spambase", 400, 0.01, 2),  # two groups of 14-15 near-empty ham emails, read as floods by their size
    ],
)
def test_clean_data_with_a_rare_class_is_not_called_poisoned(name: str, n: int, share: float, seed: int) -> None:
    """A fraud-like imbalance, the rarer class cut to 1-2% of the rows. class_outlier measured how far past the
    midpoint between the centres a row lies, along the line between them; towards a rare class's median that line
    runs through sub-populations of the majority: on bank_marketing 'no' clients far past the 'yes' centre (6.75%
    of the rows flagged), on spambase ham far out to the side, barely nearer the spam centre (2.7%). Both
    `poisoned`; a row now also has to be clearly nearer the other centre (the ratio of its distances). Near-empty
    emails coincide naturally and are no flood by their number alone (`duplicates`)."""
    df = task_frame(name, "label", n, seed=seed, rare=share)
    assert df is not None
    result = poisonguard.scan(df, label="label", seed=seed)
    assert result.verdict != "poisoned", result.summary["evidence"]
    assert result.summary["flagged_fraction"] <= 2 * 0.01


def test_mnist_backdoor_is_found_in_a_cnn_representation_and_clean_features_are_not_split() -> None:
    """A small CNN trained on MNIST with a 5% BadNets patch (benchmarks/representation): the split detector names
    the target class and the poisoned share from the penultimate features alone; the same CNN trained on the
    clean rows gives features where no class splits significantly."""
    pytest.importorskip("torch")
    import numpy as np

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks" / "representation"))
    from images import poison, train_cnn

    from poisonguard.representation import class_splits, split_row_pvalues
    from poisonguard.torch_features import penultimate_features

    df = LOADERS["mnist"]()
    X = df.drop(columns="label").to_numpy(np.float32).reshape(-1, 28, 28) / 255.0
    y = df["label"].to_numpy().astype(np.int64)
    p = poison(X, y, "badnets", 0.05, target=4, seed=1)
    feats = penultimate_features(train_cnn(p.X, p.y, n_classes=10, seed=1), p.X[:, None], device="cpu")
    splits = class_splits(feats, p.y, seed=0)
    top = min(splits, key=lambda s: s.pvalue)
    assert top.label == 4 and top.pvalue <= 0.05, [(s.label, s.z, s.pvalue) for s in splits]
    assert abs(top.share - p.mask[p.y == 4].mean()) < 0.03
    pv = np.ones(len(y))
    for s in splits:
        pv[s.rows] = split_row_pvalues(s)
    assert roc_auc_score(p.mask, -np.log(pv)) > 0.98
    clean = penultimate_features(train_cnn(X, y, n_classes=10, seed=1), X[:, None], device="cpu")
    assert min(s.pvalue for s in class_splits(clean, y, seed=0)) > 0.01


@pytest.mark.parametrize(
    ("name", "label", "n"),
    [
        ("adult", "marital_status", 8000),  # one class splits 12 pooled sds apart, the others at most 6
        ("adult", "race", 8000),
        ("adult", "relationship", 2000),
    ],
)
def test_natural_segments_in_a_leaf_embedding_do_not_declare_a_class(name: str, label: str, n: int) -> None:
    """``representation_split`` declares a class whose split is far sharper than the other classes'. A forest's
    leaf embedding of a real table holds natural segments as sharp as a backdoor's poison (a split of 10-18
    pooled standard deviations where the other classes split at 3-7), and no row there is poison. Two changes that
    would have found more backdoors in CNN features (comparing a class with the other classes only, or on a linear
    scale) declared a class here: p = 9e-5 and 1e-4 on marital status, 0.001 and 0.0005 on race, 0.004 on
    relationship with the linear scale (``benchmarks/representation/classes.py``)."""
    import numpy as np

    from poisonguard.context import ScanContext
    from poisonguard.io import load_dataset
    from poisonguard.representation import SPLIT_ALPHA, class_splits

    seed = 1 if label == "relationship" else 0
    df = task_frame(name, label, n, seed=seed)
    assert df is not None
    ds = load_dataset(df, label=label)
    E = ScanContext(data=ds, seed=seed, representation_kind="leaves").representation()
    splits = class_splits(E, ds.y, seed=seed)
    assert len(splits) >= 5
    assert min(s.pvalue for s in splits) > SPLIT_ALPHA, [(s.label, round(s.z, 2), s.pvalue) for s in splits]
    assert np.isfinite([s.separation for s in splits]).all()


@pytest.mark.parametrize(
    ("name", "n", "share", "seed", "rate"), [("bank_marketing", 3000, 0.002, 0, 0.035), ("adult", 5000, 0.005, 1, 0.02)]
)
def test_a_backdoor_that_fills_a_rare_class_is_found(name: str, n: int, share: float, seed: int, rate: float) -> None:
    """A rare class (0.2-0.5% of the rows, like fraud) that an out-of-range backdoor fills: 80-95% of the class
    is stamped. The stamp erases the class's natural ties (on bank_marketing, between a month and its economic
    indicators), so each natural tie of the other class looks specific to it; taken first, one per mining round,
    such ties used up the rounds and the stamp was never reached (1 of 105 and 0 of 100 stamped rows flagged)."""
    import numpy as np

    from poisonguard.attacks import get_attack

    rows = task_frame(name, "label", n, seed=seed, rare=share)
    assert rows is not None
    out = get_attack("backdoor").apply(poisonguard.load_dataset(rows, label="label"), rate=rate, seed=seed)
    result = poisonguard.scan(out.frame, label="label", seed=seed)
    flagged = result.rows["flagged"].to_numpy()
    assert result.verdict == "poisoned"
    assert flagged[out.mask].mean() >= 0.95, flagged[out.mask].mean()
    assert flagged[~out.mask].mean() <= 0.01 * 2
    assert any(set(t.conditions) <= set(out.meta["trigger"]) for t in result.triggers)
    assert np.isclose(roc_auc_score(out.mask, result.rows["score"]), 1.0, atol=0.01)


def test_a_three_value_in_range_trigger_on_a_few_rows_is_found() -> None:
    """german_credit, 1% in-range backdoor (seed 1): 7 of 700 rows stamped with three values held by 28-43 rows
    each. Each pair of them co-occurs 7 times where about 2 would, too weak for the pair test after Bonferroni;
    the three together co-occur 7 times where 0.1 would. Before the triple test: nothing flagged, AUROC 0.70."""
    import numpy as np

    from poisonguard.redteam import split_and_baseline

    ds = poisonguard.load_dataset(LOADERS["german_credit"](), label="label")
    sim = split_and_baseline(ds, seed=1, test_size=0.3, model=None, fpr=0.01)
    run = sim.run("inbounds_backdoor", 0.01, 1)
    flagged = run.scan.rows["flagged"].to_numpy()
    assert flagged[run.mask].all()
    assert flagged[~run.mask].mean() <= 0.01
    assert any(set(t.conditions) == set(run.meta["trigger"]) for t in run.scan.triggers)
    assert roc_auc_score(run.mask, run.scan.rows["score"]) >= 0.99
    assert run.scan.verdict != "clean"
    assert np.isfinite(run.scan.rows["score"]).all()


_THREADS_SCRIPT = """
import sys
import numpy as np
sys.path.insert(0, sys.argv[2])
from datasets import LOADERS
import poisonguard
from poisonguard.attacks import get_attack
from poisonguard.redteam import split_and_baseline
ds = poisonguard.load_dataset(LOADERS["spambase"](), label="label")
sim = split_and_baseline(ds, seed=0, test_size=0.3, model=None, fpr=0.01)
frame = get_attack("duplicate_flood").apply(sim.train, rate=0.2, seed=0).frame
rows = poisonguard.scan(frame, label="label", seed=0).rows
np.savez(sys.argv[1], flagged=rows["flagged"].to_numpy(), score=rows["score"].to_numpy())
"""


def test_a_scan_does_not_depend_on_the_number_of_threads(tmp_path: Path) -> None:
    """The metric view's randomized PCA and faiss's float32 distances each moved with the number of threads,
    and with them the scale of what counts as a copy, the groups of copies and the flags: spambase with a fifth of
    its training rows flooded (the benchmark's split and attack, seed 0), 111 of 3,864 flags differed between one
    thread and two. Each scan runs in its own process, since thread pools are sized when the libraries load."""
    import os
    import subprocess

    import numpy as np

    bench = str(Path(__file__).resolve().parents[1] / "benchmarks")
    single = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    base = {k: v for k, v in os.environ.items() if k not in single}
    out = {}
    for name, env in (("one", {**base, **single}), ("many", base)):
        path = tmp_path / f"{name}.npz"
        subprocess.run([sys.executable, "-c", _THREADS_SCRIPT, str(path), bench], env=env, check=True, timeout=600)
        out[name] = np.load(path)
    np.testing.assert_array_equal(out["one"]["flagged"], out["many"]["flagged"])
    np.testing.assert_allclose(out["one"]["score"], out["many"]["score"], rtol=0, atol=1e-9)
