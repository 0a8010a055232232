"""Row fingerprints and the difference between two versions of a table.

A fingerprint is a stable 64-bit hash of a normalised row, so the same record hashes alike whichever file it
came from: columns are taken in name order, numbers are compared as float64 values (``1``, ``1.0`` and
``" 1.00"`` agree), text is stripped of surrounding whitespace, and every kind of missing value is one value.
The hash (pandas' SipHash with its fixed key) does not depend on the process, so fingerprints stored in the
ledger compare with those of a later run.

With an id column the diff pairs rows by id and reports added, removed and changed rows, with the changed
columns and the label changes (the classic poisoning channel). Without one, rows are compared as multisets of
fingerprints: a changed row shows as one removed and one added.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import InputError

_MISSING = np.uint64(0x9E3779B97F4A7C15)


def _column_hashes(s: pd.Series) -> np.ndarray:
    """One uint64 per cell of a normalised column (see the module docstring)."""
    if pd.api.types.is_bool_dtype(s.dtype) or pd.api.types.is_numeric_dtype(s.dtype):
        parsed, text = s, None
    else:
        text = s.astype("string").str.strip()
        parsed = pd.to_numeric(text, errors="coerce")
    num = parsed.astype("float64").to_numpy(na_value=np.nan)
    missing = np.isnan(num)
    h = pd.util.hash_array(np.where(missing, 0.0, num + 0.0))  # + 0.0 folds -0.0 into 0.0
    if pd.api.types.is_integer_dtype(parsed.dtype):
        # integers beyond 2**53 (64-bit ids) are not exact as floats: hash their digits instead
        big = ~missing & (np.abs(num) >= 2.0**53)
        if big.any():
            h[big] = pd.util.hash_array(parsed[big].astype("string").to_numpy(dtype=object))
    if text is not None:
        blank = text.isna() | text.eq("")
        h_text = pd.util.hash_array(text.fillna("").to_numpy(dtype=object))
        h = np.where(missing, h_text, h)
        missing = blank.to_numpy(dtype=bool)
    return np.where(missing, _MISSING, h)


def column_hashes(frame: pd.DataFrame, columns: list[str] | None = None) -> pd.DataFrame:
    """Per-cell hashes of ``columns`` (all, by default), one uint64 column each."""
    cols = list(frame.columns) if columns is None else columns
    return pd.DataFrame({c: _column_hashes(frame[c]) for c in cols}, index=frame.index)


def row_fingerprints(frame: pd.DataFrame, columns: list[str] | None = None) -> np.ndarray:
    """Stable int64 fingerprint of every row over ``columns`` (all, by default), independent of column order."""
    cols = sorted(str(c) for c in (frame.columns if columns is None else columns))
    if not cols:
        return np.zeros(len(frame), dtype=np.int64)
    named = np.column_stack(
        [_column_hashes(frame[c]) ^ pd.util.hash_array(np.array([c], dtype=object))[0] for c in cols]
    )
    combined = pd.util.hash_pandas_object(pd.DataFrame(named), index=False).to_numpy()
    return combined.view(np.int64)


@dataclass(frozen=True)
class Diff:
    """What changed from ``old`` to ``new``; row numbers are positions in each table.

    ``added`` holds row numbers of ``new``, ``removed`` row numbers of ``old``; ``changed`` pairs them (columns
    ``old_row``, ``new_row``, ``id``, ``changed_columns``, ``label_changed``); ``label_changes`` lists the rows
    whose label changed (``id``, ``old_row``, ``new_row``, ``old_label``, ``new_label``).
    """

    added: np.ndarray
    removed: np.ndarray
    changed: pd.DataFrame
    label_changes: pd.DataFrame
    unchanged: int
    id: str | None = None
    label: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def new_rows(self) -> np.ndarray:
        """Rows of ``new`` that a trusted snapshot has not vouched for: added or changed."""
        return np.sort(np.concatenate([self.added, self.changed["new_row"].to_numpy(dtype=np.int64)]))

    def summary(self) -> dict[str, Any]:
        return {
            "added": len(self.added),
            "removed": len(self.removed),
            "changed": len(self.changed),
            "label_changes": len(self.label_changes),
            "unchanged": self.unchanged,
            "id": self.id,
            "label": self.label,
            "notes": list(self.notes),
        }

    def save(self, out_dir: str | Path, old: pd.DataFrame, new: pd.DataFrame) -> list[Path]:
        """Write added.csv, removed.csv, changed.csv, label_changes.csv and diff.json into ``out_dir``."""
        import json

        out = Path(out_dir)
        added = new.iloc[self.added].copy()
        added.insert(0, "row", self.added)
        removed = old.iloc[self.removed].copy()
        removed.insert(0, "row", self.removed)
        changed = self.changed.assign(changed_columns=self.changed["changed_columns"].map(";".join))
        paths = {
            "added.csv": added,
            "removed.csv": removed,
            "changed.csv": changed,
            "label_changes.csv": self.label_changes,
        }
        written = []
        for name, frame in paths.items():
            frame.to_csv(out / name, index=False)
            written.append(out / name)
        (out / "diff.json").write_text(json.dumps(self.summary(), indent=2) + "\n")
        written.append(out / "diff.json")
        return written


def diff(old: pd.DataFrame, new: pd.DataFrame, *, id: str | None = None, label: str | None = None) -> Diff:
    """Rows added, removed and changed from ``old`` to ``new`` (see ``Diff``)."""
    for col, what in ((id, "--id"), (label, "--label")):
        if col is None:
            continue
        for frame, side in ((old, "the old table"), (new, "the new table")):
            if col not in frame.columns:
                raise InputError(
                    f"{side}: no column '{col}' for {what}; columns are {', '.join(map(str, frame.columns[:12]))}."
                )
    notes: list[str] = []
    missing_cols = sorted(set(map(str, old.columns)) ^ set(map(str, new.columns)))
    if missing_cols:
        notes.append(f"columns present in one table only: {', '.join(missing_cols)}")
    common = sorted(set(map(str, old.columns)) & set(map(str, new.columns)))
    if id is None:
        return _diff_multiset(old, new, common, label, notes)
    return _diff_by_id(old, new, common, id, label, notes)


def _diff_multiset(old: pd.DataFrame, new: pd.DataFrame, cols: list[str], label: str | None, notes: list[str]) -> Diff:
    """Without ids a row is its content: the k-th copy of a fingerprint in one table matches the k-th in the other."""
    fo, fn = row_fingerprints(old, cols), row_fingerprints(new, cols)
    ko = pd.DataFrame({"fp": fo, "k": pd.Series(fo).groupby(fo).cumcount().to_numpy(), "old_row": np.arange(len(fo))})
    kn = pd.DataFrame({"fp": fn, "k": pd.Series(fn).groupby(fn).cumcount().to_numpy(), "new_row": np.arange(len(fn))})
    m = ko.merge(kn, on=["fp", "k"], how="outer")
    added = np.sort(m.loc[m["old_row"].isna(), "new_row"].to_numpy(dtype=np.int64))
    removed = np.sort(m.loc[m["new_row"].isna(), "old_row"].to_numpy(dtype=np.int64))
    unchanged = int((m["old_row"].notna() & m["new_row"].notna()).sum())
    notes.append("no id column: a changed row shows as one removed and one added row; pass --id to pair them")
    changed = pd.DataFrame(
        {
            "id": [],
            "old_row": np.array([], np.int64),
            "new_row": np.array([], np.int64),
            "changed_columns": [],
            "label_changed": [],
        }
    )
    labels = pd.DataFrame(columns=["id", "old_row", "new_row", "old_label", "new_label"])
    return Diff(added, removed, changed, labels, unchanged, None, label, notes)


def _diff_by_id(
    old: pd.DataFrame, new: pd.DataFrame, cols: list[str], id: str, label: str | None, notes: list[str]
) -> Diff:
    for frame, side in ((old, "the old table"), (new, "the new table")):
        dup = frame[id].duplicated(keep=False).to_numpy()
        if dup.any():
            first = int(np.flatnonzero(dup)[0])
            raise InputError(
                f"{side}: id column '{id}' repeats values ({int(dup.sum())} rows, first at row {first}); a diff by "
                "id needs unique ids: fix them or leave out --id to compare rows by content."
            )
    key_old = pd.Series(_column_hashes(old[id]))
    key_new = pd.Series(_column_hashes(new[id]))
    pos_old = pd.Series(np.arange(len(old)), index=key_old.to_numpy())
    both_new = key_new.isin(key_old).to_numpy()
    both_old = key_old.isin(key_new).to_numpy()
    added = np.flatnonzero(~both_new).astype(np.int64)
    removed = np.flatnonzero(~both_old).astype(np.int64)
    new_rows = np.flatnonzero(both_new).astype(np.int64)
    old_rows = pos_old.loc[key_new.to_numpy()[new_rows]].to_numpy(dtype=np.int64)
    values = [c for c in cols if c != id]
    ho = column_hashes(old.iloc[old_rows], values).to_numpy()
    hn = column_hashes(new.iloc[new_rows], values).to_numpy()
    differs = ho != hn  # rows x columns
    any_diff = differs.any(axis=1)
    names = np.array(values, dtype=object)
    r, c = np.nonzero(differs[any_diff])
    lists = pd.Series(names[c]).groupby(r).agg(list)
    changed_cols = [lists.get(i, []) for i in range(int(any_diff.sum()))]
    changed = pd.DataFrame(
        {
            "id": new[id].to_numpy()[new_rows[any_diff]],
            "old_row": old_rows[any_diff],
            "new_row": new_rows[any_diff],
            "changed_columns": changed_cols,
        }
    )
    if label is not None and label in values:
        j = values.index(label)
        changed["label_changed"] = differs[any_diff, j]
        lab = changed[changed["label_changed"]]
        labels = pd.DataFrame(
            {
                "id": lab["id"].to_numpy(),
                "old_row": lab["old_row"].to_numpy(),
                "new_row": lab["new_row"].to_numpy(),
                "old_label": old[label].to_numpy()[lab["old_row"].to_numpy()],
                "new_label": new[label].to_numpy()[lab["new_row"].to_numpy()],
            }
        )
    else:
        changed["label_changed"] = False
        labels = pd.DataFrame(columns=["id", "old_row", "new_row", "old_label", "new_label"])
    unchanged = int((~any_diff).sum())
    return Diff(added, removed, changed.reset_index(drop=True), labels, unchanged, id, label, notes)


__all__ = ["Diff", "column_hashes", "diff", "row_fingerprints"]
