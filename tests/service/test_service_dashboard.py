"""The dashboard in headless Chromium against a real server with data: no console errors, charts drawn."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest
from live_server import LiveServer

from monitor_data import draw
from poisonguard.monitor import Profile
from poisonguard.triggers import Trigger

TOKEN = "dash-token"


def _post(url: str, body: dict) -> dict:
    req = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


@pytest.fixture
def server(tmp_path: Path):
    srv = LiveServer(f"sqlite:///{tmp_path / 'dash.db'}", TOKEN, tmp_path / "server.log").start()
    yield srv
    srv.stop()


def test_dashboard_draws_drift_triggers_and_alerts(browser, server: LiveServer, tmp_path: Path) -> None:
    trig = Trigger(
        conditions={"c": 8.0, "region": "west"}, target="yes", support=9, carriers=9, expected=0.1, pvalue=1e-9
    )
    ref = draw(3000, seed=0)
    profile = Profile.from_frame(ref, label="label", predictions=ref["label"], triggers=[trig.to_dict()])
    _post(server.url + "/v1/models/churn/reference", profile.to_dict())
    for i in range(8):
        frame = draw(500, seed=10 + i, shift=0.8 if i >= 5 else 0.0)
        rows = frame.drop(columns="label").to_dict("records")
        if i == 3:
            for r in rows[:6]:
                r.update(c=8.0, region="west")
        _post(
            server.url + "/v1/models/churn/batches",
            {"batch_id": f"batch-{i}", "rows": rows, "predictions": frame["label"].tolist()},
        )
        if i < 4:
            _post(server.url + "/v1/models/churn/labels", {"batch_id": f"batch-{i}", "labels": frame["label"].tolist()})

    page, report = browser.open("about:blank")
    page.context.set_offline(False)  # the session's browser is offline; this page talks to the local server
    try:
        page.goto(server.url + "/", wait_until="load")
        page.wait_for_selector("body[data-ready='1']", timeout=15_000)
        page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
    finally:
        page.context.set_offline(True)
    assert report.problems == []
    assert page.locator("#features svg.chart").count() == 5  # a, b, c, region and the prediction
    assert page.locator("#features [data-feature='a'] circle").count() == 8
    # the shifted batches are drawn as drift alerts (red points) in the chart of 'a', and nowhere in 'b'
    assert page.locator("#features [data-feature='a'] circle[fill='#c62828']").count() == 3
    assert page.locator("#features [data-feature='b'] circle[fill='#c62828']").count() == 0
    assert page.locator("#triggers rect[fill='#c62828']").count() == 1
    assert page.locator("#accuracy svg.chart circle").count() == 4
    table = page.locator("#alert-table")
    assert "trigger" in table.inner_text() and "feature_drift" in table.inner_text()
    assert (tmp_path / "dashboard.png").stat().st_size > 10_000
    page.close()
