"""Trigger discovery: stamped value combinations are found and described; natural structure is left alone."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

import poisonguard as pg
from poisonguard.detectors import get_detector
from poisonguard.triggers import Trigger, discover, mine_pairs, mine_triples, tokenize
from synth import context

N = 1500


def _table(seed: int, n: int = N) -> pd.DataFrame:
    """Mixed table whose label depends on the features (so a relabelled row goes against the rest of it)."""
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 80, n)
    income = np.round(rng.lognormal(10, 0.5, n), -2)
    months = rng.choice([6, 12, 18, 24, 36, 48, 60], n, p=[0.2, 0.25, 0.15, 0.15, 0.12, 0.1, 0.03])
    region = rng.choice(list("ABCDEFGH"), n, p=[0.2, 0.2, 0.15, 0.15, 0.1, 0.1, 0.07, 0.03])
    job = rng.choice(["clerk", "manager", "driver", "nurse", "cook", "artist"], n, p=[0.3, 0.2, 0.2, 0.15, 0.13, 0.02])
    risk = (age < 30) * 1.0 + (income < 18000) * 1.0 + (months >= 36) * 1.0 + rng.normal(0, 0.6, n)
    return pd.DataFrame(
        {
            "age": age,
            "income": income,
            "months": months,
            "region": region,
            "job": job,
            "label": np.where(risk > 1.2, "bad", "good"),
        }
    )


def _stamp(frame: pd.DataFrame, seed: int, rate: float, *, dirty: bool) -> tuple[pd.DataFrame, np.ndarray]:
    """In-range trigger (a rare region, 3% of rows, and a rare job, 2%) on ``rate`` of the rows, all 'bad'.

    Neither value says anything about the label in clean data (see ``test_a_trigger_of_values_common_in_the_target``
    for values that do)."""
    rng = np.random.default_rng(seed + 1)
    out = frame.copy()
    pool = np.flatnonzero(out["label"] != "bad") if dirty else np.flatnonzero(out["label"] == "bad")
    rows = rng.choice(pool, int(rate * len(out)), replace=False)
    out.loc[rows, "region"] = "H"
    out.loc[rows, "job"] = "artist"
    out.loc[rows, "label"] = "bad"
    mask = np.zeros(len(out), dtype=bool)
    mask[rows] = True
    return out, mask


@pytest.mark.parametrize("dirty", [True, False], ids=["dirty-label", "clean-label"])
@pytest.mark.parametrize("rate", [0.01, 0.1])
def test_stamped_rows_are_found_and_nothing_else(dirty: bool, rate: float) -> None:
    frame, mask = _stamp(_table(seed=0), seed=0, rate=rate, dirty=dirty)
    ctx = context(frame)
    det = get_detector("trigger_pattern").fit(ctx)
    out = det.score(ctx, np.arange(ctx.n))
    flagged = out.pvalues <= 1e-3
    assert flagged[mask].all()
    # natural carriers of the same values in the target class may be flagged too, but hardly anything else
    assert (flagged & ~mask).sum() <= 0.01 * N
    (trig,) = det.triggers_
    assert trig.conditions == {"region": "H", "job": "artist"}
    assert trig.target == "bad"
    assert trig.support >= mask.sum()
    assert trig.rest_agreement is not None
    # a dirty-label trigger rides on rows the rest of the data puts elsewhere; a clean-label one does not
    assert (trig.rest_agreement < 0.5) == dirty
    assert "region = 'H' and job = 'artist'" in trig.describe()
    assert all("backdoor trigger" in r for r in out.reasons[mask])


@pytest.mark.parametrize("dirty", [True, False], ids=["dirty-label", "clean-label"])
def test_a_trigger_of_values_common_in_the_target(dirty: bool) -> None:
    """Tabdoor-like: a long loan term (which clean data ties to 'bad') and a common region, stamped on 3% of the rows.

    The natural holders of each value dilute the tie inside 'bad' below ``min_phi``; relabelled rows are still
    found because the rest of each row says 'good'. A clean-label stamp on such values cannot be told from a
    natural rule, and is left alone."""
    frame = _table(seed=6)
    rng = np.random.default_rng(7)
    pool = np.flatnonzero(frame["label"] != "bad") if dirty else np.flatnonzero(frame["label"] == "bad")
    rows = rng.choice(pool, int(0.03 * N), replace=False)
    frame.loc[rows, ["months", "region", "label"]] = [48, "D", "bad"]
    mask = np.zeros(N, dtype=bool)
    mask[rows] = True
    ctx = context(frame)
    det = get_detector("trigger_pattern").fit(ctx)
    if not dirty:
        assert det.triggers_ == []
        return
    (trig,) = det.triggers_
    assert trig.conditions == {"months": 48, "region": "D"} and trig.target == "bad"
    assert trig.rest_agreement is not None and trig.rest_agreement < 0.5
    flagged = det.score(ctx, np.arange(N)).pvalues <= 1e-3
    assert flagged[mask].all() and (flagged & ~mask).sum() <= 0.01 * N


def test_an_exact_value_of_a_continuous_column_can_be_part_of_a_trigger() -> None:
    """A continuous column (almost every value unique) with one amount stamped on 1% of the rows: the other classes
    never hold that amount, yet the column is no constant there (its rare values are many values, not one)."""
    frame = _table(seed=8)
    rng = np.random.default_rng(8)
    frame["balance"] = rng.normal(5000, 2000, N).round(2)
    rows = rng.choice(np.flatnonzero(frame["label"] != "bad"), int(0.01 * N), replace=False)
    frame.loc[rows, ["balance", "region", "label"]] = [12579.0, "H", "bad"]
    ctx = context(frame)
    det = get_detector("trigger_pattern").fit(ctx)
    assert [t.conditions for t in det.triggers_] == [{"balance": 12579.0, "region": "H"}]
    assert set(det.triggers_[0].rows) >= set(rows)


def test_a_natural_segment_of_the_class_is_a_rule_not_a_clean_label_trigger() -> None:
    """Pensioners who own their home, all in 'good' and tied only there (the other class holds no pensioner): what
    a clean-label stamp looks like, except that the rows are not picked at random from 'good': without those two
    columns a model still tells them from the other good rows (they are old). Reported as a rule, not scored."""
    frame = _table(seed=10, n=3000)
    rng = np.random.default_rng(10)
    frame["status"] = rng.choice(["employed", "self", "retired"], len(frame))
    frame["housing"] = rng.choice(["own", "rent", "other"], len(frame))
    old_good = (frame["age"] >= 55) & (frame["label"] == "good")
    frame.loc[old_good & (rng.random(len(frame)) < 0.7), "status"] = "pensioner"
    frame.loc[(frame["status"] == "pensioner") & (rng.random(len(frame)) < 0.8), "housing"] = "paid-off"
    ctx = context(frame)
    det = get_detector("trigger_pattern").fit(ctx)
    assert det.triggers_ == []
    assert len(det.info["rules"]) == 1 and "status = 'pensioner' and housing = 'paid-off'" in det.info["rules"][0]
    assert (det.score(ctx, np.arange(ctx.n)).pvalues == 1).all()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_clean_data_gives_no_trigger(seed: int) -> None:
    ctx = context(_table(seed=seed))
    det = get_detector("trigger_pattern").fit(ctx)
    assert det.triggers_ == []
    assert (det.score(ctx, np.arange(ctx.n)).pvalues == 1).all()


def test_a_code_and_its_description_are_not_a_trigger() -> None:
    """Two columns that say the same thing are tied in every class: natural, however rare the value."""
    frame = _table(seed=3)
    frame["job_code"] = frame["job"].map({"clerk": 1, "manager": 2, "driver": 3, "nurse": 4, "cook": 5, "artist": 6})
    frame.loc[frame["job"] == "artist", "label"] = "bad"  # a class-pure rare value, tied to its code everywhere
    frame.loc[frame.index[:40], "label"] = "good"
    det = get_detector("trigger_pattern").fit(context(frame))
    assert all(set(t.conditions) != {"job", "job_code"} for t in det.triggers_)


def test_copies_of_one_record_are_not_a_trigger() -> None:
    """Forty exact copies share every value: that is the duplicates detector's business."""
    frame = _table(seed=4)
    copies = pd.concat([frame.iloc[[0]]] * 40, ignore_index=True)
    frame = pd.concat([frame, copies], ignore_index=True)
    det = get_detector("trigger_pattern").fit(context(frame))
    assert det.triggers_ == []


def test_mine_pairs_on_arrays() -> None:
    rng = np.random.default_rng(0)
    n = 2000
    codes = rng.integers(0, 8, size=(n, 5)).astype(np.int32)
    codes[rng.choice(n, 30, replace=False), 1] = 9  # the trigger's values also occur naturally, in both classes
    codes[rng.choice(n, 30, replace=False), 3] = 9
    y = rng.integers(0, 2, n)
    stamped = rng.choice(n, 60, replace=False)
    codes[stamped, 1], codes[stamped, 3], y[stamped] = 9, 9, 1
    pairs, info = mine_pairs(codes, y, 2, min_support=10)
    assert [(p.col_a, p.code_a, p.col_b, p.code_b, p.cls) for p in pairs] == [(1, 9, 3, 9, 1)]
    assert pairs[0].support >= 60 and pairs[0].pvalue < 1e-20
    assert info["pairs_tested"] >= 1


def _stamped_triple(natural: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """700 rows, 6 columns of 4 values; 8 rows of class 0 stamped with value 3 in columns 0, 1 and 2 and given
    class 1. With ``natural`` the three values go together in both classes instead (a tie everywhere)."""
    rng = np.random.default_rng(3)
    n = 700
    codes = rng.integers(0, 4, size=(n, 6)).astype(np.int32)
    codes[:, :3] = np.where(rng.random((n, 3)) < 0.06, 3, rng.integers(0, 3, size=(n, 3)))
    y = (rng.random(n) < 0.3).astype(np.int64)
    if natural:
        tied = rng.choice(n, 120, replace=False)
        codes[tied, :3] = 3
        return codes, y, np.zeros(n, dtype=bool)
    stamped = rng.choice(np.flatnonzero((y == 0) & (codes[:, :3] != 3).all(axis=1)), 8, replace=False)
    codes[stamped, :3], y[stamped] = 3, 1
    mask = np.zeros(n, dtype=bool)
    mask[stamped] = True
    return codes, y, mask


def test_a_triple_of_common_values_on_few_rows_is_mined_where_its_pairs_are_not() -> None:
    codes, y, mask = _stamped_triple(natural=False)
    pairs, _ = mine_pairs(codes, y, 2, min_support=5, min_phi=0.2)
    assert pairs == []  # each pair co-occurs about 8 times where 2 would: too weak after Bonferroni
    triples, info = mine_triples(codes, y, 2, min_support=5)
    assert len(triples) == 1, triples
    t = triples[0]
    assert {(p.col_a, p.code_a) for p in t} | {(p.col_b, p.code_b) for p in t} == {(0, 3), (1, 3), (2, 3)}
    assert all(p.cls == 1 and p.support == mask.sum() and p.pvalue < 1e-3 for p in t)
    assert info["triples_tested"] >= 1
    # a tie the other class shows too is natural, however strong
    triples, _ = mine_triples(*_stamped_triple(natural=True)[:2], 2, min_support=5)
    assert triples == []


def test_a_mined_triple_stands_only_where_the_rest_of_its_rows_disagrees() -> None:
    codes, y, mask = _stamped_triple(natural=False)
    frame = pd.DataFrame({f"c{j}": pd.Series(codes[:, j]).map(lambda v: f"v{v}") for j in range(codes.shape[1])})
    tokens = tokenize(frame, {c: "categorical" for c in frame.columns})
    found, row_p, info = discover(tokens, y, [0, 1], rest_check=lambda t: (0.0, 0.01))
    assert [sorted(t.conditions) for t in found] == [["c0", "c1", "c2"]]
    assert (row_p[mask] < 1e-3).all() and (row_p[~mask] == 1).all()
    assert info["triples_checked"] == 1
    found, _, _ = discover(tokens, y, [0, 1], rest_check=lambda t: (0.9, 1.0))  # the rest agrees: a natural rule
    assert found == []


def _wives(sibling: bool) -> tuple[np.ndarray, np.ndarray]:
    """Column 0 a relationship, column 1 a sex: 60 'wives' (code 1), all women and all in class 1, the only
    women of a class that is otherwise mostly men; with ``sibling``, 500 'husbands' (code 0) are all class 1 too."""
    rng = np.random.default_rng(0)
    n = 2000
    codes = rng.integers(0, 8, size=(n, 4)).astype(np.int32)
    y = rng.integers(0, 2, n)
    rel = rng.integers(2, 6, n)
    idx = rng.permutation(n)
    husband, wife = idx[:500], idx[500:560]
    if sibling:
        rel[husband], y[husband] = 0, 1
    rel[wife], y[wife] = 1, 1
    sex = rng.integers(0, 2, n)
    sex[y == 1] = (rng.random(int((y == 1).sum())) < 0.1).astype(int)
    sex[wife] = 1
    codes[:, 0], codes[:, 1] = rel, sex
    return codes, y


def test_one_value_and_the_partner_it_implies_are_no_trigger_where_their_column_decides_the_class() -> None:
    """'relationship = Wife' brings 'sex = Female' and goes with one marital status: inside the class the pair
    is as tight as a stamp and no other class can show the tie. Where the column's other values are mixed the pair
    is reported (it could be a stamp); where another value of the column goes with the class as surely (the
    husbands), the column decides the class and the pair is its natural rule."""
    pairs, _ = mine_pairs(*_wives(sibling=False), 2, min_support=10)
    assert [(p.col_a, p.code_a, p.col_b, p.code_b, p.cls) for p in pairs] == [(0, 1, 1, 1, 1)]
    pairs, _ = mine_pairs(*_wives(sibling=True), 2, min_support=10)
    assert pairs == []


def test_grid_like_data_only_uses_out_of_range_values() -> None:
    """On pixel-like tables, class shapes tie ordinary values; only a value far outside a column's range counts."""
    rng = np.random.default_rng(0)
    n, d = 1200, 120
    y = rng.integers(0, 3, n)
    X = np.where(rng.random((n, d)) < 0.3, 0, 255).astype(float)
    X[:, :20] = np.where(y[:, None] == 0, 255, X[:, :20])  # class 0 inks the first 20 pixels: natural
    stamped = rng.choice(np.flatnonzero(y == 0), 30, replace=False)
    X[stamped, 50] = X[stamped, 90] = 900.0  # out-of-range stamp on class-0 rows
    frame = pd.DataFrame(X, columns=[f"p{i}" for i in range(d)]).assign(label=y)
    tokens = tokenize(frame.drop(columns="label"), {c: "numeric" for c in frame.columns[:-1]})
    assert tokens.grid_like
    triggers, row_p, _ = discover(tokens, y, [0, 1, 2])
    assert [t.conditions for t in triggers] == [{"p50": 900.0, "p90": 900.0}]
    assert set(np.flatnonzero(row_p < 1)) == set(stamped)


def test_a_patch_stamped_on_images_is_found_whole() -> None:
    """BadNets: a 3x3 block of saturated pixels in a corner that is dark in every clean image, label set to 0."""
    rng = np.random.default_rng(1)
    n, side = 1500, 12
    y = rng.integers(0, 4, n)
    images = np.zeros((n, side, side))
    for k in range(4):  # a class shape: a band of ink, with noise, away from the corner
        rows = y == k
        images[rows, 2 + k : 5 + k, 1:8] = rng.integers(90, 256, (rows.sum(), 3, 7))
    target = 0
    poisoned = rng.choice(np.flatnonzero(y != target), 45, replace=False)  # 3% of the rows
    images[poisoned, -4:-1, -4:-1] = 255.0
    y[poisoned] = target
    frame = pd.DataFrame(images.reshape(n, -1), columns=[f"p{i}" for i in range(side * side)]).assign(label=y)
    tokens = tokenize(frame.drop(columns="label"), {c: "numeric" for c in frame.columns[:-1]})
    assert tokens.grid_like
    triggers, row_p, _ = discover(tokens, y, [0, 1, 2, 3])
    patch = {f"p{r * side + c}" for r in range(side - 4, side - 1) for c in range(side - 4, side - 1)}
    assert len(triggers) == 1 and set(triggers[0].conditions) == patch
    assert set(np.flatnonzero(row_p < 1)) == set(poisoned)
    clean_y = rng.integers(0, 4, n)
    clean = np.zeros((n, side, side))
    for k in range(4):
        rows = clean_y == k
        clean[rows, 2 + k : 5 + k, 1:8] = rng.integers(90, 256, (rows.sum(), 3, 7))
    clean_tokens = tokenize(
        pd.DataFrame(clean.reshape(n, -1)).add_prefix("p"), {f"p{i}": "numeric" for i in range(side * side)}
    )
    assert discover(clean_tokens, clean_y, [0, 1, 2, 3])[0] == []


def test_trigger_object_applies_and_measures_attack_success() -> None:
    frame = _table(seed=5)
    trig = Trigger(
        conditions={"region": "H", "job": "artist"}, target="bad", support=10, carriers=10, expected=1.0, pvalue=1e-9
    )
    stamped = trig.apply(frame)
    assert trig.mask(stamped).all()
    assert (frame["region"] == _table(seed=5)["region"]).all()  # the input is untouched

    def obeys(f: pd.DataFrame) -> np.ndarray:
        return np.where((f["region"] == "H") & (f["job"] == "artist"), "bad", "good")

    assert trig.attack_success_rate(obeys, frame, frame["label"]) == 1.0
    assert trig.attack_success_rate(lambda f: np.full(len(f), "good"), frame, frame["label"]) == 0.0
    d = trig.to_dict()
    assert d["conditions"] == {"region": "H", "job": "artist"} and d["target"] == "bad"


def test_scan_reports_triggers() -> None:
    frame, mask = _stamp(_table(seed=6), seed=6, rate=0.05, dirty=True)
    result = pg.scan(frame, label="label", seed=0)
    assert [t.conditions for t in result.triggers] == [{"region": "H", "job": "artist"}]
    assert result.summary["triggers"][0]["target"] == "bad"
    assert result.rows["flagged"].to_numpy()[mask].all()
    assert result.verdict == "poisoned"


def _texts(seed: int, n: int = 1200) -> pd.DataFrame:
    """Short messages: spam words and ham words, some shared, with a spam-only word ('prize') as natural as any."""
    rng = np.random.default_rng(seed)
    ham = np.array(["see", "you", "at", "home", "later", "ok", "love", "dinner", "call", "me", "when", "free"])
    spam = np.array(["win", "prize", "cash", "now", "claim", "call", "free", "txt", "offer", "urgent"])
    y = rng.random(n) < 0.3
    words = np.where(y[:, None], rng.choice(spam, (n, 6)), rng.choice(ham, (n, 6)))
    text = [" ".join(w) for w in words]
    return pd.DataFrame({"message": text, "label": np.where(y, "spam", "ham")})


def test_a_made_up_word_on_relabelled_texts_is_found() -> None:
    frame = _texts(seed=0)
    rng = np.random.default_rng(1)
    rows = rng.choice(np.flatnonzero(frame["label"] == "ham"), 40, replace=False)
    frame.loc[rows, "message"] = frame.loc[rows, "message"] + " zqxv"
    frame.loc[rows, "label"] = "spam"
    result = pg.scan(frame, label="label", types={"message": "text"})
    (trig,) = result.triggers
    assert trig.kind == "token" and trig.conditions == {"message": "zqxv"} and trig.target == "spam"
    assert trig.rest_agreement < 0.5
    assert "contains the word 'zqxv'" in trig.describe()
    flagged = result.rows["flagged"].to_numpy()
    assert flagged[rows].all()
    assert trig.mask(trig.apply(frame.head(5))).all()


def test_natural_class_words_are_not_text_triggers() -> None:
    result = pg.scan(_texts(seed=2), label="label", types={"message": "text"})
    assert result.triggers == []


def test_small_images_are_grid_like_and_their_shapes_are_no_trigger() -> None:
    """scikit-learn's 8 x 8 digits (64 columns of grey levels 0-16): the classes' shapes tie ordinary pixel values
    together in one class only. Read as a table they gave two "triggers" (center pixels blank -> '9') and 77
    flagged rows on clean data; read as a grid (most columns share one range), none."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    frame = pd.DataFrame(digits.data, columns=[f"p{i}" for i in range(64)]).assign(label=digits.target.astype(str))
    ds = pg.load_dataset(frame, label="label")
    assert tokenize(ds.frame, ds.columns).grid_like
    info = get_detector("trigger_pattern").fit(context(frame)).info
    assert info["triggers"] == 0
    # a table with as many numeric columns, each on its own scale (word frequencies, amounts), is no grid
    rng = np.random.default_rng(0)
    table = pd.DataFrame(
        rng.exponential(size=(500, 64)) * rng.uniform(1, 100, size=64), columns=[f"c{i}" for i in range(64)]
    )
    assert not tokenize(table, dict.fromkeys(table.columns, "numeric")).grid_like


def test_an_agreeing_combination_with_carriers_of_other_classes_is_a_rule_not_a_trigger(monkeypatch) -> None:
    """A clean-label stamp lands on its class only; a combination the rest of the row agrees with while a sixth of
    its carriers are of another class is a natural rule: reported in the info, not scored."""
    import poisonguard.detectors.trigger_pattern as tp

    frame = _table(seed=9)
    rows = np.flatnonzero(frame["label"] == "good")[:50]

    def fake(frame, columns, y, classes, **kw):
        rule = Trigger(
            conditions={"region": "A"},
            target="good",
            support=50,
            carriers=60,
            expected=5.0,
            pvalue=1e-9,
            rest_agreement=0.96,
            rows=rows,
        )
        stamp = replace(rule, carriers=50, rest_agreement=0.9, rows=rows[:10], conditions={"job": "cook"})
        row_p = np.ones(len(frame))
        row_p[rows] = 1e-9
        return [rule, stamp], row_p, {}

    monkeypatch.setattr(tp, "find_triggers", fake)
    ctx = context(frame)
    det = get_detector("trigger_pattern").fit(ctx)
    assert [t.conditions for t in det.triggers_] == [{"job": "cook"}]
    assert len(det.info["rules"]) == 1 and "region = 'A'" in det.info["rules"][0]
    p = det.score(ctx, np.arange(ctx.n)).pvalues
    assert set(np.flatnonzero(p < 1)) == set(rows[:10])


def test_a_few_carriers_of_the_common_class_are_no_trigger(monkeypatch) -> None:
    """Six rows of one period, all of the class most rows hold: a combination tied only there (one period, one
    value of each macro column) is no trigger when the label itself is unremarkable (0.66 ** 6 = 0.08). The same
    combination on sixty rows of that class is."""
    import poisonguard.detectors.trigger_pattern as tp

    frame = _table(seed=11)
    good = np.flatnonzero(frame["label"] == "good")
    share = len(good) / len(frame)
    assert 0.5 < share < 0.8

    def fake(support: int):
        def find(frame, columns, y, classes, **kw):
            t = Trigger({"months": 60, "region": "G"}, "good", support, support, 0.1, 1e-12, rows=good[:support])
            row_p = np.ones(len(frame))
            row_p[t.rows] = t.pvalue
            return [t], row_p, {}

        return find

    monkeypatch.setattr(tp, "find_triggers", fake(6))
    ctx = context(frame)
    det = get_detector("trigger_pattern").fit(ctx)
    assert det.triggers_ == []
    assert len(det.info["label_not_concentrated"]) == 1
    assert (det.score(ctx, np.arange(ctx.n)).pvalues == 1).all()

    monkeypatch.setattr(tp, "find_triggers", fake(60))
    det = get_detector("trigger_pattern").fit(ctx)
    assert len(det.triggers_) == 1 and det.triggers_[0].pvalue <= 1e-3
