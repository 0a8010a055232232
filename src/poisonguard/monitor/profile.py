"""The reference profile: what the training data (and the model's predictions on it) looked like.

Drift is always a comparison with something. The profile keeps, per feature column, its type, quantile bins with
their counts (for PSI and chi-square), category frequencies, robust location and spread (for the counterfactual
trigger check), and a bounded, seeded sample of reference rows (for KS, Wasserstein and the domain classifier).
Label and prediction distributions are kept the same way. Everything is plain JSON, so a profile can live in a
file or in the service's database.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError
from ..io import _infer_type, _is_identifier

FORMAT = "poisonguard-profile/1"
N_BINS = 10
MAX_CATEGORIES = 50
SAMPLE_SIZE = 5000
TAIL = 0.001  # the counterfactual check calls a value unusual outside [q0.1%, q99.9%] of the reference
OTHER, MISSING = "<other>", "<missing>"
_TRUE = {"true", "1", "1.0", "yes", "y", "t"}
_FALSE = {"false", "0", "0.0", "no", "n", "f"}


@dataclass
class ColumnProfile:
    """One column of the reference. ``counts`` has one entry per bin (numeric: ``len(edges) + 1`` bins;
    categorical: one per category, then ``<other>``) and a last entry for missing values."""

    name: str
    kind: str  # "numeric" or "categorical"
    n: int
    counts: list[int]
    edges: list[float] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    median: float | None = None
    scale: float | None = None  # 1.4826 * MAD (or IQR / 1.349, or std, when MAD is 0)
    std: float | None = None
    q_low: float | None = None
    q_high: float | None = None
    mode: str | None = None

    @property
    def shares(self) -> np.ndarray:
        c = np.asarray(self.counts, dtype=float)
        return c / max(c.sum(), 1.0)

    def bin_counts(self, values: pd.Series) -> np.ndarray:
        """Counts of ``values`` (already coerced with ``coerce``) in this column's bins."""
        if self.kind == "numeric":
            x = values.to_numpy(dtype=float, na_value=np.nan)
            miss = np.isnan(x)
            idx = np.searchsorted(np.asarray(self.edges, dtype=float), x[~miss], side="right")
            out = np.bincount(idx, minlength=len(self.edges) + 1).astype(np.int64)
            return np.append(out, int(miss.sum()))
        codes = self.codes(values)
        return np.bincount(codes, minlength=len(self.categories) + 2).astype(np.int64)

    def codes(self, values: pd.Series) -> np.ndarray:
        """Category index per value: known categories, then ``<other>``, then missing."""
        k = len(self.categories)
        index = self.__dict__.get("_index")
        if index is None:
            index = self.__dict__["_index"] = pd.Index(self.categories, dtype=object)
        miss = pd.isna(values).to_numpy()
        codes = index.get_indexer(values.to_numpy(dtype=object)).astype(np.int64)
        codes[codes < 0] = k
        codes[miss] = k + 1
        return codes

    def coerce(self, values: pd.Series, where: str) -> pd.Series:
        """Values in the reference's representation; a numeric column holding text is an ``InputError``."""
        return coerce_column(values, self.kind, self.name, where)


def coerce_column(values: pd.Series, kind: str, name: str, where: str) -> pd.Series:
    if kind == "numeric":
        if pd.api.types.is_bool_dtype(values.dtype):
            return values.astype(float)
        if pd.api.types.is_numeric_dtype(values.dtype):
            return values.astype(float)
        text = values.astype("string").str.strip().replace("", pd.NA)
        num = pd.to_numeric(text, errors="coerce")
        bad = num.isna() & text.notna()
        if bad.any():
            pos = int(np.flatnonzero(bad.to_numpy())[0])
            raise InputError(
                f"{where}: column '{name}' is numeric in the reference but row {pos} holds "
                f"{values.iloc[pos]!r}; send a number or an empty value."
            )
        return num.astype(float)
    return _categories(values)


def _categories(values: pd.Series) -> pd.Series:
    """Categorical values as stripped text; booleans and 0/1 spelled one way ("true"/"false")."""
    if values.dtype == object or pd.api.types.is_string_dtype(values.dtype):
        inferred = pd.api.types.infer_dtype(values, skipna=True)
        if inferred == "string":  # the common case (JSON and CSV text): strip, and an empty string is missing
            arr = values.to_numpy(dtype=object)
            return pd.Series([_text(v) for v in arr], index=values.index, dtype=object)
        if inferred in ("floating", "integer", "mixed-integer-float"):
            values = pd.to_numeric(values).astype(float)
        elif inferred == "boolean":
            values = values.astype("boolean")
    miss = values.isna()
    if pd.api.types.is_bool_dtype(values.dtype):
        out = values.map({True: "true", False: "false"}).astype(object)
        return out.where(~miss, None)
    if pd.api.types.is_float_dtype(values.dtype):
        # 1.0 and 1 are one category; floats that are whole numbers read as integers
        arr = values.to_numpy(dtype=float, na_value=np.nan)
        whole = np.isfinite(arr) & (arr == np.round(arr))
        text = np.where(whole, np.char.mod("%d", np.nan_to_num(arr).astype(np.int64)), arr.astype(str))
        out = pd.Series(text, index=values.index, dtype=object)
        return out.where(~miss, None)
    out = values.astype("string").str.strip()
    out = out.where(out != "", pd.NA).astype(object)
    return out.where(out.notna(), None)


def _text(v: Any) -> str | None:
    if isinstance(v, str):
        return v.strip() or None
    if v is None or v is pd.NA or (isinstance(v, float) and v != v):
        return None
    return str(v).strip() or None


def _normalise_bool(values: pd.Series) -> pd.Series:
    low = values.map(lambda v: v.lower() if isinstance(v, str) else v)
    return low.map(lambda v: "true" if v in _TRUE else ("false" if v in _FALSE else v))


def profile_column(values: pd.Series, kind: str, name: str) -> ColumnProfile:
    """Bins, counts and robust statistics of one reference column."""
    n = len(values)
    if kind == "numeric":
        x = values.to_numpy(dtype=float, na_value=np.nan)
        ok = x[~np.isnan(x)]
        if len(ok) == 0:
            return ColumnProfile(name=name, kind=kind, n=n, counts=[0, n])
        qs = np.quantile(ok, np.linspace(0, 1, N_BINS + 1)[1:-1])
        edges = np.unique(qs)
        idx = np.searchsorted(edges, ok, side="right")
        counts = [*np.bincount(idx, minlength=len(edges) + 1).tolist(), n - len(ok)]
        med = float(np.median(ok))
        mad = 1.4826 * float(np.median(np.abs(ok - med)))
        q25, q75 = np.quantile(ok, [0.25, 0.75])
        std = float(ok.std())
        scale = mad if mad > 0 else (float(q75 - q25) / 1.349 if q75 > q25 else std)
        lo, hi = np.quantile(ok, [TAIL, 1 - TAIL])
        return ColumnProfile(
            name=name,
            kind=kind,
            n=n,
            counts=[int(c) for c in counts],
            edges=[float(e) for e in edges],
            median=med,
            scale=scale if scale > 0 else None,
            std=std,
            q_low=float(lo),
            q_high=float(hi),
        )
    freq = values.dropna().value_counts()
    cats = [str(c) for c in freq.index[:MAX_CATEGORIES]]
    col = ColumnProfile(name=name, kind="categorical", n=n, counts=[], categories=cats)
    col.counts = col.bin_counts(values).tolist()
    col.mode = cats[0] if cats else None
    return col


@dataclass
class Profile:
    """A reference to compare production data with. Build with ``Profile.from_frame``; ``save``/``load`` JSON."""

    columns: dict[str, ColumnProfile]
    n_rows: int
    sample: dict[str, list[Any]]
    seed: int = 0
    label: str | None = None
    label_profile: ColumnProfile | None = None
    prediction_profile: ColumnProfile | None = None
    reference_accuracy: float | None = None
    triggers: list[dict[str, Any]] = field(default_factory=list)
    ignored: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        *,
        label: str | None = None,
        predictions: Sequence[Any] | np.ndarray | pd.Series | None = None,
        triggers: Sequence[Mapping[str, Any]] | Sequence[Any] = (),
        types: Mapping[str, str] | None = None,
        exclude: Sequence[str] = (),
        seed: int = 0,
        sample_size: int = SAMPLE_SIZE,
        name: str = "<reference>",
    ) -> Profile:
        """Profile the training data. ``predictions`` are the model's predictions on these rows (optional);
        ``triggers`` are ``Trigger`` objects or their ``to_dict`` form (a saved scan's summary.json)."""
        if len(frame) == 0:
            raise InputError(f"{name}: the reference holds no rows.")
        if label is not None and label not in frame.columns:
            raise InputError(
                f"{name}: no label column '{label}'; columns are {', '.join(map(str, frame.columns[:12]))}."
            )
        ignored: dict[str, str] = {}
        if label is not None:
            ignored[label] = "label"
        for col in exclude:
            ignored[col] = "excluded"
        columns: dict[str, ColumnProfile] = {}
        coerced: dict[str, pd.Series] = {}
        types = dict(types or {})
        for col in frame.columns:
            col = str(col)
            if col in ignored:
                continue
            s = frame[col]
            kind = types.get(col) or _infer_type(s, col, name)
            if kind is None:
                ignored[col] = "empty"
                continue
            if col not in types and _is_identifier(s, kind):
                ignored[col] = "identifier"
                continue
            if kind in ("text", "datetime"):
                ignored[col] = f"{kind} (not monitored)"
                continue
            boolean = kind == "boolean"
            kind = "numeric" if kind == "numeric" else "categorical"
            values = coerce_column(s, kind, col, name)
            if boolean:
                values = _normalise_bool(values)
            coerced[col] = values
            columns[col] = profile_column(values, kind, col)
        if not columns:
            raise InputError(f"{name}: no column to monitor ({', '.join(f'{c}: {r}' for c, r in ignored.items())}).")
        rng = np.random.default_rng(seed)
        n = len(frame)
        take = np.sort(rng.choice(n, sample_size, replace=False)) if n > sample_size else np.arange(n)
        sample = {c: _jsonable_list(coerced[c].iloc[take]) for c in columns}
        label_profile = None
        labels = None
        if label is not None:
            labels = _categories(frame[label])
            label_profile = profile_column(labels, "categorical", label)
        prediction_profile = None
        accuracy = None
        if predictions is not None:
            preds = pd.Series(np.asarray(predictions, dtype=object))
            if len(preds) != n:
                raise InputError(f"{name}: {len(preds)} predictions for {n} reference rows; give one per row.")
            preds = _categories(preds)
            prediction_profile = profile_column(preds, "categorical", "prediction")
            sample["__prediction__"] = _jsonable_list(preds.iloc[take])
            if labels is not None:
                accuracy = float(np.mean(labels.to_numpy(dtype=object) == preds.to_numpy(dtype=object)))
        trig = [t.to_dict() if hasattr(t, "to_dict") else dict(t) for t in triggers]
        return cls(
            columns=columns,
            n_rows=n,
            sample=sample,
            seed=seed,
            label=label,
            label_profile=label_profile,
            prediction_profile=prediction_profile,
            reference_accuracy=accuracy,
            triggers=trig,
            ignored=ignored,
        )

    # --- views ------------------------------------------------------------------------------------------------

    def sorted_sample(self, column: str) -> np.ndarray:
        """The reference sample of a numeric column, sorted, without missing values (cached)."""
        cache = self.__dict__.setdefault("_sorted", {})
        if column not in cache:
            x = np.asarray([np.nan if v is None else v for v in self.sample.get(column, [])], dtype=float)
            cache[column] = np.sort(x[~np.isnan(x)])
        return cache[column]

    def sample_frame(self) -> pd.DataFrame:
        """The reference sample as a frame of feature columns (numeric as float, categorical as text)."""
        data = {c: self.sample[c] for c in self.columns}
        frame = pd.DataFrame(data)
        for c, col in self.columns.items():
            frame[c] = frame[c].astype(float) if col.kind == "numeric" else frame[c].astype(object)
        return frame

    def coerce(self, frame: pd.DataFrame, where: str = "<batch>") -> pd.DataFrame:
        """The monitored columns of ``frame`` in the reference's representation; missing columns are an error."""
        missing = [c for c in self.columns if c not in frame.columns]
        if missing:
            shown = ", ".join(repr(c) for c in missing[:10])
            raise InputError(
                f"{where}: {len(missing)} column(s) of the reference are missing ({shown}"
                f"{' ...' if len(missing) > 10 else ''}); send every monitored column (null for a missing value)."
            )
        out = {}
        for c, col in self.columns.items():
            v = col.coerce(frame[c], where)
            if col.kind == "categorical" and set(col.categories) <= {"true", "false"} and col.categories:
                v = _normalise_bool(v)
            out[c] = v
        return pd.DataFrame(out, index=frame.index)

    # --- persistence ------------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "n_rows": self.n_rows,
            "seed": self.seed,
            "label": self.label,
            "columns": {c: asdict(p) for c, p in self.columns.items()},
            "label_profile": None if self.label_profile is None else asdict(self.label_profile),
            "prediction_profile": None if self.prediction_profile is None else asdict(self.prediction_profile),
            "reference_accuracy": self.reference_accuracy,
            "triggers": self.triggers,
            "ignored": self.ignored,
            "sample": self.sample,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "<profile>") -> Profile:
        if not isinstance(d, Mapping) or d.get("format") != FORMAT:
            raise InputError(f'{where}: not a poisonguard profile (no "format": "{FORMAT}").')
        try:
            return cls(
                columns={c: ColumnProfile(**p) for c, p in d["columns"].items()},
                n_rows=int(d["n_rows"]),
                sample={c: list(v) for c, v in d["sample"].items()},
                seed=int(d.get("seed", 0)),
                label=d.get("label"),
                label_profile=None if d.get("label_profile") is None else ColumnProfile(**d["label_profile"]),
                prediction_profile=None
                if d.get("prediction_profile") is None
                else ColumnProfile(**d["prediction_profile"]),
                reference_accuracy=d.get("reference_accuracy"),
                triggers=list(d.get("triggers", [])),
                ignored=dict(d.get("ignored", {})),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"{where}: a damaged profile ({type(exc).__name__}: {exc}); build it again.") from exc

    def save(self, path: str | Path) -> Path:
        p = Path(path)
        p.write_text(json.dumps(self.to_dict(), allow_nan=False))
        return p

    @classmethod
    def load(cls, path: str | Path) -> Profile:
        p = Path(path)
        try:
            d = json.loads(p.read_text())
        except FileNotFoundError:
            raise InputError(f"{p}: no such file; check the path.") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(f"{p}: cannot be read as a profile ({exc}).") from exc
        return cls.from_dict(d, str(p))


def is_profile_file(path: str | Path) -> bool:
    """Whether ``path`` is a saved profile (JSON whose first bytes name the format), not a data file. Read from
    the content, whatever the name: ``profile --out ref`` writes exactly the path it is given."""
    p = Path(path)
    if not p.is_file():
        return False
    with p.open("rb") as fh:
        head = fh.read(64)
    return head.lstrip().startswith(b"{") and FORMAT.encode() in head


def _jsonable_list(s: pd.Series) -> list[Any]:
    out: list[Any] = []
    for v in s.tolist():
        if v is None or (isinstance(v, float) and not math.isfinite(v)):
            out.append(None)
        elif isinstance(v, np.generic):
            out.append(v.item())
        else:
            out.append(v)
    return out


__all__ = ["FORMAT", "ColumnProfile", "Profile", "coerce_column", "is_profile_file", "profile_column"]
