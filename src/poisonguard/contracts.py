"""Data contracts: what a trusted table looks like, written down as YAML that people can read and edit.

``infer_contract`` reads a table the user trusts and writes what holds in it: each column's type (from the
loader's own type inference), null rate, range, allowed categories and distribution bounds (mean and standard
deviation), the label set with class-share bounds, and id uniqueness. ``check_contract`` checks a new table
against it and collects every violation, each with a count and example rows, instead of stopping at the first:
a vendor batch that breaks three things should say so once.

A contract is declarative, so a person can loosen a bound or drop a rule by editing the file; ``version``
names the format. Mistakes in the file are reported with their line number.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import ConfigError, InputError
from .io import COLUMN_TYPES, _infer_type, load_dataset, read_table

CONTRACT_VERSION = 1
MAX_CATEGORIES = 100  # above this many distinct values a column's categories are not enumerated
EXAMPLES = 5
_BOOL_TEXT = {"true", "false", "yes", "no", "y", "n", "t", "f", "1", "0", "1.0", "0.0"}
_COLUMN_KEYS = {"type", "max_null_rate", "min", "max", "categories", "mean", "std"}
_TOP_KEYS = {"version", "source", "rows", "label", "id", "allow_extra_columns", "columns"}


def _norm(s: pd.Series) -> pd.Series:
    """Values as comparable text: integral numbers without a decimal point, text stripped; NA stays NA."""
    if pd.api.types.is_bool_dtype(s.dtype):
        return s.astype("string")
    if pd.api.types.is_numeric_dtype(s.dtype):
        v = s.astype("float64")
        integral = v.notna() & (v == v.round()) & (v.abs() < 2**53)
        out = v.astype("string")
        out[integral] = v[integral].astype("int64").astype("string")
        return out
    return s.astype("string").str.strip().replace("", pd.NA)


def _num(v: Any) -> float | int:
    """A plain Python number for YAML (numpy scalars do not serialise)."""
    f = float(v)
    return int(f) if f.is_integer() and abs(f) < 2**53 else f


def _round_sig(x: float, digits: int = 6) -> float:
    return float(f"{x:.{digits}g}")


@dataclass(frozen=True)
class Violation:
    """One broken rule: ``count`` rows (or columns) break it; ``examples`` are row numbers (0-based)."""

    rule: str
    column: str | None
    count: int
    examples: list[int]
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "column": self.column,
            "count": self.count,
            "examples": self.examples,
            "message": self.message,
        }


@dataclass(frozen=True)
class ContractResult:
    """Every violation of a contract by one table; ``ok`` when there is none."""

    violations: list[Violation]
    rows: int
    name: str = "<data>"

    @property
    def ok(self) -> bool:
        return not self.violations

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "rows": self.rows,
            "violations": [v.to_dict() for v in self.violations],
        }


@dataclass
class Contract:
    """A parsed contract (``spec`` is the YAML mapping); build with ``infer_contract`` or ``Contract.load``."""

    spec: dict[str, Any]
    path: str = "<contract>"
    lines: dict[tuple[str, ...], int] = field(default_factory=dict, repr=False)

    def to_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(self.spec, sort_keys=False, allow_unicode=True, default_flow_style=None, width=120)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_yaml())

    @classmethod
    def load(cls, path: str | Path) -> Contract:
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{p}: cannot read the contract ({exc.strerror or exc}); check the path.") from exc
        return cls.from_yaml(text, str(p))

    @classmethod
    def from_yaml(cls, text: str, path: str = "<contract>") -> Contract:
        import yaml

        try:
            node = yaml.compose(text, Loader=yaml.SafeLoader)
            spec = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "somewhere"
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise ConfigError(f"{path}: {where}: not valid YAML ({problem}); fix the file.") from exc
        lines: dict[tuple[str, ...], int] = {}
        if node is not None:
            _key_lines(node, (), lines)
        contract = cls(spec=spec if spec is not None else {}, path=path, lines=lines)
        contract._validate()
        return contract

    def _fail(self, keys: tuple[str, ...], message: str) -> ConfigError:
        for i in range(len(keys), 0, -1):
            if keys[:i] in self.lines:
                return ConfigError(f"{self.path}: line {self.lines[keys[:i]]}: {message}")
        return ConfigError(f"{self.path}: {message}")

    def _validate(self) -> None:
        s = self.spec
        if not isinstance(s, dict):
            raise ConfigError(f"{self.path}: line 1: a contract is a mapping of keys (version, label, columns, ...).")
        unknown = sorted(set(map(str, s)) - _TOP_KEYS)
        if unknown:
            raise self._fail((unknown[0],), f"unknown key '{unknown[0]}'; known keys: {', '.join(sorted(_TOP_KEYS))}.")
        if s.get("version") != CONTRACT_VERSION:
            raise self._fail(
                ("version",), f"version must be {CONTRACT_VERSION} (this poisonguard reads contract version 1)."
            )
        cols = s.get("columns")
        if not isinstance(cols, dict) or not cols:
            raise self._fail(("columns",), "'columns' must map each column name to its rules.")
        for col, rules in cols.items():
            key = ("columns", str(col))
            if not isinstance(rules, dict):
                raise self._fail(key, f"column '{col}': rules must be a mapping (type, max_null_rate, ...).")
            bad = sorted(set(map(str, rules)) - _COLUMN_KEYS)
            if bad:
                raise self._fail(
                    (*key, bad[0]),
                    f"column '{col}': unknown rule '{bad[0]}'; known: {', '.join(sorted(_COLUMN_KEYS))}.",
                )
            kind = rules.get("type", "any")
            if kind not in (*COLUMN_TYPES, "any"):
                raise self._fail(
                    (*key, "type"), f"column '{col}': unknown type {kind!r}; use one of {', '.join(COLUMN_TYPES)}, any."
                )
            for rule in ("min", "max"):
                if rule in rules and not _is_number(rules[rule]):
                    raise self._fail((*key, rule), f"column '{col}': '{rule}' must be a number; got {rules[rule]!r}.")
            for rule in ("mean", "std"):
                if rule in rules and not _is_bounds(rules[rule]):
                    raise self._fail(
                        (*key, rule), f"column '{col}': '{rule}' must be [low, high] numbers; got {rules[rule]!r}."
                    )
            if "max_null_rate" in rules and not (
                _is_number(rules["max_null_rate"]) and 0 <= rules["max_null_rate"] <= 1
            ):
                raise self._fail((*key, "max_null_rate"), f"column '{col}': 'max_null_rate' must be between 0 and 1.")
            if "categories" in rules and not isinstance(rules["categories"], list):
                raise self._fail((*key, "categories"), f"column '{col}': 'categories' must be a list of values.")
        label = s.get("label")
        if label is not None:
            if not isinstance(label, dict) or "column" not in label:
                raise self._fail(
                    ("label",), "'label' must be a mapping with a 'column' (and optional classes, balance)."
                )
            balance = label.get("balance") or {}
            if not isinstance(balance, dict) or not all(_is_bounds(b) for b in balance.values()):
                raise self._fail(("label", "balance"), "'label.balance' must map each class to [low, high] shares.")
        ident = s.get("id")
        if ident is not None and (not isinstance(ident, dict) or "column" not in ident):
            raise self._fail(("id",), "'id' must be a mapping with a 'column' (and 'unique: true').")

    def check(self, data: Any, *, name: str | None = None) -> ContractResult:
        """Check a table (path or DataFrame) against this contract; every violation is collected."""
        frame, name = _frame(data, name)
        return _check(self.spec, frame, name)


def _key_lines(node: Any, prefix: tuple[str, ...], out: dict[tuple[str, ...], int]) -> None:
    """1-based line of every mapping key, by its path of keys."""
    import yaml

    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            path = (*prefix, str(k.value))
            out[path] = k.start_mark.line + 1
            _key_lines(v, path, out)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _is_bounds(v: Any) -> bool:
    return isinstance(v, list) and len(v) == 2 and all(_is_number(x) for x in v) and v[0] <= v[1]


def _frame(data: Any, name: str | None) -> tuple[pd.DataFrame, str]:
    if isinstance(data, str | Path):
        return read_table(data), name or str(data)
    if isinstance(data, pd.DataFrame):
        return data.reset_index(drop=True), name or "<DataFrame>"
    raise InputError(f"cannot check an object of type {type(data).__name__}; pass a file path or a DataFrame.")


def infer_contract(data: Any, *, label: str, id: str | None = None, name: str | None = None) -> Contract:
    """What holds in a trusted table, as a contract: types, nulls, ranges, categories, distribution bounds,
    label set and class-share bounds, id uniqueness. Bounds leave room for sampling noise (see the code)."""
    frame, name = _frame(data, name)
    ds = load_dataset(frame, label=label, id=id, name=name)
    n = len(frame)
    columns: dict[str, dict[str, Any]] = {}
    for col in frame.columns:
        if col == ds.label:
            continue
        s = frame[col]
        kind = ds.columns.get(col) or _infer_type(s, col, name) or "any"
        nulls = float(_missing(s).mean())
        rules: dict[str, Any] = {"type": kind, "max_null_rate": _round_sig(min(1.0, nulls + max(0.01, 0.5 * nulls)), 4)}
        if kind == "numeric":
            v = pd.to_numeric(s.astype("string").str.strip() if s.dtype == object else s, errors="coerce")
            v = v.astype("float64").dropna()
            if len(v):
                mean, sd = float(v.mean()), float(v.std(ddof=0))
                rules.update(min=_num(v.min()), max=_num(v.max()))
                # shift bounds: the mean may move by a quarter of a standard deviation, the spread by half again
                rules["mean"] = [_round_sig(mean - 0.25 * sd), _round_sig(mean + 0.25 * sd)]
                rules["std"] = [_round_sig(sd / 1.5), _round_sig(sd * 1.5)]
        elif kind in {"categorical", "boolean"}:
            values = _norm(s).dropna().unique()
            if len(values) <= MAX_CATEGORIES:
                rules["categories"] = sorted(str(v) for v in values)
        columns[str(col)] = rules
    classes = _norm(frame[ds.label])
    shares = classes.value_counts(normalize=True, dropna=True)
    balance = {}
    for cls, share in shares.sort_index().items():
        tol = max(0.02, 0.25 * min(share, 1 - share))
        balance[str(cls)] = [_round_sig(max(0.0, share - tol), 4), _round_sig(min(1.0, share + tol), 4)]
    spec: dict[str, Any] = {
        "version": CONTRACT_VERSION,
        "source": name,
        "rows": n,
        "label": {"column": ds.label, "classes": sorted(balance), "balance": balance},
    }
    if id is not None:
        spec["id"] = {"column": ds.id, "unique": not bool(frame[ds.id].duplicated().any())}
    spec["allow_extra_columns"] = False
    spec["columns"] = columns
    return Contract(spec=spec, path="<inferred>")


def _missing(s: pd.Series) -> np.ndarray:
    m = s.isna().to_numpy(dtype=bool)
    if s.dtype == object or isinstance(s.dtype, pd.StringDtype):
        m = m | s.astype("string").str.strip().fillna("").eq("").to_numpy(dtype=bool)
    return m


def _examples(mask: np.ndarray) -> list[int]:
    return [int(i) for i in np.flatnonzero(mask)[:EXAMPLES]]


def _check(spec: dict[str, Any], frame: pd.DataFrame, name: str) -> ContractResult:
    out: list[Violation] = []
    n = len(frame)

    def add(rule: str, column: str | None, mask: np.ndarray | None, message: str, count: int | None = None) -> None:
        c = int(mask.sum()) if mask is not None else int(count or 0)
        out.append(Violation(rule, column, c, _examples(mask) if mask is not None else [], message))

    cols: dict[str, dict[str, Any]] = spec["columns"]
    label = (spec.get("label") or {}).get("column")
    expected = set(cols) | ({label} if label else set())
    missing = [c for c in expected if c not in frame.columns]
    for c in sorted(missing):
        add("missing_column", c, None, f"column '{c}' is missing", count=1)
    if not spec.get("allow_extra_columns", True):
        for c in sorted(set(map(str, frame.columns)) - expected - {(spec.get("id") or {}).get("column")}):
            add("unexpected_column", c, None, f"column '{c}' is not in the contract", count=1)
    for col, rules in cols.items():
        if col not in frame.columns:
            continue
        s = frame[col]
        null = _missing(s)
        rate = float(null.mean()) if n else 0.0
        if "max_null_rate" in rules and rate > rules["max_null_rate"]:
            add(
                "null_rate",
                col,
                null,
                f"{rate:.2%} of the cells are empty; at most {rules['max_null_rate']:.2%} allowed",
            )
        kind = rules.get("type", "any")
        if kind == "numeric":
            v = (
                pd.to_numeric(
                    s.astype("string").str.strip() if not pd.api.types.is_numeric_dtype(s.dtype) else s, errors="coerce"
                )
                .astype("float64")
                .to_numpy(na_value=np.nan)
            )
            bad = np.isnan(v) & ~null
            if bad.any():
                add("type", col, bad, f"{int(bad.sum())} values are not numbers (first {s[bad].iloc[0]!r})")
            with np.errstate(invalid="ignore"):
                if "min" in rules:
                    low = v < rules["min"]
                    if low.any():
                        add("below_min", col, low, f"values below the minimum {rules['min']} (lowest {np.nanmin(v):g})")
                if "max" in rules:
                    high = v > rules["max"]
                    if high.any():
                        add(
                            "above_max",
                            col,
                            high,
                            f"values above the maximum {rules['max']} (highest {np.nanmax(v):g})",
                        )
            finite = v[~np.isnan(v)]
            if len(finite):
                for rule, value in (("mean", float(finite.mean())), ("std", float(finite.std()))):
                    lo, hi = rules.get(rule, [-math.inf, math.inf])
                    if not lo <= value <= hi:
                        add(rule, col, None, f"{rule} {value:.4g} is outside [{lo:g}, {hi:g}]", count=len(finite))
        elif kind == "boolean":
            text = _norm(s).str.lower()
            bad = (~text.isin(_BOOL_TEXT) & text.notna()).to_numpy(dtype=bool)
            if bad.any():
                add("type", col, bad, f"{int(bad.sum())} values are not true/false (first {s[bad].iloc[0]!r})")
        elif kind == "datetime" and not pd.api.types.is_datetime64_any_dtype(s.dtype):
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                parsed = pd.to_datetime(s.astype("string").str.strip(), errors="coerce", format="mixed")
            bad = parsed.isna().to_numpy(dtype=bool) & ~null
            if bad.any():
                add("type", col, bad, f"{int(bad.sum())} values are not dates (first {s[bad].iloc[0]!r})")
        if "categories" in rules:
            allowed = pd.Index([str(c) for c in rules["categories"]])
            text = _norm(s)
            bad = (~text.isin(allowed) & text.notna()).to_numpy(dtype=bool)
            if bad.any():
                shown = ", ".join(repr(v) for v in pd.unique(text[bad])[:5])
                add("category", col, bad, f"{int(bad.sum())} values outside the allowed categories ({shown})")
    if label and label in frame.columns:
        lab = spec["label"]
        y = _norm(frame[label])
        null = y.isna().to_numpy(dtype=bool)
        if null.any():
            add("missing_label", label, null, f"{int(null.sum())} rows have no label")
        if lab.get("classes") is not None:
            allowed = pd.Index([str(c) for c in lab["classes"]])
            bad = (~y.isin(allowed) & y.notna()).to_numpy(dtype=bool)
            if bad.any():
                shown = ", ".join(repr(v) for v in pd.unique(y[bad])[:5])
                add("label_set", label, bad, f"{int(bad.sum())} rows carry labels outside the label set ({shown})")
        shares = y.value_counts(normalize=True, dropna=True)
        for cls, (lo, hi) in (lab.get("balance") or {}).items():
            share = float(shares.get(str(cls), 0.0))
            if not lo <= share <= hi:
                rows = (y == str(cls)).fillna(False).to_numpy(dtype=bool)
                out.append(
                    Violation(
                        "class_balance",
                        label,
                        int(rows.sum()),
                        [],
                        f"class '{cls}' holds {share:.2%} of the rows; the contract allows {lo:.2%} to {hi:.2%}",
                    )
                )
    ident = spec.get("id")
    if ident and ident.get("unique") and ident["column"] in frame.columns:
        dup = frame[ident["column"]].duplicated(keep=False).to_numpy(dtype=bool)
        if dup.any():
            add("id_unique", ident["column"], dup, f"{int(dup.sum())} rows share an id with another row")
    elif ident and ident["column"] not in frame.columns and ident["column"] not in missing:
        add("missing_column", ident["column"], None, f"id column '{ident['column']}' is missing", count=1)
    return ContractResult(violations=out, rows=n, name=name)


def check_contract(data: Any, contract: Contract | str | Path, *, name: str | None = None) -> ContractResult:
    """Check ``data`` against a contract (a ``Contract`` or a YAML file)."""
    if not isinstance(contract, Contract):
        contract = Contract.load(contract)
    return contract.check(data, name=name)


__all__ = ["Contract", "ContractResult", "Violation", "check_contract", "infer_contract"]
