"""Retraining triggers that cannot pull unvetted data into the next model.

A ``RetrainPolicy`` reads a drift report, a trigger-watch report and (once delayed labels arrive) the accuracy,
and says whether a retrain is due and why. Before anything is emitted, the new training data goes through a gate
(a callable that returns a ``GateResult``; ``command_gate`` runs a command such as
``poisonguard scan NEW --label y --fail-on suspicious`` and reads its exit code). The event is delivered
(webhook POST or shell command) only when the gate passes; either way the decision and the gate result are
recorded, so a blocked retrain leaves a trace. The gate is any callable, so the CI gate can slot in.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .drift import DriftReport
from .watch import WatchReport


@dataclass(frozen=True)
class GateResult:
    """What the gate said about the new training data: ``passed`` decides; the rest is recorded."""

    passed: bool
    verdict: str
    exit_code: int | None = None
    command: list[str] | None = None
    detail: str = ""
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


Gate = Callable[[str], GateResult]
_VERDICTS = {0: "clean", 1: "suspicious or poisoned"}


def command_gate(command: Sequence[str] | str, *, timeout: float = 3600.0) -> Gate:
    """A gate that runs ``command`` with ``{data}`` replaced by the new data's path; exit 0 passes.

    Example: ``command_gate("poisonguard scan {data} --label y --fail-on suspicious --out gate-out --force")``.
    Exit 1 means the scan found poisoning, 2 a usage or input error; both block the retrain.
    """
    argv = shlex.split(command) if isinstance(command, str) else list(command)
    if not argv:
        raise ConfigError("the gate command is empty; pass a command such as 'poisonguard scan {data} ...'.")

    def run(data: str) -> GateResult:
        cmd = [a.replace("{data}", str(data)) for a in argv]
        start = time.perf_counter()
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return GateResult(
                False, "gate failed", None, cmd, f"{type(exc).__name__}: {exc}", time.perf_counter() - start
            )
        tail = (proc.stdout + proc.stderr)[-2000:]
        verdict = _VERDICTS.get(proc.returncode, "error")
        return GateResult(proc.returncode == 0, verdict, proc.returncode, cmd, tail, time.perf_counter() - start)

    return run


@dataclass(frozen=True)
class RetrainPolicy:
    """When a retrain is due: enough drifted features, multivariate drift, an accuracy drop, or trigger hits."""

    min_drifted_features: int = 1
    multivariate: bool = True
    label_drift: bool = True
    prediction_drift: bool = True
    performance: bool = True
    trigger_hits: bool = True
    critical_only: bool = False

    def reasons(self, drift: DriftReport | None = None, watch: WatchReport | None = None) -> list[str]:
        """Why a retrain is due (empty: it is not)."""
        alerts = [*(drift.alerts if drift else []), *(watch.alerts if watch else [])]
        if self.critical_only:
            alerts = [a for a in alerts if a.severity == "critical"]
        out = []
        feats = [a for a in alerts if a.kind == "feature_drift"]
        if feats and len(feats) >= self.min_drifted_features:
            out.append(f"{len(feats)} feature(s) drifted: {', '.join(a.subject for a in feats[:5])}")
        wanted = {
            "multivariate_drift": self.multivariate,
            "label_drift": self.label_drift,
            "prediction_drift": self.prediction_drift,
            "performance": self.performance,
            "trigger": self.trigger_hits,
            "counterfactual": self.trigger_hits,
        }
        out += [a.message for a in alerts if wanted.get(a.kind)]
        return out


@dataclass
class RetrainEvent:
    """A retrain decision with the gate result of the data it would train on; ``status`` is ``emitted`` or
    ``blocked`` (gate failed), and ``delivery`` says what the webhook or command answered."""

    id: str
    model: str
    created_at: float
    reasons: list[str]
    data: str
    gate: dict[str, Any]
    status: str
    delivery: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class JsonlEventLog:
    """Records events, one JSON object a line; appends survive crashes (flushed and fsynced)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def record(self, event: RetrainEvent) -> None:
        import os

        with self.path.open("a") as fh:
            fh.write(json.dumps(event.to_dict(), default=str) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def events(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]


def post_webhook(url: str, payload: dict[str, Any], *, timeout: float = 10.0) -> dict[str, Any]:
    """POST ``payload`` as JSON; returns the status or the error (never raises: delivery is recorded)."""
    req = urllib.request.Request(
        url, data=json.dumps(payload, default=str).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return {"webhook": url, "status": resp.status}
    except (urllib.error.URLError, OSError) as exc:
        return {"webhook": url, "error": f"{type(exc).__name__}: {exc}"}


def run_command(command: Sequence[str] | str, payload: dict[str, Any], *, timeout: float = 600.0) -> dict[str, Any]:
    """Run ``command`` with the event as JSON on stdin (and ``POISONGUARD_EVENT`` naming its id)."""
    import os

    argv = shlex.split(command) if isinstance(command, str) else list(command)
    env = {**os.environ, "POISONGUARD_EVENT": str(payload.get("id", ""))}
    try:
        proc = subprocess.run(
            argv, input=json.dumps(payload, default=str), capture_output=True, text=True, timeout=timeout, env=env
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"command": argv, "error": f"{type(exc).__name__}: {exc}"}
    return {"command": argv, "exit_code": proc.returncode, "output": (proc.stdout + proc.stderr)[-2000:]}


class RetrainTrigger:
    """Policy + gate + delivery + record. ``evaluate`` returns the recorded event, or None when no retrain is due.

    ``gate`` vets the new training data (a ``Gate`` callable; ``command_gate`` builds one); ``webhook`` and
    ``command`` deliver an event that passed; ``log`` records every event (``JsonlEventLog`` or any object with
    ``record(event)``).
    """

    def __init__(
        self,
        *,
        gate: Gate,
        policy: RetrainPolicy | None = None,
        webhook: str | None = None,
        command: Sequence[str] | str | None = None,
        log: Any = None,
    ) -> None:
        if not callable(gate):
            raise ConfigError("a retrain trigger needs a gate: a callable that vets the new training data.")
        self.gate, self.policy = gate, policy or RetrainPolicy()
        self.webhook, self.command, self.log = webhook, command, log

    def evaluate(
        self, model: str, new_data: str | Path, *, drift: DriftReport | None = None, watch: WatchReport | None = None
    ) -> RetrainEvent | None:
        reasons = self.policy.reasons(drift, watch)
        if not reasons:
            return None
        gate = self.gate(str(new_data))
        event = RetrainEvent(
            id=uuid.uuid4().hex,
            model=model,
            created_at=time.time(),
            reasons=reasons,
            data=str(new_data),
            gate=gate.to_dict(),
            status="emitted" if gate.passed else "blocked",
        )
        if gate.passed:
            payload = event.to_dict()
            if self.webhook:
                event.delivery.update(post_webhook(self.webhook, payload))
            if self.command:
                event.delivery.update(run_command(self.command, payload))
        if self.log is not None:
            self.log.record(event)
        return event


__all__ = [
    "GateResult",
    "JsonlEventLog",
    "RetrainEvent",
    "RetrainPolicy",
    "RetrainTrigger",
    "command_gate",
    "post_webhook",
    "run_command",
]
