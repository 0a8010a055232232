"""Retraining triggers: an event is delivered only when the gate passes the new data; both are recorded."""

from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import ClassVar

import pytest

from monitor_data import draw
from poisonguard.errors import ConfigError
from poisonguard.monitor import GateResult, JsonlEventLog, Profile, RetrainPolicy, RetrainTrigger, command_gate, compare


@pytest.fixture(scope="module")
def drifted():
    profile = Profile.from_frame(draw(3000, seed=0), label="label")
    new = draw(1000, seed=1, shift=1.0)
    return compare(profile, new.drop(columns="label"), multivariate=False)


@pytest.fixture(scope="module")
def quiet():
    profile = Profile.from_frame(draw(3000, seed=0), label="label")
    return compare(profile, draw(1000, seed=2).drop(columns="label"), multivariate=False)


class _Hook(BaseHTTPRequestHandler):
    received: ClassVar[list[dict]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Hook.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def webhook():
    _Hook.received = []
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/retrain", _Hook.received
    server.shutdown()


def test_no_event_without_a_reason(quiet, tmp_path) -> None:
    log = JsonlEventLog(tmp_path / "events.jsonl")
    calls = []
    trigger = RetrainTrigger(gate=lambda d: calls.append(d) or GateResult(True, "clean"), log=log)
    assert trigger.evaluate("m", "new.csv", drift=quiet) is None
    assert calls == [] and log.events() == []


def test_event_delivered_only_when_the_gate_passes(drifted, webhook, tmp_path) -> None:
    url, received = webhook
    log = JsonlEventLog(tmp_path / "events.jsonl")
    passing = RetrainTrigger(gate=lambda d: GateResult(True, "clean", 0), webhook=url, log=log)
    event = passing.evaluate("churn", "new.csv", drift=drifted)
    assert event.status == "emitted" and event.delivery["status"] == 204
    assert "feature(s) drifted: a" in event.reasons[0]
    assert received[0]["gate"]["verdict"] == "clean" and received[0]["model"] == "churn"

    failing = RetrainTrigger(gate=lambda d: GateResult(False, "poisoned", 1), webhook=url, log=log)
    blocked = failing.evaluate("churn", "new.csv", drift=drifted)
    assert blocked.status == "blocked" and blocked.delivery == {}
    assert len(received) == 1  # nothing delivered for the blocked retrain
    recorded = log.events()
    assert [e["status"] for e in recorded] == ["emitted", "blocked"]
    assert recorded[1]["gate"]["passed"] is False and recorded[1]["reasons"]


def test_command_gate_runs_the_command_and_reads_the_exit_code(drifted, tmp_path) -> None:
    data = tmp_path / "new.csv"
    data.write_text("x\n1\n")
    ok = command_gate(
        [sys.executable, "-c", "import sys, os; sys.exit(0 if os.path.exists(sys.argv[1]) else 1)", "{data}"]
    )
    res = ok(str(data))
    assert res.passed and res.exit_code == 0 and res.command[-1] == str(data)
    bad = command_gate([sys.executable, "-c", "import sys; print('poisoned'); sys.exit(1)"])(str(data))
    assert not bad.passed and bad.exit_code == 1 and "poisoned" in bad.detail
    out = tmp_path / "delivered.json"
    cmd = [sys.executable, "-c", f"import sys; open({str(out)!r}, 'w').write(sys.stdin.read())"]
    event = RetrainTrigger(gate=ok, command=cmd).evaluate("m", data, drift=drifted)
    assert event.status == "emitted" and event.delivery["exit_code"] == 0
    assert json.loads(out.read_text())["id"] == event.id


def test_scan_gate_blocks_poisoned_data(drifted, poisoned_csv, clean_csv) -> None:
    """The real gate: poisonguard scan --fail-on suspicious."""
    gate = command_gate([sys.executable, "-m", "poisonguard.cli", "scan", "{data}", "--label", "label", "-q"])
    assert not gate(str(poisoned_csv)).passed
    assert gate(str(clean_csv)).passed


def test_policy_options(drifted) -> None:
    assert RetrainPolicy(min_drifted_features=3).reasons(drifted) == []
    assert RetrainPolicy().reasons(drifted)
    with pytest.raises(ConfigError):
        RetrainTrigger(gate=None)
    with pytest.raises(ConfigError):
        command_gate([])
