"""The contract every registered attack keeps, checked on one small mixed table (numbers, categories, text)."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pandas.testing as pdt
import pytest
from attack_data import RATE, contract_data, plain_meta, run

import poisonguard.attacks as attacks_pkg
from poisonguard.attacks import ATTACKS, get_attack
from poisonguard.errors import ConfigError

# Every registered attack, spelled out: a new attack must be added here (see the test below).
ALL = [
    "adaptive",
    "backdoor",
    "boundary_flip",
    "class_targeted_flip",
    "clean_label_backdoor",
    "confident_flip",
    "duplicate_flood",
    "inbounds_backdoor",
    "label_flip",
    "out_of_distribution",
    "segment_targeted_flip",
    "text_trigger",
]
# Attacks whose count is capped (class_targeted_flip: rows of the source class; the backdoors: rows of the classes
# they may touch) are not capped at RATE on the contract table, so every attack poisons exactly round(RATE * n).
EXPECTED_COUNT: dict[str, int] = {}


def test_every_registered_attack_is_covered() -> None:
    assert sorted(ATTACKS) == sorted(ALL)


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_registry_key_is_the_module_file_name(name: str) -> None:
    cls = ATTACKS[name]
    module = importlib.import_module(cls.__module__)
    assert Path(module.__file__).stem == name
    assert cls.__module__ == f"{attacks_pkg.__name__}.{name}"
    assert cls.__name__.endswith("Attack") and cls.name == name
    assert module.__doc__ and "Why it matters" in module.__doc__
    assert cls.description


@pytest.mark.parametrize("name", ALL)
def test_attack_contract(name: str) -> None:
    ds, frame_before, y_before = contract_data()
    n = ds.n_rows
    first = run(name, 0)
    again = get_attack(name).apply(ds, rate=RATE, seed=0)
    other = get_attack(name).apply(ds, rate=RATE, seed=1)
    # the input is never modified
    pdt.assert_frame_equal(ds.frame, frame_before)
    np.testing.assert_array_equal(ds.y, y_before)
    for out in (first, again, other):
        assert out.frame is not ds.frame
        assert out.mask.dtype == bool and len(out.mask) == len(out.frame) >= n
        assert int(out.mask.sum()) == EXPECTED_COUNT.get(name, round(RATE * n))
        assert list(out.frame.columns) == list(ds.frame.columns)
        assert not out.mask[n:].size or out.mask[n:].all()  # added rows are all poison
        # original rows the attack did not poison are unchanged (a trigger column may turn float)
        keep = np.flatnonzero(~out.mask[:n])
        pdt.assert_frame_equal(out.frame.iloc[keep], frame_before.iloc[keep], check_dtype=False)
        # poisoned original rows do differ from what they were
        hit = np.flatnonzero(out.mask[:n])
        if hit.size:
            new = out.frame.iloc[hit].astype(object).to_numpy()
            old = frame_before.iloc[hit].astype(object).to_numpy()
            same = (new == old) | ((new != new) & (old != old))  # NaN == NaN here
            assert not same.all(axis=1).any()
        assert set(out.frame[ds.label].astype(str)) <= set(ds.classes.astype(str))
    # same seed: the same output; another seed: other rows or other values
    pdt.assert_frame_equal(first.frame, again.frame)
    np.testing.assert_array_equal(first.mask, again.mask)
    assert plain_meta(first.meta) == plain_meta(again.meta)
    assert not (np.array_equal(first.mask, other.mask) and first.frame.equals(other.frame))


@pytest.mark.parametrize("rate", [0, 1, -0.1, 1.5])
def test_rate_outside_zero_one_is_refused(rate: float) -> None:
    ds, _, _ = contract_data()
    with pytest.raises(ConfigError, match="rate"):
        get_attack("label_flip").apply(ds, rate=rate, seed=0)


def test_unknown_attack_and_unknown_parameter_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="unknown attack"):
        get_attack("nope")
    with pytest.raises(ConfigError, match="bad parameters"):
        get_attack("label_flip", target="fraud")
    assert get_attack("class_targeted_flip", source="legit").source == "legit"
