"""Self-contained HTML reports of a scan or a red-team run (``scan --html``, ``redteam --html``, ``report``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import ConfigError, InputError
from . import evaluation as _evaluation
from . import html as _html
from . import monitor as _monitor
from . import redteam as _redteam
from . import scan as _scan
from .scan import ScanReportData


def scan_html(result: Any) -> str:
    """The HTML page of a ``ScanResult`` or of a saved scan directory."""
    data = ScanReportData.load(result) if isinstance(result, str | Path) else ScanReportData.from_result(result)
    return _scan.render(data)


def redteam_html(result: Any) -> str:
    """The HTML page of a ``RedteamResult`` or of a saved ``redteam --json`` file."""
    data = (
        _redteam.load(result)
        if isinstance(result, str | Path)
        else json.loads(json.dumps(result.to_dict(), default=float))
    )
    return _redteam.render(data)


def evaluation_html(result: Any) -> str:
    """The HTML page of an ``EvaluationResult`` or of a saved ``evaluate --json`` file."""
    if isinstance(result, str | Path):
        return _evaluation.render(_evaluation.load(result))
    return _evaluation.render(json.loads(json.dumps(result.to_dict(), default=float)))


def monitor_html(result: dict[str, Any]) -> str:
    """The HTML drift report of a ``poisonguard monitor`` result (its JSON as a dict)."""
    return _monitor.render(result)


def saved_html(path: str | Path) -> str:
    """The page of whatever was saved at ``path``: a scan directory, or a red-team or evaluation JSON file (or a
    directory holding ``redteam.json``)."""
    p = Path(path)
    if p.is_dir():
        if (p / "summary.json").is_file():
            return scan_html(p)
        if (p / "redteam.json").is_file():
            return redteam_html(p / "redteam.json")
        raise InputError(
            f"{p}: holds no saved result (no summary.json from 'scan --out', no redteam.json); pass a scan's "
            "--out directory or a 'redteam --json' file."
        )
    if p.is_file():
        # one read: the file says which kind of result it is
        doc = _html.read_json(p, "redteam|evaluate|monitor")
        if _evaluation.is_evaluation(doc):
            return _evaluation.render(doc)
        if isinstance(doc, dict) and "drift" in doc and "alerts" in doc:
            return _monitor.render(doc)
        return _redteam.render(_redteam.check(doc, p))
    raise InputError(f"{p}: no such file or directory.")


def write(html_text: str, out: str | Path, *, inputs: tuple[Path, ...] = ()) -> Path:
    """Write a page to a new file; refuse to overwrite an input."""
    target = Path(out)
    for p in inputs:
        if p.exists() and target.exists() and target.resolve() == Path(p).resolve():
            raise ConfigError(f"--html {target}: would overwrite the input file {p}; choose another path.")
    if target.is_dir():
        raise ConfigError(f"--html {target}: is a directory; pass a file name such as report.html.")
    try:
        target.write_text(html_text, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"--html {target}: cannot write the report ({exc.strerror or exc}).") from exc
    return target


__all__ = ["ScanReportData", "evaluation_html", "monitor_html", "redteam_html", "saved_html", "scan_html", "write"]
