"""The contract every registered detector keeps, checked on one small mixed-type table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandas.testing as pdt
import pytest

from poisonguard.context import ScanContext
from poisonguard.detectors import REGISTRY, Detector, DetectorOutput, get_detector, register
from poisonguard.errors import ConfigError, NotFittedError
from synth import context, mixed_frame

# Every registered detector, spelled out: a new detector must be added here (see the test below).
DETECTORS = [
    "class_outlier",
    "deep_knn",
    "duplicates",
    "isolation",
    "label_consistency",
    "neighbor_disagreement",
    "representation_split",
    "trigger_pattern",
]


@pytest.fixture(scope="module")
def mixed() -> pd.DataFrame:
    frame = mixed_frame(n=120, seed=0)
    kinds = set(context(frame).data.columns.values())
    assert kinds == {"numeric", "categorical", "boolean", "text"}, kinds
    assert frame.drop(columns="label").isna().any().sum() == 4
    return frame


@pytest.fixture(scope="module")
def pristine(mixed: pd.DataFrame) -> pd.DataFrame:
    return mixed.copy(deep=True)


# Encoding the text column costs seconds, so the two contexts (same seed) are built once and shared, as the
# scanner shares one context between all detectors.
@pytest.fixture(scope="module")
def ctx(mixed: pd.DataFrame, pristine: pd.DataFrame) -> ScanContext:
    return context(mixed, seed=3)


@pytest.fixture(scope="module")
def twin(mixed: pd.DataFrame, pristine: pd.DataFrame) -> ScanContext:
    return context(mixed, seed=3)


def _assert_same(a: DetectorOutput, b: DetectorOutput) -> None:
    np.testing.assert_array_equal(a.scores, b.scores)
    np.testing.assert_array_equal(a.pvalues, b.pvalues)
    np.testing.assert_array_equal(a.reasons, b.reasons)
    assert a.extra.keys() == b.extra.keys()
    for key in a.extra:
        np.testing.assert_array_equal(a.extra[key], b.extra[key])


@pytest.mark.parametrize("name", DETECTORS)
def test_detector_contract(
    name: str, mixed: pd.DataFrame, pristine: pd.DataFrame, ctx: ScanContext, twin: ScanContext
) -> None:
    n = ctx.n
    rows = np.arange(n)

    with pytest.raises(ConfigError, match="no_such_parameter"):
        get_detector(name, no_such_parameter=1)
    with pytest.raises(NotFittedError, match=name):
        get_detector(name).score(ctx, rows)

    det = get_detector(name)
    assert det.fit(ctx) is det
    out = det.score(ctx, rows)

    for values in (out.scores, out.pvalues):
        assert values.shape == (n,)
        assert np.isfinite(values).all()
        assert ((values >= 0) & (values <= 1)).all()
    assert out.reasons.shape == (n,)
    assert out.reasons.dtype == object
    assert all(isinstance(r, str) for r in out.reasons)
    for key, values in out.extra.items():
        assert len(values) == n, key

    # two chunks give exactly what one batch gives
    cut = n // 3
    _assert_same(DetectorOutput.concat([det.score(ctx, rows[:cut]), det.score(ctx, rows[cut:])]), out)

    # rows in any order: each row's result does not depend on the others in its batch
    perm = np.random.default_rng(0).permutation(n)
    shuffled = det.score(ctx, perm)
    np.testing.assert_array_equal(shuffled.scores, out.scores[perm])
    np.testing.assert_array_equal(shuffled.pvalues, out.pvalues[perm])
    np.testing.assert_array_equal(shuffled.reasons, out.reasons[perm])

    # a separately built context and a fresh detector with the same seed give identical results
    _assert_same(get_detector(name).fit(twin).score(twin, rows), out)

    # fitting and scoring never touch the caller's frame
    pdt.assert_frame_equal(mixed, pristine)


def test_every_registered_detector_is_in_the_contract() -> None:
    assert sorted(REGISTRY) == DETECTORS


@pytest.mark.parametrize("name", DETECTORS)
def test_registry_key_is_the_module_name(name: str) -> None:
    cls = REGISTRY[name]
    assert cls.name == name
    assert cls.__module__.rsplit(".", 1)[1] == name
    assert issubclass(cls, Detector)
    assert isinstance(cls.description, str) and cls.description


def test_registering_a_taken_name_is_refused_and_keeps_the_original() -> None:
    original = REGISTRY["isolation"]

    class Impostor(Detector):
        description = "not a real detector"

        def _fit(self, ctx):  # pragma: no cover - never called
            pass

        def _score(self, ctx, rows):  # pragma: no cover - never called
            raise AssertionError

    try:
        with pytest.raises(ConfigError, match="isolation"):
            register("isolation")(Impostor)
    finally:
        REGISTRY["isolation"] = original
    assert REGISTRY["isolation"] is original
    assert get_detector("isolation").__class__ is original


def test_unknown_detector_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="nope") as info:
        get_detector("nope")
    for name in DETECTORS:
        assert name in str(info.value)


@pytest.mark.parametrize(
    ("name", "param", "bad"),
    [
        ("isolation", "n_estimators", 0),
        ("neighbor_disagreement", "k", 2.5),
        ("label_consistency", "n_folds", 1),
        ("label_consistency", "max_iter", True),
    ],
)
def test_bad_parameter_values_are_refused_at_fit(name: str, param: str, bad: object, mixed: pd.DataFrame) -> None:
    det = get_detector(name, **{param: bad})
    with pytest.raises(ConfigError, match=param):
        det.fit(context(mixed))


def test_a_flagged_row_always_names_the_detector_that_flagged_it() -> None:
    """A detector may write no sentence for a row it gives a small p-value; the row still says who flagged it."""
    from poisonguard.io import load_dataset
    from poisonguard.scanner import scan_dataset

    class Terse(Detector):
        description = "flags the first five rows and says nothing"

        def _fit(self, ctx):
            pass

        def _score(self, ctx, rows):
            p = np.where(rows < 5, 1e-6, 1.0)
            return DetectorOutput(scores=1 - p, pvalues=p, reasons=np.full(len(rows), "", dtype=object))

    register("terse_test")(Terse)
    try:
        frame = pd.DataFrame({"x": np.arange(300.0) % 17, "label": np.where(np.arange(300) % 2, "a", "b")})
        result = scan_dataset(load_dataset(frame, label="label"), detectors=["terse_test"])
    finally:
        del REGISTRY["terse_test"]
    rows = result.rows
    assert rows.loc[:4, "flagged"].all()
    assert all(r.startswith("terse_test p-value 1e-06") for r in rows.loc[:4, "reasons"])
    assert (rows.loc[5:, "reasons"] == "nothing unusual").all()
