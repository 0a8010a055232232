"""The scan result: per-row scores and reasons, the verdict, and breakdowns by class and source."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .io import Dataset
from .triggers import Trigger


@dataclass(frozen=True)
class ScanResult:
    """What ``poisonguard.scan`` returns.

    ``rows`` is aligned with the input rows (position ``row``): ``score`` in [0, 1], higher is more suspicious;
    ``flagged``; ``review`` (not flagged, but named by a class-level finding short of its flag level, such as a
    reported representation split: they rank right after the flagged rows); ``reasons``; and ``<detector>_score``
    per detector. ``summary`` is JSON-ready.
    """

    rows: pd.DataFrame
    summary: dict[str, Any]
    by_class: pd.DataFrame
    by_source: pd.DataFrame | None
    info: dict[str, Any] = field(default_factory=dict)
    data: Dataset | None = field(default=None, repr=False)
    # backdoor triggers the scan discovered (``poisonguard.Trigger``), most significant first
    triggers: list[Trigger] = field(default_factory=list, repr=False)

    @property
    def verdict(self) -> str:
        return str(self.summary["verdict"])

    @property
    def flagged(self) -> pd.DataFrame:
        """Flagged rows of ``rows``, most suspicious first."""
        return self.rows[self.rows["flagged"]].sort_values("score", ascending=False)

    @property
    def review(self) -> pd.DataFrame:
        """Rows named for review (not flagged), most suspicious first."""
        if "review" not in self.rows:
            return self.rows.iloc[:0]
        return self.rows[self.rows["review"]].sort_values("score", ascending=False)

    def clean_data(self, *, review: bool = False) -> pd.DataFrame:
        """The input without flagged rows (a new frame; the input is untouched). ``review=True`` also leaves out
        the rows named for review, as the scan's evidence suggests when it reports a class (retrain without them
        and test the model)."""
        if self.data is None:
            raise ValueError("this result carries no input data")
        drop = self.rows["flagged"].to_numpy()
        if review and "review" in self.rows:
            drop = drop | self.rows["review"].to_numpy()
        return self.data.frame.loc[~drop].copy()

    def flagged_data(self) -> pd.DataFrame:
        """The flagged input rows with their score and reasons, most suspicious first."""
        return self._input_rows(self.flagged)

    def review_data(self) -> pd.DataFrame:
        """The input rows named for review with their score and reasons, most suspicious first."""
        return self._input_rows(self.review)

    def _input_rows(self, rows: pd.DataFrame) -> pd.DataFrame:
        if self.data is None:
            raise ValueError("this result carries no input data")
        out = self.data.frame.iloc[rows["row"].to_numpy()].copy()
        out.insert(0, "row", rows["row"].to_numpy())
        out["poisonguard_score"] = rows["score"].to_numpy()
        out["poisonguard_reasons"] = rows["reasons"].to_numpy()
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.summary,
            "by_class": _records(self.by_class),
            "by_source": _records(self.by_source) if self.by_source is not None else None,
            "info": self.info,
        }

    def to_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, default=_json_default) + "\n")

    def save(self, out_dir: str | Path) -> list[Path]:
        """Write rows.csv, flagged.csv and summary.json into ``out_dir`` (which must exist), and review.csv when
        rows were named for review."""
        out = Path(out_dir)
        paths = [out / "rows.csv", out / "flagged.csv", out / "summary.json"]
        self.rows.to_csv(paths[0], index=False)
        self.flagged_data().to_csv(paths[1], index=False)
        self.to_json(paths[2])
        if len(self.review):
            paths.append(out / "review.csv")
            self.review_data().to_csv(paths[-1], index=False)
        elif (out / "review.csv").is_file():  # an earlier result's, in a directory being overwritten: stale now
            (out / "review.csv").unlink()
        return paths


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return json.loads(frame.to_json(orient="records"))


def _json_default(o: Any) -> Any:
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, np.bool_):
        return bool(o)
    return str(o)
