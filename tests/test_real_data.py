"""Detection on real data from ../shared/datasets (skipped where that folder is absent).

The full matrix lives in benchmarks/oracle_check.py; these are the cheapest cases of the issue's acceptance
criteria: random flips on adult come within 0.01 AUROC of the oracle, and unmodified data is not 'poisoned'.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from sklearn.metrics import roc_auc_score

import poisonguard

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from common import oracle_scores, random_flip
from datasets import LOADERS, available

pytestmark = pytest.mark.skipif(not available(), reason="../shared/datasets is not present")


def test_adult_random_flips_come_within_a_hundredth_of_the_oracle() -> None:
    df = LOADERS["adult"]()
    poisoned, mask = random_flip(df, 0.05, seed=0)
    result = poisonguard.scan(poisoned, label="label", seed=0)
    scan_auc = roc_auc_score(mask, result.rows["score"])
    oracle_auc = roc_auc_score(mask, oracle_scores(poisoned, df, mask, seed=0))
    assert oracle_auc - scan_auc <= 0.01, (scan_auc, oracle_auc)
    # the flags are few but right: natural ambiguity is not flagged
    flagged = result.rows["flagged"].to_numpy()
    assert mask[flagged].mean() >= 0.8


@pytest.mark.parametrize("name", ["german_credit", "spambase"])
def test_unmodified_real_data_is_not_called_poisoned(name: str) -> None:
    result = poisonguard.scan(LOADERS[name](), label="label", seed=0)
    assert result.verdict != "poisoned", result.summary["evidence"]
    assert result.summary["flagged_fraction"] <= 2 * 0.01
