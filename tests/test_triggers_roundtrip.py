"""A saved trigger (summary.json) comes back as one that stamps and matches the same rows."""

import pandas as pd
import pytest

from poisonguard import Trigger


def test_trigger_round_trips_through_its_dict() -> None:
    t = Trigger(conditions={"a": 99.0, "b": "x"}, target="bad", support=10, carriers=10, expected=0.5, pvalue=1e-9)
    back = Trigger.from_dict(t.to_dict())
    frame = pd.DataFrame({"a": [99.0, 1.0, 99.0], "b": ["x", "x", "y"]})
    assert back.conditions == t.conditions and back.target == "bad"
    assert back.mask(frame).tolist() == [True, False, False]
    assert back.mask(back.apply(frame)).all()


def test_trigger_from_dict_rejects_missing_conditions() -> None:
    with pytest.raises(ValueError, match="conditions"):
        Trigger.from_dict({"target": "bad"})
