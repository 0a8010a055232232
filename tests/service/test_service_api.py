"""The service through FastAPI's TestClient, on SQLite and on a real PostgreSQL: auth, validation, idempotent
ingest, reports, alerts, labels and metrics."""

from __future__ import annotations

import threading
import uuid

import numpy as np
import pytest
from fastapi.testclient import TestClient

from monitor_data import draw
from poisonguard.monitor import Profile
from poisonguard.monitor.service import Storage, create_app
from poisonguard.triggers import Trigger

TOKEN = "test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
TRIGGER = Trigger(
    conditions={"c": 8.0, "region": "west"}, target="yes", support=9, carriers=9, expected=0.1, pvalue=1e-9
)


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'monitor.db'}"
    from services import fresh_database

    pg = request.getfixturevalue("postgres_url")
    return fresh_database(pg, f"svc_{uuid.uuid4().hex[:10]}")


@pytest.fixture(scope="module")
def reference():
    ref = draw(3000, seed=0)
    return Profile.from_frame(ref, label="label", predictions=ref["label"], triggers=[TRIGGER.to_dict()]).to_dict()


@pytest.fixture
def client(db_url, reference):
    app = create_app(db_url, token=TOKEN)
    with TestClient(app) as c:
        r = c.post("/v1/models/churn/reference", json=reference, headers=AUTH)
        assert r.status_code == 201, r.text
        yield c


def batch(batch_id: str, n: int = 200, seed: int = 1, **kw) -> dict:
    frame = draw(n, seed=seed, **kw)
    return {
        "batch_id": batch_id,
        "rows": frame.drop(columns="label").to_dict("records"),
        "predictions": frame["label"].tolist(),
        "_labels": frame["label"].tolist(),
    }


def post(c: TestClient, body: dict, headers=AUTH, model: str = "churn"):
    body = {k: v for k, v in body.items() if k != "_labels"}
    return c.post(f"/v1/models/{model}/batches", json=body, headers=headers)


def test_auth(client: TestClient) -> None:
    r = post(client, batch("b1"), headers={})
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert "Authorization: Bearer" in r.json()["detail"]
    assert post(client, batch("b1"), headers={"Authorization": "Bearer nope"}).status_code == 403
    assert client.post("/v1/models/x/reference", json={}, headers={}).status_code == 401
    assert client.get("/v1/models/churn/reports").status_code == 200  # reads open by default
    assert post(client, batch("b1")).status_code == 201


def test_protected_reads(db_url, reference) -> None:
    with TestClient(create_app(db_url, token=TOKEN, protect_reads=True)) as c:
        assert c.get("/v1/models").status_code == 401
        assert c.get("/metrics").status_code == 401
        assert c.get("/v1/models", headers=AUTH).status_code == 200
        assert c.get("/healthz").status_code == 200


def test_validation_errors_are_clear(client: TestClient) -> None:
    def detail(r, status):
        assert r.status_code == status, r.text
        return r.json()["detail"]

    assert "POST /v1/models/nope/reference first" in detail(post(client, batch("b1"), model="nope"), 404)
    assert "'batch_id'" in detail(post(client, {**batch("x"), "batch_id": "bad id!"}), 422)
    b = batch("b2")
    for row in b["rows"]:
        del row["b"]
    assert "missing ('b')" in detail(post(client, b), 422)
    b = batch("b3")
    b["rows"][4]["a"] = "four"
    msg = detail(post(client, b), 422)
    assert "column 'a' is numeric" in msg and "row 4" in msg
    assert "non-empty list" in detail(post(client, {"batch_id": "b4", "rows": []}), 422)
    assert "not an object" in detail(post(client, {"batch_id": "b4", "rows": [1, 2]}), 422)
    assert "nested value" in detail(post(client, {"batch_id": "b4", "rows": [{"a": [1]}]}), 422)
    assert "one value per row" in detail(post(client, {**batch("b5"), "predictions": ["yes"]}), 422)
    assert "at most 10000" in detail(post(client, batch("big", n=10_001)), 413)
    r = client.post(
        "/v1/models/churn/batches", content=b"{not json", headers={**AUTH, "Content-Type": "application/json"}
    )
    assert "not valid JSON" in detail(r, 400)
    r = client.post("/v1/models/churn/batches", content=b"x" * (17 * 2**20), headers=AUTH)
    assert "bytes" in detail(r, 413)
    assert "model name" in detail(client.post("/v1/models/bad name!/reference", json={}, headers=AUTH), 422)
    assert "saved profile" in detail(client.post("/v1/models/m2/reference", json={"x": 1}, headers=AUTH), 422)
    bad = {"rows": draw(50, seed=1).to_dict("records"), "triggers": [{"conditions": {}, "target": "yes"}]}
    assert "trigger 0" in detail(client.post("/v1/models/m2/reference", json=bad, headers=AUTH), 422)
    # nothing of the above was stored
    assert client.get("/v1/models/churn").json()["batches"] == 0


def test_ingest_is_idempotent_by_batch_id(client: TestClient) -> None:
    b = batch("b-1")
    first = post(client, b)
    assert first.status_code == 201 and first.json()["duplicate"] is False
    again = post(client, b)
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert again.json()["id"] == first.json()["id"]
    assert post(client, batch("b-2", seed=2)).status_code == 201
    info = client.get("/v1/models/churn").json()
    assert info["batches"] == 2 and info["rows"] == 400
    assert [r["batch_id"] for r in client.get("/v1/models/churn/reports").json()["reports"]] == ["b-1", "b-2"]
    metrics = client.get("/metrics").text
    assert 'poisonguard_batches_total{model="churn"} 2' in metrics
    assert 'poisonguard_duplicate_batches_total{model="churn"} 1' in metrics
    assert "poisonguard_ingest_seconds_count 2" in metrics


def test_racing_retries_store_one_batch(db_url) -> None:
    storage = Storage(db_url)
    results: list[bool] = []

    def go() -> None:
        s = storage.add_batch(
            "m", "same", n_rows=1, predictions=None, summary={}, report={}, alert_list=[], trigger_hits=0
        )
        results.append(s.created)

    threads = [threading.Thread(target=go) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 7 + [True]
    assert storage.count_batches("m") == (1, 1)
    storage.close()


def test_reports_alerts_and_labels(client: TestClient) -> None:
    assert post(client, batch("clean", n=1000, seed=3)).json()["n_alerts"] == 0
    shifted = post(client, batch("shifted", n=1000, seed=4, shift=1.0)).json()
    assert shifted["n_alerts"] >= 1
    assert any(a["kind"] == "feature_drift" and a["subject"] == "a" for a in shifted["alerts"])
    stamped = batch("stamped", n=1000, seed=5)
    for i in range(0, 1000, 100):  # 1% of the rows carry the trigger
        stamped["rows"][i].update(c=8.0, region="west")
    res = post(client, stamped).json()
    assert res["trigger_hits"] == 10 and any(a["kind"] == "trigger" for a in res["alerts"])

    reports = client.get("/v1/models/churn/reports").json()["reports"]
    assert [r["batch_id"] for r in reports] == ["clean", "shifted", "stamped"]
    assert reports[1]["features"]["a"]["drifted"] and not reports[0]["features"]["a"]["drifted"]
    assert [r["trigger_hits"] for r in reports] == [0, 0, 10]
    assert client.get("/v1/models/churn/reports?after=" + str(reports[1]["id"])).json()["reports"][0]["batch_id"] == (
        "stamped"
    )
    alerts = client.get("/v1/models/churn/alerts").json()["alerts"]
    assert {a["kind"] for a in alerts} >= {"feature_drift", "trigger"}
    assert all(
        a["severity"] == "critical" for a in client.get("/v1/models/churn/alerts?severity=critical").json()["alerts"]
    )
    full = client.get("/v1/models/churn/batches/stamped").json()
    assert full["report"]["watch"]["triggers"][0]["hits"] == 10

    # delayed labels: the clean batch's true labels, then labels that contradict a third of the predictions
    clean_labels = batch("clean", n=1000, seed=3)["_labels"]
    r = client.post("/v1/models/churn/labels", json={"batch_id": "clean", "labels": clean_labels}, headers=AUTH)
    assert r.status_code == 201 and r.json()["accuracy"] == 1.0
    assert client.post(
        "/v1/models/churn/labels", json={"batch_id": "clean", "labels": clean_labels}, headers=AUTH
    ).json()["duplicate"]
    wrong = np.array(batch("shifted", n=1000, seed=4, shift=1.0)["_labels"], dtype=object)
    wrong[::3] = np.where(wrong[::3] == "yes", "no", "yes")
    r = client.post("/v1/models/churn/labels", json={"batch_id": "shifted", "labels": wrong.tolist()}, headers=AUTH)
    assert r.status_code == 201 and any(a["kind"] == "performance" for a in r.json()["alerts"])
    r = client.post("/v1/models/churn/labels", json={"batch_id": "nope", "labels": []}, headers=AUTH)
    assert r.status_code == 404
    r = client.post("/v1/models/churn/labels", json={"batch_id": "stamped", "labels": ["yes"]}, headers=AUTH)
    assert r.status_code == 422 and "1000 rows" in r.json()["detail"]
    reports = client.get("/v1/models/churn/reports").json()["reports"]
    assert reports[0]["accuracy"] == 1.0 and reports[1]["accuracy"] < 0.8


def test_reference_from_rows_health_and_models(client: TestClient) -> None:
    frame = draw(500, seed=9)
    body = {"rows": frame.to_dict("records"), "label": "label", "triggers": [TRIGGER.to_dict()]}
    r = client.post("/v1/models/fraud/reference", json=body, headers=AUTH)
    assert r.status_code == 201 and r.json()["columns"] == {
        "a": "numeric",
        "b": "numeric",
        "c": "numeric",
        "region": "categorical",
    }
    assert client.post("/v1/models/fraud/reference", json=body, headers=AUTH).status_code == 200  # replaced
    assert [m["name"] for m in client.get("/v1/models").json()["models"]] == ["churn", "fraud"]
    health = client.get("/healthz").json()
    assert health["status"] == "ok" and health["database"] in ("sqlite", "postgresql")
    assert client.get("/").headers["content-type"].startswith("text/html")


def test_counterfactual_check_with_the_model(tmp_path) -> None:
    """With the model loaded (serve --model NAME=PATH), rows whose far-out value decides the prediction are hits."""
    import pandas as pd

    from monitor_data import fit_model

    clean = draw(3000, seed=0)
    poisoned = clean.copy()
    rows = np.flatnonzero(poisoned["label"] == "no")[:60]
    poisoned.loc[rows, ["c", "label"]] = [8.0, "yes"]  # a backdoor: c = 8 makes 'yes'
    model = fit_model(poisoned)
    profile = Profile.from_frame(clean, label="label", predictions=model.predict(clean.drop(columns="label")))
    with TestClient(create_app(f"sqlite:///{tmp_path / 'm.db'}", token=TOKEN, models={"churn": model})) as c:
        assert c.post("/v1/models/churn/reference", json=profile.to_dict(), headers=AUTH).status_code == 201
        quiet = draw(1000, seed=11).drop(columns="label")
        r = post(c, {"batch_id": "quiet", "rows": quiet.to_dict("records")})
        assert r.status_code == 201 and r.json()["alerts"] == []
        stamped = draw(1000, seed=12).drop(columns="label")
        stamped.loc[stamped.index[:20], "c"] = 8.0
        preds = model.predict(stamped)
        r = post(
            c, {"batch_id": "stamped", "rows": stamped.to_dict("records"), "predictions": pd.Series(preds).tolist()}
        )
        assert r.status_code == 201
        assert [a["kind"] for a in r.json()["alerts"]] == ["counterfactual"]
        report = c.get("/v1/models/churn/batches/stamped").json()["report"]
        assert report["watch"]["counterfactual"]["flips"] >= 5
        assert c.get("/v1/models/churn/reports").json()["reports"][1]["counterfactual_flips"] >= 5


def test_a_trigger_in_02_percent_of_traffic_alerts_over_a_window(client: TestClient) -> None:
    """Two stamped rows in a batch of 1,000 are too few for one batch; over a few batches they are plain."""
    kinds = []
    for i in range(6):
        b = batch(f"drip-{i}", n=1000, seed=20 + i)
        for r in b["rows"][:2]:
            r.update(c=8.0, region="west")
        res = post(client, b).json()
        assert res["trigger_hits"] == 2
        kinds.append([a["kind"] for a in res["alerts"]])
    assert kinds[0] == []  # one batch alone: 2 hits, below the minimum of 3
    assert all(k == ["trigger"] for k in kinds[1:])
    alerts = client.get("/v1/models/churn/alerts").json()["alerts"]
    assert "of the last 2000 rows" in alerts[-1]["message"]
    # clean traffic after the attack: no window alert without hits of its own
    assert post(client, batch("after", n=1000, seed=40)).json()["alerts"] == []
