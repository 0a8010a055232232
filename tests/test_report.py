"""HTML reports: built from a scan, a saved scan and a red-team run, and checked in a real headless Chromium."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import poisonguard as pg
from poisonguard.report import saved_html, scan_html

SCRIPT = "<script>window.__pwned = 1</script>"
IMG = "<img src=x onerror='window.__pwned = 2'>"


@pytest.fixture(scope="module")
def hostile_scan(tmp_path_factory: pytest.TempPathFactory, poisoned_frame: pd.DataFrame):
    """A poisoned table whose values and a source name are HTML that would run if the report did not escape it."""
    frame = poisoned_frame.copy()
    frame["vendor"] = np.where(np.arange(len(frame)) % 2 == 0, "acme", SCRIPT)
    frame.loc[len(frame) - 1, "region"] = IMG  # a flood row, so it is flagged and shown
    result = pg.scan(frame, label="label", source="vendor", seed=0)
    out = tmp_path_factory.mktemp("saved")
    result.save(out)
    return result, out


def test_scan_report_in_browser(browser, hostile_scan, tmp_path: Path) -> None:
    result, _ = hostile_scan
    page_file = tmp_path / "scan.html"
    page_file.write_text(scan_html(result), encoding="utf-8")
    page, report = browser.open(page_file)
    assert report.problems == []
    page.wait_for_selector("body[data-ready='1']")
    assert page.text_content("#verdict").strip() == result.verdict
    for section in ("#summary", "#scores svg", "#groups svg", "#triggers", "#flagged-table", "#detectors", "#settings"):
        assert page.locator(section).count() >= 1, section
    n_flagged = int(result.rows["flagged"].sum())
    assert n_flagged > 0
    assert page.locator("#flagged-table tbody tr").count() == n_flagged
    # the hostile cells are shown as text and never run
    assert page.evaluate("window.__pwned === undefined")
    assert SCRIPT in page.text_content("#groups")
    # search: a filter narrows the table and the counter says so
    page.fill("input.table-search", "zzz-no-such-value")
    assert page.locator("#flagged-table tbody tr:visible").count() == 0
    assert page.text_content("#flagged-table-count").startswith("0 of")
    page.fill("input.table-search", "")
    # sort: clicking the score header twice gives descending then ascending scores
    header = page.locator("#flagged-table th", has_text="score")
    header.click()
    header.click()
    scores = [float(s) for s in page.locator("#flagged-table tbody tr td:nth-child(2)").all_text_contents()]
    assert scores == sorted(scores, reverse=True)
    header.click()
    scores = [float(s) for s in page.locator("#flagged-table tbody tr td:nth-child(2)").all_text_contents()]
    assert scores == sorted(scores)
    shot = tmp_path / "scan.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 20_000
    page.close()


def test_saved_scan_gives_the_same_report(hostile_scan) -> None:
    result, out = hostile_scan
    strip = re.compile(r"generated [0-9: -]+UTC")
    a = strip.sub("", scan_html(result))
    b = strip.sub("", saved_html(out))
    # same verdict, sections and flagged rows; float formatting of the CSV round trip may differ in the last digit
    for html_text in (a, b):
        assert f">{result.verdict}</span>" in html_text
        assert html_text.count("<tr>") >= int(result.rows["flagged"].sum())
    assert a.count("<section") == b.count("<section")


def test_report_is_self_contained(hostile_scan) -> None:
    result, _ = hostile_scan
    text = scan_html(result)
    assert not re.search(r"""(src|href)=['"]?(https?:)?//""", text)
    assert "default-src 'none'" in text


def test_redteam_report_in_browser(browser, tmp_path: Path) -> None:
    runs = [
        {
            "attack": a,
            "rate": r,
            "seed": 0,
            "accuracy_change": -r / k,
            "asr": (0.9 if a == "backdoor" else None),
            "detection_auroc": 0.9,
            "flag_recall": 0.8,
            "flag_precision": 0.7,
            "verdict": "poisoned",
            "sanitized_accuracy": 0.9,
            "sanitized_asr": (0.05 if a == "backdoor" else None),
            "damage": r / k,
        }
        for a, k in (("label_flip", 2), ("backdoor", 4))
        for r in (0.01, 0.05, 0.1)
    ]
    doc = {
        "settings": {"data": "x.csv", "rates": [0.01, 0.05, 0.1], "damage_threshold": 0.02},
        "baseline": {"accuracy": 0.91, "f1_macro": 0.9},
        "runs": runs,
        "budget": [
            {"attack": "label_flip", "budget": 0.05, "max_damage": 0.05},
            {"attack": "backdoor", "budget": None, "max_damage": 0.025},
        ],
        "skipped": {"text_trigger": "attack 'text_trigger' does not apply: no text column"},
    }
    saved = tmp_path / "redteam.json"
    saved.write_text(json.dumps(doc))
    page_file = tmp_path / "redteam.html"
    page_file.write_text(saved_html(saved), encoding="utf-8")
    page, report = browser.open(page_file)
    assert report.problems == []
    for section in ("#summary", "#damage svg", "#detection svg", "#budget-table", "#runs-table"):
        assert page.locator(section).count() >= 1, section
    assert page.locator("#runs-table tbody tr").count() == len(runs)
    assert "above every rate tried" in page.text_content("#budget-table")
    assert "text_trigger" in page.text_content("#summary")
    page.screenshot(path=str(tmp_path / "redteam.png"), full_page=True)
    page.close()


def test_cli_writes_reports(invoke, poisoned_csv: Path, tmp_path: Path) -> None:
    html_file = tmp_path / "r.html"
    res = invoke(
        "scan",
        poisoned_csv,
        "--label",
        "label",
        "--out",
        tmp_path / "out",
        "--html",
        html_file,
        "-q",
        "--fail-on",
        "never",
    )
    assert res.exit_code == 0, res.output
    assert html_file.read_text().startswith("<!DOCTYPE html>")
    res = invoke("report", tmp_path / "out")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "out" / "report.html").is_file()
    rt = tmp_path / "rt.html"
    res = invoke(
        "redteam",
        poisoned_csv,
        "--label",
        "label",
        "--attacks",
        "label_flip",
        "--rates",
        "0.1",
        "--html",
        rt,
        "-q",
        "--json",
        tmp_path / "rt.json",
    )
    assert res.exit_code == 0, res.output
    assert "label_flip" in rt.read_text()
    res = invoke("report", tmp_path / "rt.json", "--out", tmp_path / "rt2.html")
    assert res.exit_code == 0 and (tmp_path / "rt2.html").is_file()


def test_report_of_something_else_is_a_clear_error(invoke, tmp_path: Path, poisoned_csv: Path) -> None:
    res = invoke("report", tmp_path)
    assert res.exit_code == 2
    assert "holds no saved result" in res.output
    res = invoke("report", poisoned_csv, "--out", tmp_path / "x.html")
    assert res.exit_code == 2
    assert "not valid JSON" in res.output
    res = invoke("scan", poisoned_csv, "--label", "label", "--html", poisoned_csv, "-q")
    assert res.exit_code == 2
    assert "would overwrite the input" in res.output


def test_evaluation_report_in_browser(browser, tmp_path: Path) -> None:
    """A model worse than its baseline in one region: the page shows the regression, slices and calibration."""
    from test_evaluate import planted

    df, base_p, base_right = planted(3000, 1, 0.85)
    rng = np.random.default_rng(5)
    seg = (df["region"] == "south").to_numpy()
    spoil = seg & base_right & (rng.random(len(df)) < 0.3)
    new_p = np.where(spoil[:, None], base_p[:, ::-1], base_p)
    result = pg.evaluate(new_p, df, label="label", baseline=base_p, n_boot=100)
    saved = tmp_path / "evaluation.json"
    result.to_json(saved)
    page_file = tmp_path / "evaluation.html"
    page_file.write_text(saved_html(saved), encoding="utf-8")
    page, report = browser.open(page_file)
    assert report.problems == []
    assert page.text_content("#verdict").strip() == "fail"
    assert "region = 'south'" in page.text_content("#slice-regressions-table")
    assert page.locator("#calibration svg circle").count() >= 3
    assert page.locator("#metrics-table tbody tr").count() == len(result.metrics)
    page.screenshot(path=str(tmp_path / "evaluation.png"), full_page=True)
    page.close()


def test_monitor_drift_report_in_browser(browser, invoke, tmp_path: Path) -> None:
    from monitor_data import draw

    draw(3000, 0).to_csv(tmp_path / "ref.csv", index=False)
    draw(2000, 2, shift=1.0).to_csv(tmp_path / "moved.csv", index=False)
    page_file = tmp_path / "drift.html"
    res = invoke(
        "monitor",
        tmp_path / "ref.csv",
        tmp_path / "moved.csv",
        "--label",
        "label",
        "--json",
        tmp_path / "d.json",
        "--html",
        page_file,
    )
    assert res.exit_code == 1, res.output
    page, report = browser.open(page_file)
    assert report.problems == []
    assert "feature_drift" in page.text_content("#alerts")
    rows = page.locator("#features-table tbody tr")
    assert rows.count() == len(json.loads((tmp_path / "d.json").read_text())["drift"]["features"])
    names = page.locator("#features-table tbody tr td:nth-child(1)").all_text_contents()
    drifted = page.locator("#features-table tbody tr td:nth-child(7)").all_text_contents()
    assert dict(zip(names, drifted, strict=True))["a"] == "yes"  # the shifted feature
    assert saved_html(tmp_path / "d.json").count("<section") == page.locator("section").count()
    page.close()
