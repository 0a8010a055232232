"""The CI gate's policy: which scan, red-team and evaluation results a pipeline accepts.

A policy lives in ``poisonguard.yaml`` or under ``[tool.poisonguard]`` in ``pyproject.toml``. Every key is
checked on load; a mistake is reported with the file and line (``poisonguard.yaml, line 7: ...``), because a
gate that silently ignores a misspelled rule passes everything.

    version: 1
    scan:
      allowed_verdicts: [clean]              # or [clean, suspicious]
      max_flagged_fraction: 0.02             # share of rows flagged
      max_estimated_poisoned_fraction: 0.01  # the scan's estimate (its lower bound must stay under it)
      max_triggers: 0                        # backdoor triggers discovered
      sources:                               # per-source limits (key: a source value, or "default")
        default: {max_flagged_fraction: 0.05}
        vendor_b: {max_flagged_fraction: 0.01}
      forbid_worse_sources: true             # no source flagged significantly more than the rest
    contracts: [contract.yaml]               # data contracts the data must hold (poisonguard contract check)
    redteam:
      min_poison_budget: 0.05                # every attack needs at least this share of poison to do damage
      min_flag_recall: 0.8                   # the scan catches this share of the poison...
      recall_from_rate: 0.05                 # ...at rates from this one up
      max_sanitized_asr: 0.1                 # a backdoor's success after removing the flagged rows
    evaluation:
      max_metric_drop: 0.01                  # a significant drop of accuracy, F1... against the baseline model
      max_slice_drop: 0.05                   # a significant drop in one slice
      max_ece_increase: 0.02                 # calibration
      max_asr: 0.05                          # a discovered trigger's success on the new model
"""

from __future__ import annotations

import difflib
import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError

VERDICTS = ("clean", "suspicious", "poisoned")
POLICY_FILES = ("poisonguard.yaml", "poisonguard.yml")

_FRACTION = "a number between 0 and 1"
SCHEMA: dict[str, Any] = {
    "version": ("int", "the policy format version, 1"),
    "scan": {
        "allowed_verdicts": ("verdicts", "a list of verdicts: clean, suspicious, poisoned"),
        "max_flagged_fraction": ("fraction", _FRACTION),
        "max_estimated_poisoned_fraction": ("fraction", _FRACTION),
        "max_triggers": ("count", "a whole number of triggers, 0 or more"),
        "forbid_worse_sources": ("bool", "true or false"),
        "sources": ("sources", "a mapping of source -> {max_flagged_fraction: ...}"),
    },
    "contracts": ("paths", "a list of contract files"),
    "redteam": {
        "min_poison_budget": ("fraction", _FRACTION),
        "min_flag_recall": ("fraction", _FRACTION),
        "recall_from_rate": ("fraction", _FRACTION),
        "min_detection_auroc": ("fraction", _FRACTION),
        "max_sanitized_asr": ("fraction", _FRACTION),
    },
    "evaluation": {
        "max_metric_drop": ("fraction", _FRACTION),
        "max_slice_drop": ("fraction", _FRACTION),
        "max_ece_increase": ("fraction", _FRACTION),
        "max_asr": ("fraction", _FRACTION),
    },
}
SOURCE_KEYS = {"max_flagged_fraction": ("fraction", _FRACTION)}


@dataclass(frozen=True)
class Policy:
    """A validated policy; ``origin`` names where it came from (shown in reports and errors)."""

    scan: dict[str, Any] = field(default_factory=dict)
    contracts: list[str] = field(default_factory=list)
    redteam: dict[str, Any] = field(default_factory=dict)
    evaluation: dict[str, Any] = field(default_factory=dict)
    origin: str = "<policy>"
    base_dir: Path = field(default_factory=Path.cwd)

    @property
    def empty(self) -> bool:
        return not (self.scan or self.contracts or self.redteam or self.evaluation)


def find_policy(start: str | Path = ".") -> Path | None:
    """``poisonguard.yaml`` in ``start``, else a ``pyproject.toml`` there with a ``[tool.poisonguard]`` table."""
    d = Path(start)
    for name in POLICY_FILES:
        if (d / name).is_file():
            return d / name
    pyproject = d / "pyproject.toml"
    if pyproject.is_file():
        try:
            doc = tomllib.loads(pyproject.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError):
            return pyproject  # load_policy reports the error with its line
        if "poisonguard" in doc.get("tool", {}):
            return pyproject
    return None


def load_policy(path: str | Path) -> Policy:
    """Read and validate a policy file (YAML, or TOML for ``pyproject.toml`` / ``*.toml``)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(
            f"{p}: no such policy file; write a poisonguard.yaml (see 'poisonguard gate --help')."
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: cannot read the policy file ({exc}).") from exc
    if p.suffix == ".toml":
        doc, locate = _load_toml(p, text)
    else:
        doc, locate = _load_yaml(p, text)
    if doc is None:
        doc = {}
    if not isinstance(doc, Mapping):
        raise ConfigError(f"{p}, line {locate(())}: the policy must be a mapping of sections (scan, redteam, ...).")
    _validate(doc, SCHEMA, (), p, locate)
    version = doc.get("version", 1)
    if version != 1:
        raise ConfigError(
            f"{p}, line {locate(('version',))}: unknown policy version {version!r}; this poisonguard reads version 1."
        )
    return Policy(
        scan=dict(doc.get("scan") or {}),
        contracts=[str(c) for c in doc.get("contracts") or []],
        redteam=dict(doc.get("redteam") or {}),
        evaluation=dict(doc.get("evaluation") or {}),
        origin=str(p),
        base_dir=p.resolve().parent,
    )


Locator = Any  # Callable[[tuple[str, ...]], int]: the line of a key path, 1-based


def _load_yaml(p: Path, text: str) -> tuple[Any, Locator]:
    import yaml

    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        doc = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else "?"
        raise ConfigError(f"{p}, line {line}: not valid YAML ({exc.problem or exc}); fix the syntax there.") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML ({exc}).") from exc

    def locate(path: tuple[str, ...]) -> int:
        cur = node
        line = (cur.start_mark.line + 1) if cur is not None else 1
        for key in path:
            if cur is None or not isinstance(cur, yaml.MappingNode):
                break
            for k, v in cur.value:
                if str(k.value) == key:
                    line, cur = k.start_mark.line + 1, v
                    break
            else:
                break
        return line

    return doc, locate


def _load_toml(p: Path, text: str) -> tuple[Any, Locator]:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"line (\d+)", str(exc))
        raise ConfigError(f"{p}, line {m.group(1) if m else '?'}: not valid TOML ({exc}).") from exc
    lines = text.splitlines()
    prefix: tuple[str, ...] = ()
    if p.name == "pyproject.toml":
        prefix = ("tool", "poisonguard")
        doc = doc.get("tool", {}).get("poisonguard")
        if doc is None:
            raise ConfigError(f"{p}: has no [tool.poisonguard] table; add one or pass a poisonguard.yaml.")

    def locate(path: tuple[str, ...]) -> int:
        # the line of the last key of the path, searched after the header of its table (TOML keeps no positions)
        full = prefix + path
        for cut in range(len(full), -1, -1):
            header = ".".join(full[:cut])
            start = 0
            if header:
                pat = re.compile(rf"^\s*\[{re.escape(header)}\]\s*$")
                hits = [i for i, line in enumerate(lines) if pat.match(line)]
                if not hits:
                    continue
                start = hits[0]
            if cut == len(full):
                return start + 1
            key = full[cut]
            pat_key = re.compile(rf"^\s*{re.escape(key)}\s*=|[{{,]\s*{re.escape(key)}\s*=")
            for i in range(start, len(lines)):
                if i > start and lines[i].lstrip().startswith("[") and header:
                    break
                if pat_key.search(lines[i]):
                    return i + 1
            return start + 1
        return 1

    return doc, locate


def _validate(
    doc: Mapping[str, Any], schema: Mapping[str, Any], path: tuple[str, ...], p: Path, locate: Locator
) -> None:
    where = ".".join(path) or "the policy"
    for key, value in doc.items():
        kp = (*path, str(key))
        if key not in schema:
            close = difflib.get_close_matches(str(key), list(schema), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else f"; known keys in {where}: {', '.join(schema)}"
            raise ConfigError(f"{p}, line {locate(kp)}: unknown key '{key}' in {where}{hint}.")
        rule = schema[key]
        if isinstance(rule, dict):
            if value is None:
                continue
            if not isinstance(value, Mapping):
                raise ConfigError(
                    f"{p}, line {locate(kp)}: '{'.'.join(kp)}' must be a mapping of rules; got {value!r}."
                )
            _validate(value, rule, kp, p, locate)
            continue
        kind, meaning = rule
        if not _ok(kind, value):
            raise ConfigError(f"{p}, line {locate(kp)}: '{'.'.join(kp)}' must be {meaning}; got {value!r}.")
        if kind == "sources":
            for source, limits in value.items():
                sp = (*kp, str(source))
                if not isinstance(limits, Mapping):
                    raise ConfigError(
                        f"{p}, line {locate(sp)}: limits of source '{source}' must be a mapping such as {{max_flagged_fraction: 0.05}}."
                    )
                _validate(limits, SOURCE_KEYS, sp, p, locate)


def _ok(kind: str, v: Any) -> bool:
    if kind == "fraction":
        return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and 0 <= v <= 1
    if kind == "count":
        return isinstance(v, int) and not isinstance(v, bool) and v >= 0
    if kind == "int":
        return isinstance(v, int) and not isinstance(v, bool)
    if kind == "bool":
        return isinstance(v, bool)
    if kind == "verdicts":
        return isinstance(v, list) and bool(v) and all(x in VERDICTS for x in v)
    if kind == "paths":
        return isinstance(v, list) and all(isinstance(x, str) and x for x in v)
    if kind == "sources":
        return isinstance(v, Mapping)
    raise AssertionError(kind)


__all__ = ["POLICY_FILES", "VERDICTS", "Policy", "find_policy", "load_policy"]
