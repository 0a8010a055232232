"""End-to-end tests of the ``poisonguard`` command line on small synthetic files."""

from __future__ import annotations

import io
import json

import pandas as pd
import pytest
from rich.console import Console

from conftest import N_FLOOD, N_ROWS
from poisonguard import __version__
from poisonguard._progress import RichProgress

# ------------------------------------------------------------------------------------------------ exit codes


def test_clean_data_exits_0_and_prints_the_summary(invoke, clean_csv):
    res = invoke("scan", clean_csv, "--label", "label")
    assert res.exit_code == 0, res.output
    out = res.stdout
    assert "Verdict: CLEAN" in out
    assert f"of {N_ROWS} rows" in out
    assert "Estimated poisoned fraction" in out
    assert "By class" in out and "churn" in out and "stay" in out
    assert "By source" not in out
    assert res.stderr.count("error:") == 0


def test_poisoned_data_exits_1_and_lists_flagged_rows(invoke, poisoned_csv):
    res = invoke("scan", poisoned_csv, "--label", "label")
    assert res.exit_code == 1, res.output
    out = res.stdout
    assert "Verdict: POISONED" in out or "Verdict: SUSPICIOUS" in out
    assert "flagged rows" in out  # the "Top N of M flagged rows" table
    assert "reasons" in out


def test_fail_on_never_exits_0_on_poisoned_data(invoke, poisoned_csv):
    res = invoke("scan", poisoned_csv, "--label", "label", "--fail-on", "never")
    assert res.exit_code == 0, res.output


@pytest.mark.parametrize("fail_on", ["suspicious", "poisoned"])
def test_fail_on_level_sets_the_exit_code(invoke, poisoned_csv, tmp_path, fail_on):
    res = invoke("scan", poisoned_csv, "--label", "label", "--fail-on", fail_on, "--out", tmp_path / "o")
    verdict = json.loads((tmp_path / "o" / "summary.json").read_text())["verdict"]
    rank = {"clean": 0, "suspicious": 1, "poisoned": 2}
    assert res.exit_code == (1 if rank[verdict] >= rank[fail_on] else 0), res.output


def test_usage_errors_exit_2(invoke, clean_csv):
    missing_label = invoke("scan", clean_csv)
    assert missing_label.exit_code == 2
    assert "--label" in missing_label.output
    bad_choice = invoke("scan", clean_csv, "--label", "label", "--fail-on", "sometimes")
    assert bad_choice.exit_code == 2
    unknown_option = invoke("scan", clean_csv, "--label", "label", "--frobnicate")
    assert unknown_option.exit_code == 2
    negative_top = invoke("scan", clean_csv, "--label", "label", "--top", "-1")
    assert negative_top.exit_code == 2
    for res in (missing_label, bad_choice, unknown_option, negative_top):
        assert "Traceback" not in res.output


def test_no_command_shows_help(invoke):
    res = invoke()
    assert "scan" in res.output and "demo" in res.output


def test_version(invoke):
    for args in (["version"], ["--version"]):
        res = invoke(*args)
        assert res.exit_code == 0
        assert res.stdout.strip() == f"poisonguard {__version__}"


# ------------------------------------------------------------------------------------------------ outputs


def test_out_writes_rows_flagged_and_summary(invoke, poisoned_csv, poisoned_frame, tmp_path):
    out = tmp_path / "results" / "nested"  # created, parents included
    res = invoke("scan", poisoned_csv, "--label", "label", "--out", out)
    assert res.exit_code in (0, 1), res.output
    assert sorted(p.name for p in out.iterdir()) == ["flagged.csv", "rows.csv", "summary.json"]
    assert "Wrote rows.csv, flagged.csv, summary.json" in res.stdout

    with (out / "rows.csv").open() as fh:
        header = fh.readline().strip().split(",")
        n_lines = sum(1 for _ in fh)
    assert header[0] == "row"
    assert n_lines == len(poisoned_frame)
    rows = pd.read_csv(out / "rows.csv")
    assert rows["row"].tolist() == list(range(len(poisoned_frame)))
    for col in ("label", "score", "flagged", "reasons"):
        assert col in rows.columns
    assert rows["score"].between(0, 1).all()

    summary = json.loads((out / "summary.json").read_text())
    assert summary["verdict"] in {"clean", "suspicious", "poisoned"}
    assert summary["rows"] == len(poisoned_frame)
    assert summary["flagged"] == int(rows["flagged"].sum())
    assert summary["seed"] == 0 and summary["fpr"] == 0.01

    flagged = pd.read_csv(out / "flagged.csv")
    assert len(flagged) == summary["flagged"]
    assert flagged.columns[0] == "row"
    assert {"poisonguard_score", "poisonguard_reasons", *poisoned_frame.columns} <= set(flagged.columns)
    assert set(flagged["row"]) == set(rows.loc[rows["flagged"], "row"])


def test_the_flood_of_copies_is_flagged(invoke, poisoned_csv, tmp_path):
    res = invoke("scan", poisoned_csv, "--label", "label", "--out", tmp_path, "--quiet")
    assert res.exit_code == 1, res.output
    rows = pd.read_csv(tmp_path / "rows.csv")
    flood = rows["row"] >= N_ROWS
    assert flood.sum() == N_FLOOD
    assert rows.loc[flood, "flagged"].mean() > 0.5


def test_non_empty_out_is_refused_without_force(invoke, clean_csv, tmp_path):
    keep = tmp_path / "notes.txt"
    keep.write_text("mine\n")
    res = invoke("scan", clean_csv, "--label", "label", "--out", tmp_path)
    assert res.exit_code == 2
    assert str(tmp_path) in res.stderr and "--force" in res.stderr
    assert not (tmp_path / "rows.csv").exists()

    forced = invoke("scan", clean_csv, "--label", "label", "--out", tmp_path, "--force")
    assert forced.exit_code == 0, forced.output
    assert (tmp_path / "rows.csv").exists()
    assert keep.read_text() == "mine\n"  # files that are not results are left alone


def test_out_that_is_a_file_is_refused(invoke, clean_csv, tmp_path):
    target = tmp_path / "results"
    target.write_text("x")
    res = invoke("scan", clean_csv, "--label", "label", "--out", target, "--force")
    assert res.exit_code == 2
    assert "not a directory" in res.stderr


def test_out_never_overwrites_the_input(invoke, clean_frame, tmp_path):
    data = tmp_path / "rows.csv"
    clean_frame.to_csv(data, index=False)
    before = data.read_bytes()
    res = invoke("scan", data, "--label", "label", "--out", tmp_path, "--force")
    assert res.exit_code == 2
    assert "overwrite the input" in res.stderr
    assert data.read_bytes() == before


def test_quiet_prints_one_line_and_no_progress(invoke, poisoned_csv, tmp_path):
    res = invoke("scan", poisoned_csv, "--label", "label", "--quiet", "--out", tmp_path / "o")
    assert res.exit_code == 1, res.output
    lines = res.stdout.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(("poisoned:", "suspicious:"))
    assert "rows flagged" in lines[0]
    assert res.stderr == ""  # no progress bars
    assert (tmp_path / "o" / "rows.csv").exists()


def test_progress_is_shown_on_stderr_without_quiet(invoke, clean_csv):
    res = invoke("scan", clean_csv, "--label", "label")
    assert "loading data" in res.stderr
    assert "loading data" not in res.stdout


def test_source_id_exclude_and_type_options(invoke, clean_frame, tmp_path):
    frame = clean_frame.copy()
    frame["vendor"] = ["a", "b", "c"] * (len(frame) // 3)
    frame["customer_id"] = [f"c{i:05d}" for i in range(len(frame))]
    data = tmp_path / "with_source.csv"
    frame.to_csv(data, index=False)
    res = invoke(
        "scan", data, "--label", "label", "--source", "vendor", "--id", "customer_id",
        "--exclude", "f5", "--type", "f4=categorical", "--out", tmp_path / "o", "--fail-on", "never",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "By source" in res.stdout
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    ignored = summary["data"]["ignored"]
    assert ignored["f5"] == "excluded" and ignored["vendor"] == "source" and ignored["customer_id"] == "id"
    assert summary["data"]["features"]["f4"] == "categorical"
    rows = pd.read_csv(tmp_path / "o" / "rows.csv")
    assert list(rows.columns[:3]) == ["row", "source", "id"]


def test_top_limits_the_flagged_table(invoke, poisoned_csv):
    top3 = invoke("scan", poisoned_csv, "--label", "label", "--top", "3")
    assert "Top 3 of" in top3.stdout
    none = invoke("scan", poisoned_csv, "--label", "label", "--top", "0")
    assert "flagged rows" not in none.stdout
    assert none.exit_code == top3.exit_code == 1


def test_seed_and_fpr_reach_the_scan(invoke, clean_csv, tmp_path):
    res = invoke("scan", clean_csv, "--label", "label", "--seed", "7", "--fpr", "0.05", "--out", tmp_path, "-q")
    assert res.exit_code in (0, 1), res.output
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["seed"] == 7 and summary["fpr"] == 0.05


def test_canaries_report_recall(invoke, clean_csv):
    res = invoke("scan", clean_csv, "--label", "label", "--canaries", "--fail-on", "never")
    assert res.exit_code == 0, res.output
    assert "Canaries" in res.stdout


# ------------------------------------------------------------------------------------------------ errors


def test_an_internal_error_exits_3_without_traceback(invoke, clean_csv, monkeypatch):
    import poisonguard.scanner

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(poisonguard.scanner, "scan", broken)
    res = invoke("scan", clean_csv, "--label", "label")
    assert res.exit_code == 3
    assert "internal error" in res.stderr and "boom" in res.stderr and "--debug" in res.stderr
    assert "Traceback" not in res.output

    debug = invoke("scan", clean_csv, "--label", "label", "--debug")
    assert debug.exit_code == 3
    assert "Traceback" in debug.stderr


def test_debug_shows_the_traceback_of_an_input_error(invoke, tmp_path):
    res = invoke("scan", tmp_path / "nope.csv", "--label", "label", "--debug")
    assert res.exit_code == 2
    assert "Traceback" in res.stderr and "InputError" in res.stderr
    assert res.stderr.strip().splitlines()[-1].startswith("error: ")


# ------------------------------------------------------------------------------------------------ demo


def test_demo_poisons_scans_and_compares(invoke, tmp_path):
    out = tmp_path / "demo"
    res = invoke("demo", "--out", out, "--quiet")
    assert res.exit_code == 0, res.output
    for name in (
        "poisoned.csv",
        "truth.csv",
        "scan/rows.csv",
        "scan/flagged.csv",
        "scan/summary.json",
        "scan/report.html",
    ):
        assert (out / name).is_file(), name
    assert "Caught vs planted" in res.stdout
    assert "label flip" in res.stdout and "backdoor trigger" in res.stdout
    assert "AUROC" in res.stdout
    truth = pd.read_csv(out / "truth.csv")
    assert list(truth.columns) == ["row", "poisoned", "kind"]
    rerun = invoke("demo", "--out", out, "--quiet")  # the demo replaces its own files
    assert rerun.exit_code == 0, rerun.output


def test_demo_poison_is_fixed_and_marked():
    from poisonguard import demo

    clean = demo.clean_data()
    poisoned, truth = demo.poison(clean, seed=0)
    again, truth2 = demo.poison(clean, seed=0)
    pd.testing.assert_frame_equal(poisoned, again)
    pd.testing.assert_frame_equal(truth, truth2)
    assert len(clean) == len(poisoned) == len(truth) == 569
    counts = truth["kind"].value_counts()
    assert counts["label_flip"] == round(0.04 * 569) and counts["backdoor_trigger"] == round(0.03 * 569)
    flip = truth["kind"] == "label_flip"
    assert (poisoned.loc[flip, "diagnosis"] != clean.loc[flip, "diagnosis"]).all()
    trig = truth["kind"] == "backdoor_trigger"
    assert (poisoned.loc[trig, "diagnosis"] == "benign").all()
    for col in demo.TRIGGER_COLUMNS:
        assert (poisoned.loc[trig, col] > clean[col].max()).all()
    untouched = truth["kind"] == "none"
    pd.testing.assert_frame_equal(poisoned[untouched], clean[untouched])
    assert clean["diagnosis"].isin(["malignant", "benign"]).all()


def test_caught_vs_planted_counts():
    from poisonguard.demo import caught_vs_planted

    truth = pd.DataFrame(
        {"row": range(6), "poisoned": [True, True, True, False, False, False],
         "kind": ["label_flip", "label_flip", "backdoor_trigger", "none", "none", "none"]}
    )  # fmt: skip
    rows = pd.DataFrame(
        {"row": range(6), "score": [0.9, 0.2, 0.8, 0.7, 0.1, 0.0],
         "flagged": [True, False, True, True, False, False]}
    )  # fmt: skip
    report = caught_vs_planted(rows, truth)
    by_kind = {k.kind: (k.planted, k.flagged) for k in report.kinds}
    assert by_kind == {"label flip": (2, 1), "backdoor trigger": (1, 1)}
    assert report.flagged == 3 and report.flagged_poisoned == 2
    assert report.precision == pytest.approx(2 / 3)
    assert report.auroc == pytest.approx(8 / 9)


# ------------------------------------------------------------------------------------------------ progress


def test_rich_progress_shows_tasks_and_quiet_shows_nothing():
    buf = io.StringIO()
    progress = RichProgress(console=Console(file=buf, width=100))
    with progress:
        with progress.task("reading", total=10) as advance:
            for _ in range(10):
                advance()
        with progress.task("thinking") as advance:  # no total: a spinner
            advance(3)
    text = buf.getvalue()
    assert "reading" in text and "thinking" in text

    quiet_buf = io.StringIO()
    quiet = RichProgress(quiet=True, console=Console(file=quiet_buf))
    with quiet, quiet.task("reading", total=5) as advance:
        advance(5)
    assert quiet_buf.getvalue() == ""


def test_rich_progress_works_without_an_enclosing_block_and_drops_failed_tasks():
    buf = io.StringIO()
    progress = RichProgress(console=Console(file=buf, width=100))
    with progress.task("reading", total=1) as advance:
        advance()
    with pytest.raises(ValueError):
        with progress.task("parsing", total=3) as advance:
            advance()
            raise ValueError("bad")
    with progress.task("again", total=1) as advance:  # a fresh display after the failure
        advance()
    text = buf.getvalue()
    assert "reading" in text and "again" in text
    assert "parsing" not in text


def test_discovered_triggers_are_printed(invoke, clean_frame, tmp_path):
    """Two columns stamped with one combination on a twentieth of the rows, all given one label."""
    frame = clean_frame.copy()
    rows = frame.index[frame["label"] != "churn"][: len(frame) // 20]
    num = [c for c in frame.columns if c != "label" and pd.api.types.is_numeric_dtype(frame[c])][:2]
    assert len(num) == 2
    for c in num:
        frame.loc[rows, c] = float(frame[c].max()) * 10 + 7
    frame.loc[rows, "label"] = "churn"
    path = tmp_path / "triggered.csv"
    frame.to_csv(path, index=False)
    res = invoke("scan", path, "--label", "label")
    assert res.exit_code == 1, res.output
    assert "Backdoor triggers found (1):" in res.stdout
    assert all(c in res.stdout for c in num) and "-> class 'churn'" in res.stdout
