"""Data loading and column typing.

Reads CSV, TSV, Parquet and JSON Lines files (or takes a DataFrame or numpy arrays), checks the label, infers
a type for every column and decides which columns are features. The input is never modified: the ``Dataset``
holds the frame as read, and every later step works on encoded copies.
"""

from __future__ import annotations

import codecs
import difflib
import json
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from .errors import InputError

ColumnType = Literal["numeric", "categorical", "boolean", "datetime", "text"]
COLUMN_TYPES: tuple[str, ...] = ("numeric", "categorical", "boolean", "datetime", "text")
MIN_ROWS = 20
_FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
}
_BOOL_WORDS = {"true", "false", "yes", "no", "y", "n", "t", "f"}
_COMPRESSED = {".gz", ".bz2", ".zip", ".xz"}
_SPREADSHEETS = {".xlsx", ".xls", ".xlsm", ".ods", ".numbers"}


class InputWarning(UserWarning):
    """Something in the input was adjusted or left out; the scan goes on."""


@dataclass(frozen=True)
class Dataset:
    """A labelled table ready for scanning.

    ``frame`` is the data as read (positions 0..n-1 are the row numbers reported everywhere); ``y`` holds
    integer class codes into ``classes``; ``columns`` maps each feature column to its type; ``ignored`` maps
    every other column to the reason it is not a feature.
    """

    frame: pd.DataFrame
    label: str
    y: np.ndarray
    classes: np.ndarray
    columns: dict[str, str]
    ignored: dict[str, str] = field(default_factory=dict)
    source: str | None = None
    id: str | None = None
    name: str = "<data>"
    notes: tuple[str, ...] = ()

    @property
    def n_rows(self) -> int:
        return len(self.frame)

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def class_name(self, code: int) -> str:
        return str(self.classes[code])

    def sources(self) -> np.ndarray | None:
        if self.source is None:
            return None
        return self.frame[self.source].astype("string").fillna("<missing>").to_numpy(dtype=object)


def read_table(path: str | Path, *, encoding: str = "utf-8") -> pd.DataFrame:
    """Read a file into a DataFrame, turning every reader failure into an ``InputError``.

    Nested values (JSON objects or arrays, Parquet lists and structs) are turned into JSON text, so that such
    a column is treated as categorical instead of breaking the scan.
    """
    p = Path(path)
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise InputError(
            f"unknown text encoding '{encoding}'; pass a Python codec name such as utf-8, latin-1 or cp1252 "
            "with --encoding."
        ) from None
    if not p.exists():
        raise InputError(f"{p}: no such file; check the path.")
    if p.is_dir():
        raise InputError(f"{p}: is a directory; pass a CSV, TSV, Parquet or JSON Lines file.")
    fmt = _FORMATS.get(p.suffix.lower())
    if fmt is None and p.suffix.lower() in _COMPRESSED:
        fmt = _FORMATS.get(Path(p.stem).suffix.lower())
    if fmt is None:
        hint = (
            " Spreadsheets are not read directly: export the sheet as CSV (File > Save as > CSV) and scan it."
            if p.suffix.lower() in _SPREADSHEETS
            else " Rename the file if its content is one of these."
        )
        raise InputError(f"{p}: unknown file type '{p.suffix or '(none)'}'; use .csv, .tsv, .parquet or .jsonl.{hint}")
    try:
        size = p.stat().st_size
        if size == 0:
            raise InputError(f"{p}: the file is empty.")
        if fmt != "parquet" and p.suffix.lower() not in _COMPRESSED:
            with p.open("rb") as fh:
                head = fh.read(8192)
            if b"\x00" in head and not encoding.lower().replace("-", "").replace("_", "").startswith("utf16"):
                raise InputError(
                    f"{p}: looks like a binary file (it holds NUL bytes), not {fmt.upper()} text; check that "
                    "this is the right file, or pass --encoding if it is UTF-16 text."
                )
    except OSError as exc:
        raise InputError(f"{p}: cannot be opened ({exc.strerror or exc}); check the file's permissions.") from exc
    try:
        if fmt in {"csv", "tsv"}:
            sep, decimal = _csv_dialect(p, encoding) if fmt == "csv" else ("\t", ".")
            frame = pd.read_csv(
                p,
                sep=sep,
                decimal=decimal,
                encoding=encoding,
                skipinitialspace=True,
                low_memory=False,
            )
        elif fmt == "parquet":
            frame = pd.read_parquet(p)
        else:
            frame = pd.read_json(p, lines=True, encoding=encoding, dtype=False)
    except UnicodeDecodeError as exc:
        where = _first_undecodable_line(p, encoding)
        at = f"line {where} of the file" if where is not None else f"byte {exc.start}"
        raise InputError(
            f"{p}: not valid {encoding} text ({at}: {exc.reason}); re-save the file as UTF-8, or pass "
            "--encoding with the file's encoding (for example --encoding latin-1 or --encoding cp1252)."
        ) from exc
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{p}: cannot be read as {fmt.upper()} ({first}); check the file format.") from exc
    except Exception as exc:  # pyarrow raises its own exception types for corrupt files
        if type(exc).__module__.startswith("pyarrow"):
            raise InputError(f"{p}: cannot be read as {fmt.upper()} ({exc}); check the file.") from exc
        raise
    if frame.shape[1] == 0 or len(frame) == 0:
        raise InputError(f"{p}: holds no rows; a scan needs at least {MIN_ROWS} labelled rows.")
    frame.columns = [str(c) for c in frame.columns]
    for col in frame.columns:
        if _nested_mask(frame[col]) is not None:
            frame[col] = frame[col].map(_to_json_text).astype(object)
    return frame


_SEPARATORS = (",", ";", "\t", "|")


def _csv_dialect(p: Path, encoding: str) -> tuple[str, str]:
    """The CSV separator and decimal mark: a comma and a point, unless the header line holds no comma and another
    separator instead (European spreadsheets and the UCI bank marketing file use ';'); with ';', a decimal comma
    when the first lines write numbers that way ('1,5'). Compressed files keep the defaults."""
    if p.suffix.lower() in _COMPRESSED:
        return ",", "."
    try:
        with p.open("r", encoding=encoding, errors="replace", newline="") as fh:
            lines = [fh.readline() for _ in range(50)]
    except (OSError, LookupError):
        return ",", "."
    counts = {sep: lines[0].count(sep) for sep in _SEPARATORS}
    if counts[","] > 0:
        return ",", "."
    best = max(_SEPARATORS[1:], key=lambda sep: counts[sep])
    if counts[best] == 0:
        return ",", "."
    body = "".join(lines[1:])
    decimal_comma = best == ";" and re.search(r"\d,\d", body) is not None and re.search(r"\d\.\d", body) is None
    return best, "," if decimal_comma else "."


def _first_undecodable_line(p: Path, encoding: str, limit: int = 256 * 2**20) -> int | None:
    """1-based line number of the first line that does not decode (None when it cannot be told)."""
    try:
        decoder = codecs.getincrementaldecoder(encoding)()
        read = 0
        with p.open("rb") as fh:
            for number, line in enumerate(fh, start=1):
                read += len(line)
                if read > limit:
                    return None
                try:
                    decoder.decode(line)
                except UnicodeDecodeError:
                    return number
    except (OSError, LookupError):
        return None
    return None


def _nested_mask(s: pd.Series) -> np.ndarray | None:
    """Where an object column holds nested values (dict, list, array, set); None when it holds none."""
    if s.dtype != object:
        return None
    mask = s.map(lambda v: isinstance(v, dict | list | tuple | set | np.ndarray)).to_numpy(dtype=bool)
    return mask if mask.any() else None


def _to_json_text(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        v = v.tolist()
    if isinstance(v, set):
        v = sorted(v, key=str)
    if isinstance(v, dict | list | tuple):
        return json.dumps(v, sort_keys=True, default=str)
    return v


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _resolve_column(frame: pd.DataFrame, col: str, what: str, name: str, flag: str) -> str:
    if col in frame.columns:
        return col
    close = difflib.get_close_matches(col, list(frame.columns), n=3)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    shown = ", ".join(repr(c) for c in list(frame.columns)[:12])
    more = " ..." if frame.shape[1] > 12 else ""
    raise InputError(
        f"{name}: no column '{col}' for {what}.{hint} Columns are: {shown}{more}; pass the right name with {flag}."
    )


def _label_codes(values: pd.Series, label: str, name: str) -> tuple[np.ndarray, np.ndarray]:
    missing = values.isna().to_numpy().copy()
    if isinstance(values.dtype, pd.StringDtype) or values.dtype == object:
        missing = missing | values.astype("string").str.strip().fillna("").eq("").to_numpy()
    if missing.all():
        raise InputError(f"{name}: label column '{label}' is empty in every row; pass the right --label column.")
    if missing.any():
        first = int(np.flatnonzero(missing)[0])
        raise InputError(
            f"{name}: label column '{label}' has {_plural(int(missing.sum()), 'empty cell')} (first at row "
            f"{first}); drop those rows or fill in their labels, then scan again."
        )
    if pd.api.types.is_float_dtype(values.dtype):
        arr = values.to_numpy(dtype=float)
        if not np.isfinite(arr).all():
            first = int(np.flatnonzero(~np.isfinite(arr))[0])
            raise InputError(f"{name}: label column '{label}' holds an infinite value at row {first}; fix it.")
        n_unique = len(np.unique(arr))
        if not np.all(arr == np.round(arr)) or n_unique > max(50, 0.05 * len(arr)):
            raise InputError(
                f"{name}: label column '{label}' looks like a regression target ({n_unique} distinct "
                "numbers); poisonguard supports classification labels only (regression is not supported "
                "yet). Bin the target into classes or pick a categorical label."
            )
        values = pd.Series(arr.astype(np.int64))
        _refuse_quantity(values, n_unique, label, name)
    elif pd.api.types.is_integer_dtype(values.dtype):
        n_unique = values.nunique()
        if n_unique > max(50, 0.05 * len(values)):
            raise InputError(
                f"{name}: label column '{label}' has {n_unique} distinct integers, which looks like a "
                "regression target or an id; poisonguard supports classification labels only (regression is "
                "not supported yet). Pass the class column with --label."
            )
        _refuse_quantity(values, n_unique, label, name)
    elif pd.api.types.is_bool_dtype(values.dtype):
        pass
    else:
        values = values.astype("string").str.strip()
    codes, classes = pd.factorize(values, sort=True)
    if len(classes) < 2:
        raise InputError(
            f"{name}: label column '{label}' holds a single class ({classes[0]!r}); a scan compares classes, "
            "so it needs at least two. Check that you passed the right --label column."
        )
    return codes.astype(np.int64), np.asarray(classes, dtype=object)


QUANTITY_MIN_VALUES = 50


def _refuse_quantity(values: pd.Series, n_unique: int, label: str, name: str) -> None:
    """Many integers that are not class codes (0..K-1 or 1..K, nearly all used) are a quantity: ages, hours,
    amounts. Scanned as classes they give dozens of tiny classes and a verdict about nothing (adult's
    ``hours_per_week`` on 2,000 rows: 68 classes, 131 s, 'poisoned'); codes of many classes pass."""
    if n_unique <= QUANTITY_MIN_VALUES:
        return
    lo, hi = int(values.min()), int(values.max())
    if lo in (0, 1) and hi - lo + 1 <= 1.1 * n_unique:
        return
    raise InputError(
        f"{name}: label column '{label}' has {n_unique} distinct integers from {lo} to {hi}, not class codes "
        "(0..K-1 or 1..K), which looks like a quantity such as a regression target; poisonguard supports "
        "classification labels only (regression is not supported yet). Bin it into classes, or, if these "
        "numbers name classes, store them as text."
    )


def _infer_type(s: pd.Series, col: str, name: str) -> str | None:
    """Return a column type, or None for a column that carries no information (all empty)."""
    nonnull = s.dropna()
    if len(nonnull) == 0:
        return None
    if pd.api.types.is_bool_dtype(s.dtype):
        return "boolean"
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        return "datetime"
    if pd.api.types.is_numeric_dtype(s.dtype):
        arr = s.to_numpy(dtype=float, na_value=np.nan)
        inf = np.isinf(arr)
        if inf.any():
            first = int(np.flatnonzero(inf)[0])
            raise InputError(
                f"{name}: column '{col}' holds {_plural(int(inf.sum()), 'infinite value')} (first at row "
                f"{first}); replace them with finite numbers or empty cells, or leave the column out with "
                f"--exclude {col}."
            )
        finite = arr[~np.isnan(arr)]
        if ((finite == 0.0) | (finite == 1.0)).all():
            return "boolean"
        return "numeric"
    if isinstance(s.dtype, pd.CategoricalDtype):
        return "categorical"
    text = nonnull.astype(str).str.strip()
    text = text[text != ""]
    if len(text) == 0:
        return None
    lower = text.str.lower()
    if lower.nunique() <= 2 and set(lower.unique()) <= _BOOL_WORDS:
        return "boolean"
    num = pd.to_numeric(text, errors="coerce")
    ok = num.notna().to_numpy()
    if ok.all():
        return "numeric"
    if ok.mean() >= 0.8:
        bad_pos = int(np.flatnonzero(~ok)[0])
        row = int(text.index[bad_pos])
        raise InputError(
            f"{name}: column '{col}' mixes numbers and text: {int((~ok).sum())} of {len(text)} values are "
            f"not numbers (first {text.iloc[bad_pos]!r} at row {row}); clean those cells, or declare the "
            f"column with --type {col}=categorical."
        )
    if not pd.api.types.is_numeric_dtype(s.dtype) and ok.mean() < 0.05:
        sample = text.iloc[: min(len(text), 500)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            parsed = pd.to_datetime(sample, errors="coerce", format="mixed")
        if parsed.notna().mean() >= 0.95 and sample.str.contains(r"\d", regex=True).mean() >= 0.95:
            return "datetime"
    n_words = text.str.count(r"\s+") + 1
    if n_words.mean() >= 3 and text.nunique() > 0.3 * len(text):
        return "text"
    return "categorical"


def _is_constant(s: pd.Series) -> bool:
    """Same value in every row (no missing cells); O(n) without hashing the column."""
    if s.isna().any():
        return False
    if isinstance(s.dtype, pd.CategoricalDtype):
        codes = s.cat.codes.to_numpy()
        return bool((codes == codes[0]).all())
    values = s.to_numpy()
    return bool((values == values[0]).all())


def _is_identifier(s: pd.Series, kind: str) -> bool:
    """A column with a distinct value in (almost) every row and no numeric meaning carries no signal."""
    n = len(s)
    if n < MIN_ROWS or kind not in {"numeric", "categorical"}:
        return False
    # cheap rejections on an evenly spaced sample before the whole column is read (a scan of 1,000,000 rows spent
    # 0.8 s here on its 50 columns)
    sample = s.iloc[:: max(1, n // 2000)].dropna()
    real = kind == "numeric" and not pd.api.types.is_integer_dtype(s.dtype)
    if real and not np.all(np.mod(sample.to_numpy(dtype=float), 1) == 0):
        return False  # real-valued measurements are distinct by nature
    if sample.nunique() < 0.95 * len(sample):
        return False
    nonnull = s.dropna()
    if len(nonnull) < 0.95 * n:
        return False
    if real and not np.all(np.mod(nonnull.to_numpy(dtype=float), 1) == 0):
        return False
    if nonnull.nunique() < 0.95 * n:
        return False
    if kind == "categorical":
        return True
    arr = nonnull.to_numpy(dtype=float)
    steps = np.diff(arr)
    return bool(np.all(steps > 0) or np.all(steps < 0) or (arr.max() - arr.min()) < 2 * n)


def _coerce_frame(data: Any, label: Any, name: str) -> tuple[pd.DataFrame, str, np.ndarray | pd.Series | None]:
    """Accept a DataFrame, a path, or arrays; return a frame, the label column name and external labels."""
    external = None
    if isinstance(data, str | Path):
        frame = read_table(data)
    elif isinstance(data, pd.DataFrame):
        frame = data
    elif isinstance(data, np.ndarray):
        if data.ndim != 2:
            raise InputError(f"{name}: a numpy input must be 2-D (rows x features); got shape {data.shape}.")
        frame = pd.DataFrame(data, columns=[f"x{i}" for i in range(data.shape[1])])
    else:
        raise InputError(
            f"{name}: cannot scan an object of type {type(data).__name__}; pass a file path, a pandas "
            "DataFrame or a 2-D numpy array."
        )
    if label is None:
        raise InputError(f"{name}: no label column given; pass --label COL (API: label=...).")
    if isinstance(label, str):
        return frame, label, None
    if isinstance(label, int) and isinstance(data, np.ndarray):
        col = f"x{label}"
        if col not in frame.columns:
            raise InputError(f"{name}: label index {label} is outside the {frame.shape[1]} columns.")
        return frame, col, None
    external = np.asarray(label)
    if external.ndim != 1 or len(external) != len(frame):
        raise InputError(
            f"{name}: labels given as an array must be 1-D with one value per row "
            f"({len(frame)} rows); got shape {external.shape}."
        )
    return frame, "label", external


def load_dataset(
    data: Any,
    *,
    label: Any,
    source: str | None = None,
    id: str | None = None,
    exclude: tuple[str, ...] | list[str] = (),
    types: dict[str, str] | None = None,
    name: str | None = None,
) -> Dataset:
    """Check and type a table for scanning; see ``poisonguard.scan`` for the arguments."""
    if name is None:
        name = str(data) if isinstance(data, str | Path) else f"<{type(data).__name__}>"
    frame, label_col, external = _coerce_frame(data, label, name)
    if external is not None:
        if label_col in frame.columns:
            raise InputError(f"{name}: already has a column named 'label'; pass label='label' instead of an array.")
        frame = frame.assign(**{label_col: external})
    frame = frame.reset_index(drop=True) if not isinstance(frame.index, pd.RangeIndex) else frame
    if frame.columns.duplicated().any():
        dup = frame.columns[frame.columns.duplicated()][0]
        raise InputError(f"{name}: column name '{dup}' appears more than once; give every column its own name.")
    for col in frame.columns:
        nested = _nested_mask(frame[col])
        if nested is not None:
            first = int(np.flatnonzero(nested)[0])
            raise InputError(
                f"{name}: column '{col}' holds nested values (lists or objects; first at row {first}); "
                "flatten it into plain columns, turn it into text (for example "
                f"df['{col}'].map(json.dumps)), or drop it."
            )
    label_col = _resolve_column(frame, label_col, "the label", name, "--label")
    if len(frame) < MIN_ROWS:
        raise InputError(
            f"{name}: only {len(frame)} rows; a scan needs at least {MIN_ROWS} labelled rows to compare them."
        )
    y, classes = _label_codes(frame[label_col], label_col, name)
    counts = np.bincount(y, minlength=len(classes))
    if len(classes) > 0.5 * len(frame):
        raise InputError(
            f"{name}: label column '{label_col}' has {len(classes)} classes for {len(frame)} rows, so almost "
            "every row has its own class; pass the class column with --label."
        )
    ignored: dict[str, str] = {label_col: "label"}
    if source is not None:
        source = _resolve_column(frame, source, "the source", name, "--source")
        if source == label_col:
            raise InputError(f"{name}: --source and --label name the same column '{source}'.")
        ignored[source] = "source"
    if id is not None:
        id = _resolve_column(frame, id, "the row id", name, "--id")
        ignored.setdefault(id, "id")
        dup = frame[id].duplicated(keep=False).to_numpy()
        if dup.any():
            first = int(np.flatnonzero(dup)[0])
            warnings.warn(
                f"{name}: id column '{id}' repeats values ({int(dup.sum())} rows, first at row {first}).",
                InputWarning,
                stacklevel=2,
            )
    for col in exclude:
        col = _resolve_column(frame, col, "--exclude", name, "--exclude")
        ignored.setdefault(col, "excluded")
    types = dict(types or {})
    for col, kind in types.items():
        _resolve_column(frame, col, "a type override", name, "--type")
        if kind not in COLUMN_TYPES:
            raise InputError(f"{name}: unknown type '{kind}' for column '{col}'; use one of {', '.join(COLUMN_TYPES)}.")
    columns: dict[str, str] = {}
    notes: list[str] = []
    for col in frame.columns:
        if col in ignored:
            continue
        s = frame[col]
        kind = types.get(col) or _infer_type(s, col, name)
        if kind is None:
            ignored[col] = "empty"
            notes.append(f"column '{col}' is empty in every row and was left out")
            continue
        if col not in types and _is_constant(s):
            ignored[col] = "constant"
            notes.append(f"column '{col}' has the same value in every row and was left out")
            continue
        if col not in types and _is_identifier(s, kind):
            ignored[col] = "identifier"
            notes.append(
                f"column '{col}' looks like a row identifier (a distinct value in every row) and was left "
                f"out; pass --id {col} to report rows by it, or --type {col}=numeric to keep it"
            )
            continue
        if kind == "numeric" and not pd.api.types.is_numeric_dtype(s.dtype):
            num = pd.to_numeric(s.astype("string").str.strip().replace("", pd.NA), errors="coerce")
            bad = num.isna() & s.notna() & s.astype("string").str.strip().ne("")
            if bad.any():
                first = int(np.flatnonzero(bad.to_numpy())[0])
                raise InputError(
                    f"{name}: column '{col}' is declared numeric but row {first} holds {s.iloc[first]!r}; "
                    "fix the cell or declare another type."
                )
        columns[col] = kind
    if not columns:
        raise InputError(
            f"{name}: no usable feature columns ({', '.join(f'{c}: {r}' for c, r in ignored.items())}); a "
            "scan needs at least one column besides the label that varies between rows."
        )
    small = [str(classes[i]) for i in np.flatnonzero(counts < 5)]
    if small:
        notes.append(
            f"classes with fewer than 5 rows ({', '.join(small[:5])}) give weak evidence; their rows are "
            "scored but judged with care"
        )
    return Dataset(
        frame=frame,
        label=label_col,
        y=y,
        classes=classes,
        columns=columns,
        ignored=ignored,
        source=source,
        id=id,
        name=name,
        notes=tuple(notes),
    )


__all__ = ["COLUMN_TYPES", "Dataset", "InputWarning", "load_dataset", "read_table"]
