"""Canaries: what the scan could have seen on *this* data.

A few seeded poison rows of each family are planted in a copy of the data, the copy is scanned with the same
settings, and the share of canaries flagged is reported. "Clean" then means "nothing found, and this is how much
of each kind of poison we would have found here". The user's data is never modified.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .attacks import get_attack
from .context import Progress
from .io import Dataset, load_dataset

if TYPE_CHECKING:
    from .result import ScanResult

FAMILIES: tuple[str, ...] = ("label_flip", "out_of_distribution", "duplicate_flood", "backdoor")


def canary_count(n: int) -> int:
    return int(np.clip(round(0.002 * n), 5, 50))


def plant(ds: Dataset, *, seed: int = 0, families: Sequence[str] = FAMILIES) -> tuple[Dataset, np.ndarray]:
    """Return a copy with canaries and, per row, the family planted there ('' for original rows)."""
    k = canary_count(ds.n_rows)
    frame = ds.frame
    truth = np.full(ds.n_rows, "", dtype=object)
    exclude = [c for c, why in ds.ignored.items() if why not in ("label",)]
    keep_types = dict(ds.columns)
    for i, family in enumerate(families):
        cur = load_dataset(frame, label=ds.label, exclude=exclude, types=keep_types, name=ds.name)
        if family == "backdoor" and not any(v == "numeric" for v in cur.columns.values()):
            continue
        out = get_attack(family).apply(cur, rate=k / cur.n_rows, seed=seed + 1000 + i)
        frame = out.frame
        truth = np.concatenate([truth, np.full(len(frame) - len(truth), "", dtype=object)])
        truth[out.mask & (truth == "")] = family
    planted = load_dataset(frame, label=ds.label, exclude=exclude, types=keep_types, name=ds.name)
    return planted, truth


def canary_check(
    ds: Dataset,
    result: ScanResult,
    *,
    seed: int,
    fpr: float,
    detectors: Sequence[str] | Mapping[str, dict[str, Any]] | None,
    progress: Progress,
) -> dict[str, Any]:
    from .scanner import scan_dataset

    with progress.task("planting canaries"):
        planted, truth = plant(ds, seed=seed)
    rescan = scan_dataset(planted, seed=seed, fpr=fpr, detectors=detectors, progress=progress)
    flagged = rescan.rows["flagged"].to_numpy()
    families: dict[str, dict[str, Any]] = {}
    for family in FAMILIES:
        sel = truth == family
        if sel.any():
            families[family] = {
                "planted": int(sel.sum()),
                "caught": int(flagged[sel].sum()),
                "recall": round(float(flagged[sel].mean()), 4),
            }
    canary = truth != ""
    original = ~canary
    return {
        "families": families,
        "planted": int(canary.sum()),
        "caught": int(flagged[canary].sum()),
        "recall": round(float(flagged[canary].mean()), 4) if canary.any() else None,
        "flagged_fraction_of_original_rows": round(float(flagged[original].mean()), 5),
        "meaning": "share of seeded poison rows of each family that the same scan flags on a copy of this data",
    }
