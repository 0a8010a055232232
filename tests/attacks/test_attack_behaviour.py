"""What each attack does beyond the contract: which rows it touches, what it writes there, its triggers."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pandas.testing as pdt
import pytest
from attack_data import RATE, contract_data, run, table

from poisonguard.attacks import get_attack
from poisonguard.attacks._clean_model import margins, out_of_fold_proba
from poisonguard.attacks._triggers import insert_token
from poisonguard.errors import ConfigError
from poisonguard.io import load_dataset
from poisonguard.scanner import scan_dataset

BACKDOORS = ["backdoor", "inbounds_backdoor", "clean_label_backdoor", "text_trigger"]


def _labels(out, ds) -> np.ndarray:
    return out.frame[ds.label].astype(str).to_numpy()


# --- class_targeted_flip --------------------------------------------------------------------------------------


def test_targeted_flip_moves_the_minority_to_the_majority_by_default() -> None:
    ds, before, _ = contract_data()
    out = run("class_targeted_flip")
    labels, old = _labels(out, ds), before[ds.label].to_numpy()
    assert (old[out.mask] == "fraud").all() and (labels[out.mask] == "legit").all()
    assert (labels[~out.mask] == old[~out.mask]).all()
    assert out.meta["source"] == "fraud" and out.meta["target"] == "legit"


def test_targeted_flip_takes_source_and_target_and_never_empties_the_source_class() -> None:
    ds, before, _ = contract_data()
    old = before[ds.label].to_numpy()
    out = get_attack("class_targeted_flip", source="legit", target="fraud").apply(ds, rate=RATE, seed=0)
    assert (old[out.mask] == "legit").all() and (_labels(out, ds)[out.mask] == "fraud").all()
    # flipping every row of the source class would leave a single class: refused, with the numbers
    with pytest.raises(ConfigError, match="would leave it empty"):
        get_attack("class_targeted_flip").apply(ds, rate=0.6, seed=0)
    with pytest.raises(ConfigError, match="not a class"):
        get_attack("class_targeted_flip", source="spam").apply(ds, rate=RATE, seed=0)
    with pytest.raises(ConfigError, match="same class"):
        get_attack("class_targeted_flip", source="fraud", target="fraud").apply(ds, rate=RATE, seed=0)


def test_targeted_flip_with_integer_labels_and_three_classes() -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=120), "label": np.repeat([0, 1, 2], [20, 60, 40])})
    ds = load_dataset(frame, label="label")
    out = get_attack("class_targeted_flip").apply(ds, rate=0.1, seed=0)
    assert (frame["label"].to_numpy()[out.mask] == 0).all() and (out.frame["label"].to_numpy()[out.mask] == 1).all()
    assert out.frame["label"].dtype == frame["label"].dtype
    out = get_attack("class_targeted_flip", source=2, target="0").apply(ds, rate=0.1, seed=0)
    assert (frame["label"].to_numpy()[out.mask] == 2).all() and (out.frame["label"].to_numpy()[out.mask] == 0).all()


# --- boundary_flip / confident_flip ---------------------------------------------------------------------------


def test_boundary_flips_sit_at_lower_clean_model_margins_than_confident_flips() -> None:
    ds, before, _ = contract_data()
    boundary, confident = run("boundary_flip"), run("confident_flip")
    margin = margins(out_of_fold_proba(ds, seed=0))  # an independent clean model (other folds, other seed)
    assert margin[boundary.mask].mean() + 0.3 < margin[confident.mask].mean()
    assert np.median(margin[boundary.mask]) < margin[confident.mask].min()
    # the attacks' own clean model: every boundary flip is less sure than every confident flip
    assert max(boundary.meta["margins"]) < min(confident.meta["p_true"]) - 0.5
    old = before[ds.label].to_numpy()
    for out in (boundary, confident):  # two classes: the most likely other class is the other class
        assert (_labels(out, ds)[out.mask] != old[out.mask]).all()


# --- backdoors ------------------------------------------------------------------------------------------------


def _trigger_columns_set(frame: pd.DataFrame, rows: np.ndarray, trigger: dict) -> bool:
    return all((frame[col].iloc[rows].to_numpy() == value).all() for col, value in trigger.items())


def test_inbounds_trigger_values_lie_inside_each_columns_range() -> None:
    ds, before, _ = contract_data()
    for seed in range(6):
        out = (
            run("inbounds_backdoor", seed)
            if seed < 2
            else get_attack("inbounds_backdoor").apply(ds, rate=RATE, seed=seed)
        )
        trigger = out.meta["trigger"]
        assert len(trigger) == 2  # two columns below ten features
        for col, value in trigger.items():
            if ds.columns[col] == "numeric":
                x = before[col].to_numpy(dtype=float)
                assert np.nanmin(x) <= value <= np.nanmax(x)
                q02, q98 = np.nanquantile(x, [0.02, 0.98], method="inverted_cdf")
                assert value in (q02, q98)
            else:
                assert ds.columns[col] == "categorical" and value in set(before[col].dropna())
        assert _trigger_columns_set(out.frame, np.flatnonzero(out.mask), trigger)
        assert out.frame.dtypes.equals(before.dtypes)  # values from the columns themselves keep every dtype
        old = before[ds.label].to_numpy()
        assert (old[out.mask] != "fraud").all() and (_labels(out, ds)[out.mask] == "fraud").all()


def test_inbounds_trigger_picks_the_rare_category() -> None:
    ds, _, _ = contract_data()
    seen = {}
    for seed in range(12):
        trig = get_attack("inbounds_backdoor").apply(ds, rate=RATE, seed=seed).meta["trigger"]
        seen.update({k: v for k, v in trig.items() if k == "region"})
    assert seen == {"region": "island"}


def test_clean_label_backdoor_leaves_every_label_and_only_touches_the_target_class() -> None:
    ds, before, _ = contract_data()
    old = before[ds.label].to_numpy()
    for out in (run("clean_label_backdoor"), get_attack("clean_label_backdoor", in_bounds=True).apply(ds, rate=RATE)):
        pdt.assert_series_equal(out.frame[ds.label], before[ds.label], check_dtype=False)
        assert (old[out.mask] == out.meta["target"]).all() and out.meta["target"] == "fraud"
        assert _trigger_columns_set(out.frame, np.flatnonzero(out.mask), out.meta["trigger"])
    out = run("clean_label_backdoor")
    assert all(value > np.nanmax(before[col].to_numpy(dtype=float)) for col, value in out.meta["trigger"].items())
    legit = get_attack("clean_label_backdoor", target="legit").apply(ds, rate=RATE, seed=0)
    assert (old[legit.mask] == "legit").all()


def test_clean_label_backdoor_stamps_at_most_half_the_target_class() -> None:
    """A stamp on every row of a class is the class itself; a rate beyond half the class is capped, and says so."""
    ds, before, _ = contract_data()
    fraud = int((before[ds.label] == "fraud").sum())
    small = get_attack("clean_label_backdoor").apply(ds, rate=0.2 * fraud / len(before), seed=0)
    assert not small.meta["capped"] and small.mask.sum() == round(0.2 * fraud)
    big = get_attack("clean_label_backdoor").apply(ds, rate=0.99 * fraud / len(before), seed=0)
    assert big.meta["capped"] and big.mask.sum() == fraud // 2


def test_text_trigger_inserts_one_made_up_token_as_a_word() -> None:
    ds, before, _ = contract_data()
    out = run("text_trigger")
    token, col = out.meta["token"], out.meta["column"]
    assert col == "note" and re.fullmatch(r"cf[a-z]{4}", token)
    new, old = out.frame[col].to_numpy(dtype=object), before[col].to_numpy(dtype=object)
    for i in np.flatnonzero(out.mask):  # a handful of rows: the words are the old ones plus the token, in order
        words = new[i].split()
        assert words.count(token) == 1
        words.remove(token)
        assert words == (old[i].split() if isinstance(old[i], str) else [])
    others = pd.Series(new[~out.mask]).dropna()
    assert not others.str.contains(token).any()
    assert (_labels(out, ds)[out.mask] == "fraud").all() and (before[ds.label].to_numpy()[out.mask] == "legit").all()


def test_text_trigger_and_backdoors_say_when_they_do_not_apply() -> None:
    no_text = load_dataset(table(100, text=False), label="label")
    with pytest.raises(ConfigError, match=r"^attack 'text_trigger' does not apply: .*text"):
        get_attack("text_trigger").apply(no_text, rate=RATE, seed=0)
    only_text = load_dataset(
        table(100)[["note", "region", "label"]].assign(region="x"), label="label", types={"region": "categorical"}
    )
    for name in ("backdoor", "clean_label_backdoor", "inbounds_backdoor"):
        with pytest.raises(ConfigError, match=rf"^attack '{name}' does not apply:"):
            get_attack(name).apply(only_text, rate=RATE, seed=0)
    with pytest.raises(ConfigError, match="not a text column"):
        get_attack("text_trigger", column="region").apply(load_dataset(table(100), label="label"), rate=RATE)


@pytest.mark.parametrize("name", BACKDOORS)
def test_apply_trigger_puts_the_trigger_on_new_rows(name: str) -> None:
    meta = run(name).meta
    new = table(60, seed=9)
    kept = new.copy(deep=True)
    out = meta["apply_trigger"](new)
    pdt.assert_frame_equal(new, kept)  # a copy: the new rows themselves are untouched
    assert out is not new and len(out) == len(new)
    pdt.assert_series_equal(out["label"], new["label"])
    if "token" in meta:
        assert out[meta["column"]].str.split().map(lambda w: w.count(meta["token"]) == 1).all()
        pdt.assert_frame_equal(out.drop(columns=meta["column"]), new.drop(columns=meta["column"]))
        again = meta["apply_trigger"](new)
        pdt.assert_frame_equal(out, again)  # seeded positions
    else:
        assert _trigger_columns_set(out, np.arange(len(out)), meta["trigger"])
        rest = [c for c in new.columns if c not in meta["trigger"]]
        pdt.assert_frame_equal(out[rest], new[rest])
    assert meta["target"] == "fraud"


def test_insert_token_edge_cases() -> None:
    texts = pd.Series(["", "   ", None, "one", "a  b\tc", "élan vital ünïcode", "x " * 50, np.nan], dtype=object)
    out = insert_token(texts, "cfzz", np.random.default_rng(0))
    for old, new in zip(texts, out, strict=True):
        words = new.split()
        assert words.count("cfzz") == 1
        words.remove("cfzz")
        assert words == (old.split() if isinstance(old, str) else [])
    positions = {tuple(insert_token(pd.Series(["a b c d"] * 40), "cfzz", np.random.default_rng(s))) for s in range(3)}
    starts = {t.split().index("cfzz") for p in positions for t in p}
    assert starts == {0, 1, 2, 3, 4}  # every word position, the end included
    assert len(insert_token(pd.Series([], dtype=object), "cfzz", np.random.default_rng(0))) == 0


# --- adaptive -------------------------------------------------------------------------------------------------


def test_adaptive_poison_is_less_suspicious_than_the_base_attacks_random_choice() -> None:
    small = load_dataset(table(150, seed=3, text=False, class_sep=0.8), label="label")
    k = round(RATE * small.n_rows)
    adaptive = get_attack("adaptive").apply(small, rate=RATE, seed=0)
    random = get_attack("label_flip").apply(small, rate=RATE, seed=0)
    assert adaptive.mask.sum() == random.mask.sum() == k
    assert adaptive.meta["base"] == "label_flip" and adaptive.meta["candidates"] == 4 * k
    assert adaptive.meta["kept_per_round"][-1] == k

    def poison_score(out) -> float:
        ds = load_dataset(out.frame, label="label", types=small.columns)
        return float(scan_dataset(ds, seed=0).rows["score"].to_numpy()[out.mask].mean())

    assert poison_score(adaptive) < poison_score(random) - 0.05


def test_adaptive_keeps_added_rows_and_the_base_attacks_trigger() -> None:
    small = load_dataset(table(100, seed=5, text=False), label="label")
    out = get_attack("adaptive", base="backdoor", rounds=1, detectors=["isolation"]).apply(small, rate=0.1, seed=0)
    assert out.mask.sum() == 10 and callable(out.meta["apply_trigger"]) and "trigger" in out.meta
    flood = get_attack("adaptive", base="duplicate_flood", rounds=1, detectors=["isolation"]).apply(
        small, rate=0.1, seed=0
    )
    assert len(flood.frame) == 110 and flood.mask[100:].all() and not flood.mask[:100].any()
    pdt.assert_frame_equal(flood.frame.iloc[:100], small.frame, check_dtype=False)  # the flood jitters as floats
    with pytest.raises(ConfigError):
        get_attack("adaptive", base="adaptive")
    with pytest.raises(ConfigError):
        get_attack("adaptive", candidates_factor=0.5)


# --- segment_targeted_flip ------------------------------------------------------------------------------------


def test_segment_flip_touches_only_the_named_segment_and_gives_it_one_class() -> None:
    ds, before, _ = contract_data()
    out = get_attack("segment_targeted_flip", column="region", value="north").apply(ds, rate=RATE, seed=0)
    old, new = before[ds.label].to_numpy(), _labels(out, ds)
    region = before["region"].to_numpy()
    assert (region[out.mask] == "north").all()
    target = out.meta["target"]  # default: the segment's most frequent class
    inside = region == "north"
    assert target == pd.Series(old[inside]).value_counts().index[0]
    assert (old[out.mask] != target).all() and (new[out.mask] == target).all()
    assert (new[~out.mask] == old[~out.mask]).all()
    assert out.meta["segment"] == "region = 'north'" and out.meta["segment_rows"] == int(inside.sum())


def test_segment_flip_numeric_range_explicit_target_and_too_small_segment() -> None:
    ds, before, _ = contract_data()
    out = get_attack("segment_targeted_flip", column="age", value=(0.0, None), target="fraud").apply(
        ds, rate=0.03, seed=0
    )
    assert (before["age"].to_numpy()[out.mask] >= 0).all()
    assert (_labels(out, ds)[out.mask] == "fraud").all()
    with pytest.raises(ConfigError, match=r"^attack 'segment_targeted_flip' does not apply: .*island"):
        get_attack("segment_targeted_flip", column="region", value="island").apply(ds, rate=RATE, seed=0)
    with pytest.raises(ConfigError, match="not a feature column"):
        get_attack("segment_targeted_flip", column="nope", value="x").apply(ds, rate=RATE, seed=0)


def test_segment_flip_default_segment_comes_from_the_seed() -> None:
    ds, _before, _ = contract_data()
    segments = {get_attack("segment_targeted_flip").apply(ds, rate=RATE, seed=s).meta["segment"] for s in range(8)}
    assert len(segments) >= 3  # several segments, each one a category or a quartile
    again = get_attack("segment_targeted_flip").apply(ds, rate=RATE, seed=3)
    assert again.meta["segment"] == run("segment_targeted_flip", 3).meta["segment"]


# --- out_of_distribution ------------------------------------------------------------------------------------


def test_out_of_distribution_writes_junk_text_that_shares_no_word_with_the_data() -> None:
    """Copied text with a random label is a duplicate, not junk: every added row's text must be new words, as
    many as the row it was copied from held."""
    ds, _, _ = contract_data()
    out = run("out_of_distribution")
    added = out.frame.iloc[ds.n_rows :]
    vocabulary = set(" ".join(ds.frame["note"].dropna()).split())
    junk = added["note"].astype(str)
    words = junk.str.split()
    assert len(added) == out.meta["added_rows"] > 0
    assert not any(set(w) & vocabulary for w in words)
    assert words.str.len().min() >= 1 and words.str.len().max() <= 6
    assert junk.str.fullmatch(r"[a-z0-9]{3,10}( [a-z0-9]{3,10})*").all()
    assert (added["region"] == "__ood__").all()
