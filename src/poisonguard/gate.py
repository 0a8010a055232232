"""The CI gate: judge scan, contract, red-team and evaluation results against a policy.

Every configured rule becomes one check with a plain message, passed or broken; a rule whose input is missing
(a red-team budget but no red-team result) is broken, never skipped, so a pipeline cannot pass by forgetting a
step. Results go out as a terminal list, JUnit XML (one test case per rule) and SARIF 2.1.0 (code-scanning UIs).
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import __version__
from .policy import VERDICTS, Policy

ContractChecker = Callable[[Path, Path], tuple[bool, str, list[str]]]


def check_contract_rule(data: Path, contract: Path) -> tuple[bool, str, list[str]]:
    """The contract rule: ``data`` checked against the contract file; every violation becomes a detail line."""
    from .contracts import check_contract
    from .io import read_table

    result = check_contract(read_table(data), contract, name=str(data))
    details = [
        f"{v.rule}"
        + (f" on column '{v.column}'" if v.column else "")
        + f": {v.message}"
        + (f" (rows {', '.join(map(str, v.examples[:5]))})" if v.examples else "")
        for v in result.violations
    ]
    message = (
        f"{data} holds the contract"
        if result.ok
        else f"{len(result.violations)} violation(s) of the contract in {data}"
    )
    return result.ok, message, details


@dataclass(frozen=True)
class Check:
    """One rule of the policy, judged."""

    rule: str  # e.g. "scan.max_flagged_fraction"
    passed: bool
    message: str
    limit: Any = None
    value: Any = None
    details: list[str] = field(default_factory=list)

    @property
    def section(self) -> str:
        return self.rule.split(".", 1)[0]


@dataclass(frozen=True)
class GateResult:
    checks: list[Check]
    policy: str
    inputs: dict[str, str] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def broken(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "policy": self.policy,
            "inputs": self.inputs,
            "checks": [{**asdict(c), "section": c.section} for c in self.checks],
        }


def evaluate_gate(
    policy: Policy,
    *,
    scan: Mapping[str, Any] | None = None,
    data: str | Path | None = None,
    redteam: Mapping[str, Any] | None = None,
    evaluation: Mapping[str, Any] | None = None,
    contract_checker: ContractChecker | None = check_contract_rule,
    inputs: Mapping[str, str] | None = None,
) -> GateResult:
    """Judge the given results; ``scan`` is a scan's ``to_dict()`` (summary.json), ``redteam`` and ``evaluation``
    the JSON of those commands, ``data`` the data file the contracts are checked on."""
    checks: list[Check] = []
    if policy.scan:
        checks += _scan_checks(policy.scan, scan)
    if policy.contracts:
        checks += _contract_checks(policy, data, contract_checker)
    if policy.redteam:
        checks += _redteam_checks(policy.redteam, redteam)
    if policy.evaluation:
        checks += _evaluation_checks(policy.evaluation, evaluation)
    return GateResult(checks=checks, policy=policy.origin, inputs=dict(inputs or {}))


def _missing(rules: Mapping[str, Any], section: str, what: str) -> list[Check]:
    return [
        Check(f"{section}.{name}", False, f"no {what} was given, so this rule cannot be checked", limit=limit)
        for name, limit in rules.items()
    ]


def _scan_checks(rules: Mapping[str, Any], s: Mapping[str, Any] | None) -> list[Check]:
    if s is None:
        return _missing(rules, "scan", "scan result (--scan DIR, or run 'poisonguard scan --policy')")
    out: list[Check] = []
    verdict = str(s.get("verdict"))
    if "allowed_verdicts" in rules:
        allowed = list(rules["allowed_verdicts"])
        ok = verdict in allowed
        out.append(
            Check(
                "scan.allowed_verdicts",
                ok,
                f"verdict '{verdict}'" + (" is allowed" if ok else f" is not among the allowed ({', '.join(allowed)})"),
                allowed,
                verdict,
                [str(e) for e in s.get("evidence", [])] if not ok else [],
            )
        )
    if "max_flagged_fraction" in rules:
        lim, v = float(rules["max_flagged_fraction"]), float(s.get("flagged_fraction", 0.0))
        out.append(
            Check(
                "scan.max_flagged_fraction",
                v <= lim,
                f"{v:.2%} of the rows flagged ({s.get('flagged', '?')} of {s.get('rows', '?')}); the limit is {lim:.2%}",
                lim,
                v,
            )
        )
    if "max_estimated_poisoned_fraction" in rules:
        lim = float(rules["max_estimated_poisoned_fraction"])
        est = s.get("estimated_poisoned_fraction") or {}
        v = float(est.get("value", 0.0))
        out.append(
            Check(
                "scan.max_estimated_poisoned_fraction",
                v <= lim,
                f"estimated poisoned fraction {v:.2%} (95% interval {float(est.get('low', 0)):.2%} to "
                f"{float(est.get('high', 0)):.2%}); the limit is {lim:.2%}",
                lim,
                v,
            )
        )
    if "max_triggers" in rules:
        lim = int(rules["max_triggers"])
        triggers = s.get("triggers") or []
        out.append(
            Check(
                "scan.max_triggers",
                len(triggers) <= lim,
                f"{len(triggers)} backdoor trigger(s) found; at most {lim} allowed",
                lim,
                len(triggers),
                [str(t.get("description", t)) for t in triggers],
            )
        )
    sources = s.get("by_source") or []
    if "sources" in rules:
        limits = dict(rules["sources"])
        default = (limits.get("default") or {}).get("max_flagged_fraction")
        named = {str(k): v for k, v in limits.items() if k != "default"}
        if not sources:
            out.append(
                Check(
                    "scan.sources",
                    False,
                    "the policy sets per-source limits but the scan has no source column (scan --source COL)",
                    limits,
                )
            )
        else:
            bad, checked = [], 0
            present = {str(r.get("source")) for r in sources}
            for r in sources:
                src = str(r.get("source"))
                lim = (named.get(src) or {}).get("max_flagged_fraction", default)
                if lim is None:
                    continue
                checked += 1
                v = float(r.get("flagged_fraction", 0.0))
                if v > float(lim):
                    bad.append(
                        f"source '{src}': {v:.2%} of its {int(r.get('rows', 0)):,} rows flagged (limit {float(lim):.2%})"
                    )
            absent = sorted(set(named) - present)
            details = bad + [f"source '{a}' named in the policy is not in the data" for a in absent]
            out.append(
                Check(
                    "scan.sources",
                    not bad,
                    f"{len(bad)} of {checked} sources over their flagged-fraction limit"
                    if bad
                    else f"all {checked} limited sources within their limits",
                    limits,
                    len(bad),
                    details,
                )
            )
    if rules.get("forbid_worse_sources"):
        worse = [str(r.get("source")) for r in sources if r.get("worse_than_rest")]
        out.append(
            Check(
                "scan.forbid_worse_sources",
                not worse,
                f"{len(worse)} source(s) flagged significantly more than the rest"
                if worse
                else "no source is flagged more than the rest",
                True,
                worse,
                [f"source '{w}'" for w in worse],
            )
        )
    return out


def _contract_checks(policy: Policy, data: str | Path | None, checker: ContractChecker | None) -> list[Check]:
    out = []
    for c in policy.contracts:
        rule = f"contracts.{c}"
        path = Path(c) if Path(c).is_absolute() else policy.base_dir / c
        if data is None:
            out.append(
                Check(rule, False, "no data file was given (--data FILE), so the contract cannot be checked", str(path))
            )
        elif checker is None:
            out.append(Check(rule, False, "data contracts are not available in this poisonguard", str(path)))
        elif not path.is_file():
            out.append(Check(rule, False, f"the contract file {path} does not exist", str(path)))
        else:
            ok, message, details = checker(Path(data), path)
            out.append(Check(rule, ok, message, str(path), len(details), details))
    return out


def _redteam_checks(rules: Mapping[str, Any], r: Mapping[str, Any] | None) -> list[Check]:
    if r is None:
        return [
            c
            for c in _missing(rules, "redteam", "red-team result (--redteam FILE)")
            if c.rule != "redteam.recall_from_rate"
        ]
    out: list[Check] = []
    runs = list(r.get("runs") or [])
    if "min_poison_budget" in rules:
        lim = float(rules["min_poison_budget"])
        bad = [
            f"{b['attack']}: damage from {float(b['budget']):.1%} poison (worst damage {float(b.get('max_damage') or 0):.1%})"
            for b in r.get("budget") or []
            if b.get("budget") is not None and float(b["budget"]) < lim
        ]
        out.append(
            Check(
                "redteam.min_poison_budget",
                not bad,
                f"{len(bad)} attack(s) do damage with less than {lim:.1%} of the training rows poisoned"
                if bad
                else f"no attack does damage below {lim:.1%} poison",
                lim,
                len(bad),
                bad,
            )
        )
    start = float(rules.get("recall_from_rate", 0.05))
    for key, column, what in (
        ("min_flag_recall", "flag_recall", "share of the poison flagged"),
        ("min_detection_auroc", "detection_auroc", "detection AUROC"),
    ):
        if key not in rules:
            continue
        lim = float(rules[key])
        judged = [x for x in runs if x.get(column) is not None and float(x.get("rate", 0)) >= start]
        bad = [
            f"{x['attack']} at {float(x['rate']):.0%}: {what} {float(x[column]):.3g}"
            for x in judged
            if float(x[column]) < lim
        ]
        out.append(
            Check(
                f"redteam.{key}",
                bool(judged) and not bad,
                (
                    f"{len(bad)} of {len(judged)} runs at rates from {start:.0%} below {lim:.3g}"
                    if judged
                    else f"no run at a rate from {start:.0%} to judge"
                ),
                lim,
                len(bad),
                bad,
            )
        )
    if "max_sanitized_asr" in rules:
        lim = float(rules["max_sanitized_asr"])
        judged = [x for x in runs if x.get("sanitized_asr") is not None]
        bad = [
            f"{x['attack']} at {float(x['rate']):.0%}: {float(x['sanitized_asr']):.1%} after sanitizing"
            for x in judged
            if float(x["sanitized_asr"]) > lim
        ]
        out.append(
            Check(
                "redteam.max_sanitized_asr",
                not bad,
                f"{len(bad)} of {len(judged)} backdoor runs still succeed above {lim:.1%} after sanitizing"
                if bad
                else f"{len(judged)} backdoor runs at or below {lim:.1%} after sanitizing",
                lim,
                len(bad),
                bad,
            )
        )
    return out


# evaluation regressions: rule name in the policy -> (regression kind, worse = baseline - new, or new - baseline)
_EVAL_RULES = {
    "max_metric_drop": ("metric_drop", "drop"),
    "max_slice_drop": ("slice_drop", "drop"),
    "max_ece_increase": ("calibration", "rise"),
}


def _evaluation_checks(rules: Mapping[str, Any], e: Mapping[str, Any] | None) -> list[Check]:
    if e is None:
        return _missing(rules, "evaluation", "evaluation result (--evaluation FILE from 'poisonguard evaluate --json')")
    regs = list(e.get("regressions") or [])
    out = []
    for key, (kind, direction) in _EVAL_RULES.items():
        if key not in rules:
            continue
        lim = float(rules[key])
        bad = []
        for g in regs:
            if g.get("rule") != kind or not g.get("significant", True):
                continue
            base, new = g.get("baseline"), g.get("new")
            if base is None or new is None:
                continue
            # evaluate's records carry "drop" (positive = worse, whichever way the metric points)
            worse = (
                float(g["drop"])
                if g.get("drop") is not None
                else (float(base) - float(new) if direction == "drop" else float(new) - float(base))
            )
            if worse > lim:
                where = f" in slice {g['slice']}" if g.get("slice") else ""
                bad.append(
                    f"{g.get('metric', kind)}{where}: {float(base):.4g} -> {float(new):.4g} (p = {float(g.get('p_value') or 0):.2g})"
                )
        out.append(
            Check(
                f"evaluation.{key}",
                not bad,
                f"{len(bad)} significant regression(s) larger than {lim:.3g}"
                if bad
                else f"no significant regression larger than {lim:.3g}",
                lim,
                len(bad),
                bad,
            )
        )
    if "max_asr" in rules:
        lim = float(rules["max_asr"])
        bad = [
            f"{g.get('metric', 'trigger')}: attack success rate {float(g['new']):.1%}"
            for g in regs
            if g.get("rule") == "asr" and g.get("new") is not None and float(g["new"]) > lim
        ]
        out.append(
            Check(
                "evaluation.max_asr",
                not bad,
                f"{len(bad)} trigger(s) succeed above {lim:.1%}" if bad else f"no trigger succeeds above {lim:.1%}",
                lim,
                len(bad),
                bad,
            )
        )
    return out


# --- outputs ----------------------------------------------------------------------------------------------------


def write_junit(result: GateResult, path: str | Path) -> Path:
    """JUnit XML: one test case per rule, a ``failure`` for each broken one (CI systems show these natively)."""
    suite = ET.Element(
        "testsuite",
        name="poisonguard gate",
        tests=str(len(result.checks)),
        failures=str(len(result.broken)),
        errors="0",
        skipped="0",
    )
    props = ET.SubElement(suite, "properties")
    ET.SubElement(props, "property", name="policy", value=result.policy)
    for k, v in result.inputs.items():
        ET.SubElement(props, "property", name=k, value=str(v))
    for c in result.checks:
        case = ET.SubElement(suite, "testcase", classname=f"poisonguard.{c.section}", name=c.rule, time="0")
        if not c.passed:
            fail = ET.SubElement(case, "failure", message=c.message, type="PolicyViolation")
            fail.text = "\n".join([c.message, *c.details])
        else:
            ET.SubElement(case, "system-out").text = c.message
    root = ET.Element(
        "testsuites", name="poisonguard", tests=suite.get("tests", "0"), failures=suite.get("failures", "0")
    )
    root.append(suite)
    ET.indent(root)
    out = Path(path)
    ET.ElementTree(root).write(out, encoding="utf-8", xml_declaration=True)
    return out


def write_sarif(
    result: GateResult,
    path: str | Path,
    *,
    data: str | Path | None = None,
    flagged_rows: Sequence[Mapping[str, Any]] = (),
    header_lines: int = 1,
) -> Path:
    """SARIF 2.1.0: a result per broken rule, plus a note per flagged row at its line of the data file.

    ``header_lines``: lines before the first data row (1 for a CSV with a header), so a row's line is
    ``row + header_lines + 1``.
    """
    rule_ids = sorted({c.rule for c in result.checks} | ({"scan.flagged_row"} if flagged_rows else set()))
    rules = [
        {
            "id": rid,
            "name": rid.replace(".", "_"),
            "shortDescription": {
                "text": "a flagged training row" if rid == "scan.flagged_row" else f"policy rule {rid}"
            },
            "helpUri": "https://github.com/poisonguard/poisonguard#ci-gate",
        }
        for rid in rule_ids
    ]
    artifact = Path(data).as_posix() if data is not None else result.policy
    results = []
    for c in result.broken:
        results.append(
            {
                "ruleId": c.rule,
                "ruleIndex": rule_ids.index(c.rule),
                "level": "error",
                "message": {"text": "; ".join([c.message, *c.details[:20]])},
                "locations": [{"physicalLocation": {"artifactLocation": {"uri": artifact}}}],
            }
        )
    for r in flagged_rows:
        line = int(r["row"]) + header_lines + 1
        results.append(
            {
                "ruleId": "scan.flagged_row",
                "ruleIndex": rule_ids.index("scan.flagged_row"),
                "level": "warning",
                "message": {
                    "text": f"row {int(r['row'])} flagged (score {float(r['score']):.4f}): {r.get('reasons', '')}"
                },
                "locations": [
                    {"physicalLocation": {"artifactLocation": {"uri": artifact}, "region": {"startLine": line}}}
                ],
            }
        )
    doc = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "poisonguard",
                        "version": __version__,
                        "informationUri": "https://github.com/poisonguard/poisonguard",
                        "rules": rules,
                    }
                },
                "results": results,
            }
        ],
    }
    out = Path(path)
    out.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return out


__all__ = ["VERDICTS", "Check", "GateResult", "evaluate_gate", "write_junit", "write_sarif"]
