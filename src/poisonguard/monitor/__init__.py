"""Monitoring after deployment: drift against a reference profile, trigger watch and retraining triggers.

    profile = Profile.from_frame(train, label="y", predictions=model.predict(train[features]))
    report = compare(profile, batch, predictions=batch_predictions)      # drift, with effect-size gates
    hits = TriggerWatch(profile, model=model).check(batch)                # trigger carriers, counterfactual flips

The service (``poisonguard serve``) lives in ``poisonguard.monitor.service`` and needs the ``serve`` extra.
"""

from .drift import Alert, DriftReport, DriftThresholds, compare
from .profile import ColumnProfile, Profile
from .retrain import GateResult, JsonlEventLog, RetrainEvent, RetrainPolicy, RetrainTrigger, command_gate
from .watch import TriggerWatch, WatchReport

__all__ = [
    "Alert",
    "ColumnProfile",
    "DriftReport",
    "DriftThresholds",
    "GateResult",
    "JsonlEventLog",
    "Profile",
    "RetrainEvent",
    "RetrainPolicy",
    "RetrainTrigger",
    "TriggerWatch",
    "WatchReport",
    "command_gate",
    "compare",
]
