"""The ``poisonguard`` command line: parse, call the API, print, map errors to exit codes.

Exit codes: 0 when the verdict is below the ``--fail-on`` level, 1 when it is at or above it, 2 for a usage
or input error (``error: <message>`` on stderr, no traceback unless ``--debug``), 3 for an internal error.
"""

from __future__ import annotations

import sys
import traceback
import warnings
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from typer.core import TyperGroup

from . import __version__
from .errors import ConfigError, PoisonguardError
from .result import ScanResult

VERDICT_COLOURS = {"clean": "green", "suspicious": "yellow", "poisoned": "red"}
VERDICT_RANK = {"clean": 0, "suspicious": 1, "poisoned": 2}
OUTPUT_FILES = ("rows.csv", "flagged.csv", "summary.json", "review.csv")
EXIT_USAGE = 2
EXIT_INTERNAL = 3
_DEBUG_KEY = "poisonguard.debug"


class FailOn(StrEnum):
    suspicious = "suspicious"
    poisoned = "poisoned"
    never = "never"


class _GuardedGroup(TyperGroup):
    """Catches every error once, at the top: ``error: <message>`` on stderr; a traceback only with --debug."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except PoisonguardError as exc:
            _report(ctx, f"error: {exc}", exc)
            raise typer.Exit(EXIT_USAGE) from None
        except (typer.Exit, typer.Abort, typer.TyperException):  # click's exits and usage errors (exit 2)
            raise
        except Exception as exc:
            _report(
                ctx,
                f"error: internal error ({type(exc).__name__}: {exc}); this is a bug in poisonguard. "
                "Rerun with --debug to see the traceback and please report it.",
                exc,
            )
            raise typer.Exit(EXIT_INTERNAL) from None


def _report(ctx: Any, message: str, exc: BaseException) -> None:
    if ctx.meta.get(_DEBUG_KEY):
        traceback.print_exception(exc, file=sys.stderr)
    print(message, file=sys.stderr)
    sys.stderr.flush()


app = typer.Typer(
    cls=_GuardedGroup,
    name="poisonguard",
    help="Find poisoned rows in training data: flipped labels, backdoor triggers, floods of near-copies.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"poisonguard {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version_callback, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """Find poisoned rows in training data: flipped labels, backdoor triggers, floods of near-copies."""


# ----------------------------------------------------------------------------------------------- scanning


def _parse_types(specs: list[str]) -> dict[str, str]:
    types: dict[str, str] = {}
    for spec in specs:
        col, sep, kind = spec.rpartition("=")
        if not sep or not col.strip() or not kind.strip():
            raise ConfigError(f"--type expects COL=KIND (for example --type zip_code=categorical); got {spec!r}.")
        types[col.strip()] = kind.strip().lower()
    return types


def _prepare_out(out: Path, *, force: bool, inputs: tuple[Path, ...] = ()) -> None:
    """Refuse a non-empty ``out`` without ``force`` or one holding an input; create it when missing."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: exists and is not a directory; pass a directory for the results.")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise ConfigError(
            f"--out {out}: the directory is not empty; pass --force to overwrite the result files in it "
            f"({', '.join(OUTPUT_FILES)}), or choose another directory."
        )
    targets = {(out / f).resolve() for f in OUTPUT_FILES}
    for p in inputs:
        if p.resolve() in targets:
            raise ConfigError(
                f"--out {out}: writing the results there would overwrite the input file {p}; choose another directory."
            )
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--out {out}: cannot create the directory ({exc.strerror or exc}).") from exc


def run_scan(
    data: Path,
    *,
    label: str,
    console: Console,
    source: str | None = None,
    id: str | None = None,
    exclude: tuple[str, ...] = (),
    types: dict[str, str] | None = None,
    out: Path | None = None,
    force: bool = False,
    fpr: float = 0.01,
    seed: int = 0,
    canaries: bool = False,
    quiet: bool = False,
    encoding: str = "utf-8",
    top: int = 10,
    debug: bool = False,
    embeddings: Path | None = None,
    representation: str | None = None,
) -> ScanResult:
    """Read ``data``, scan it, print the summary and write the results: what ``poisonguard scan`` does."""
    from ._progress import RichProgress
    from .io import read_table
    from .scanner import _check_params, scan

    _check_params(fpr, seed)
    if out is not None:
        _prepare_out(out, force=force, inputs=(data,))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with RichProgress(quiet=quiet) as progress:
            with progress.task(f"reading {data.name}"):
                frame = read_table(data, encoding=encoding)
            result = scan(
                frame,
                label=label,
                source=source,
                id=id,
                exclude=exclude,
                types=types,
                seed=seed,
                fpr=fpr,
                canaries=canaries,
                progress=progress,
                name=str(data),
                embeddings=embeddings,
                representation=representation,
            )
    _report_warnings(caught, debug=debug)
    written: list[Path] = []
    if out is not None:
        try:
            written = result.save(out)
        except OSError as exc:
            raise ConfigError(f"--out {out}: cannot write the results ({exc.strerror or exc}).") from exc
    if quiet:
        s = result.summary
        console.print(
            f"{s['verdict']}: {s['flagged']:,} of {s['rows']:,} rows flagged ({escape(str(data))})",
            highlight=False,
        )
    else:
        print_summary(console, result, top=top)
        if written:
            console.print(f"\nWrote {', '.join(p.name for p in written)} to {escape(str(out))}/")
    return result


def _report_warnings(caught: list[warnings.WarningMessage], *, debug: bool) -> None:
    """Input warnings (all warnings with --debug) on stderr, each message once."""
    from .io import InputWarning

    seen: set[str] = set()
    for w in caught:
        text = str(w.message)
        if (issubclass(w.category, InputWarning) or debug) and text not in seen:
            seen.add(text)
            print(f"warning: {text}", file=sys.stderr)


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def print_summary(console: Console, result: ScanResult, *, top: int = 10) -> None:
    """Print a scan's summary: verdict, counts, estimate, notes, top flagged rows, breakdowns, canaries."""
    s = result.summary
    data = s.get("data", {})
    verdict = result.verdict
    colour = VERDICT_COLOURS.get(verdict, "white")
    console.print(
        f"[bold]poisonguard {escape(str(s.get('version', __version__)))}[/] scan of "
        f"[bold]{escape(str(data.get('name', '<data>')))}[/]: {s['rows']:,} rows, "
        f"{len(data.get('classes', []))} classes, {len(data.get('features', {}))} feature columns, "
        f"label '{escape(str(data.get('label', '?')))}'",
        highlight=False,
    )
    console.print(f"\nVerdict: [bold {colour}]{verdict.upper()}[/]")
    for line in s.get("evidence", []):
        console.print(f"  - {escape(str(line))}", highlight=False)

    expected = s.get("expected_false_flags", s["fpr"] * s["rows"])
    console.print(
        f"\nFlagged: {s['flagged']:,} of {s['rows']:,} rows ({_pct(s['flagged_fraction'])}) at a "
        f"{_pct(s['fpr'])} false-alarm rate (about {expected:,.0f} expected on clean data)",
        highlight=False,
    )
    est = s.get("estimated_poisoned_fraction") or {}
    if est:
        line = (
            f"Estimated poisoned fraction: {_pct(est['value'])} (95% interval {_pct(est['low'])} to "
            f"{_pct(est['high'])})"
        )
        if "recall_adjusted" in est:
            line += f"; {_pct(est['recall_adjusted'])} after correcting for the canary recall"
        console.print(line, highlight=False)
    triggers = s.get("triggers") or []
    if triggers:
        console.print(f"\nBackdoor triggers found ({len(triggers)}):")
        for t in triggers:
            console.print(f"  - {escape(str(t['description']))}", highlight=False)
    notes = s.get("notes") or []
    if notes:
        console.print("\nNotes:")
        for note in notes:
            console.print(f"  - {escape(str(note))}", highlight=False)

    _print_rows(console, result.flagged, top, "flagged rows")
    # named by a class-level finding short of its flag level: where to look next (review.csv with --out)
    _print_rows(console, result.review, top, "rows to review (not flagged)")
    _print_breakdown(console, result.by_class, "label", "By class")
    if result.by_source is not None:
        _print_breakdown(console, result.by_source, "source", "By source")
    if s.get("canaries"):
        _print_canaries(console, s["canaries"])


def _print_rows(console: Console, rows: Any, top: int, what: str) -> None:
    if top <= 0 or not len(rows):
        return
    shown = rows.head(top)
    table = Table(title=f"Top {len(shown)} of {len(rows):,} {what}", title_justify="left")
    cols = ["row", *(c for c in ("id", "source") if c in shown.columns), "label", "score", "reasons"]
    for c in cols:
        table.add_column(
            c,
            justify="right" if c in {"row", "score"} else "left",
            overflow="fold",
            ratio=4 if c == "reasons" else None,
            no_wrap=c != "reasons",
        )
    for rec in shown[cols].itertuples(index=False):
        cells = [f"{v:.4f}" if c == "score" else escape(str(v)) for c, v in zip(cols, rec, strict=True)]
        table.add_row(*cells)
    console.print()
    console.print(table)


def _print_breakdown(console: Console, frame: Any, key: str, title: str) -> None:
    if frame is None or len(frame) == 0:
        return
    table = Table(title=title, title_justify="left")
    compared = "worse_than_rest" in frame.columns
    columns = [(key, "left"), ("rows", "right"), ("flagged", "right"), ("flagged %", "right")]
    columns += [("expected if clean", "right"), ("est. poisoned %", "right")]
    if compared:
        columns.append(("worse than rest (p)", "left"))
    for name, justify in columns:
        table.add_column(name, justify=justify)
    for rec in frame.to_dict("records"):
        worse = bool(rec.get("worse_than_rest", False))
        p = rec.get("p_worse_than_rest")
        worse_cell = ("[bold red]yes[/]" if worse else "no") + (f" ({p:.2g})" if p is not None else "")
        cells = [
            escape(str(rec[key])),
            f"{int(rec['rows']):,}",
            f"{int(rec['flagged']):,}",
            _pct(rec["flagged_fraction"]),
            f"{float(rec['expected_flagged']):,.1f}",
            _pct(rec["estimated_poisoned_fraction"]),
        ]
        table.add_row(*cells, *([worse_cell] if compared else []))
    console.print()
    console.print(table)


def _print_canaries(console: Console, report: dict[str, Any]) -> None:
    console.print()
    recall = report.get("recall")
    head = "Canaries: " + (f"recall {_pct(recall)}" if isinstance(recall, int | float) else "no recall reported")
    console.print(head, highlight=False)
    for key, value in report.items():
        if key == "recall":
            continue
        if isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()):
            fields = sorted({f for v in value.values() for f in v})
            table = Table(title=f"canaries: {escape(str(key))}", title_justify="left")
            table.add_column(str(key))
            for f in fields:
                table.add_column(escape(str(f)), justify="right")
            for name, v in value.items():
                table.add_row(escape(str(name)), *(_fmt(v.get(f)) for f in fields))
            console.print(table)
        elif isinstance(value, str | int | float | bool) or value is None:
            console.print(f"  {escape(str(key))}: {_fmt(value)}", highlight=False)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    return escape(str(v)) if v is not None else "-"


def _exit_code(verdict: str, fail_on: FailOn) -> int:
    if fail_on is FailOn.never:
        return 0
    return 1 if VERDICT_RANK.get(verdict, 2) >= VERDICT_RANK[fail_on.value] else 0


@app.command()
def scan(
    ctx: typer.Context,
    data: Annotated[
        Path,
        typer.Argument(help="The training data: a CSV, TSV, Parquet or JSON Lines file.", show_default=False),
    ],
    label: Annotated[str, typer.Option("--label", "-l", help="The label (class) column.", show_default=False)],
    source: Annotated[
        str | None,
        typer.Option(help="A column naming where each row came from; flags are compared between sources."),
    ] = None,
    id: Annotated[str | None, typer.Option("--id", help="A row id column, shown next to flagged rows.")] = None,
    exclude: Annotated[
        list[str] | None,
        typer.Option("--exclude", "-x", help="A column to leave out of the features (repeatable)."),
    ] = None,
    type_: Annotated[
        list[str] | None,
        typer.Option(
            "--type",
            "-t",
            metavar="COL=KIND",
            help="Declare a column's type: numeric, categorical, boolean, datetime or text (repeatable).",
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help="Write rows.csv, flagged.csv, summary.json (and review.csv) into this directory."
        ),
    ] = None,
    fpr: Annotated[float, typer.Option(help="Share of clean rows that may be flagged (0 < FPR < 0.5).")] = 0.01,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same result.")] = 0,
    canaries: Annotated[
        bool, typer.Option("--canaries", help="Plant known poison in a copy and report how much is caught.")
    ] = False,
    fail_on: Annotated[
        FailOn, typer.Option(help="Exit 1 when the verdict is at least this level ('never': always exit 0).")
    ] = FailOn.suspicious,
    force: Annotated[bool, typer.Option("--force", help="Allow --out to be a non-empty directory.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars and a one-line summary only.")] = False,
    encoding: Annotated[str, typer.Option(help="Text encoding of a CSV, TSV or JSON Lines file.")] = "utf-8",
    debug: Annotated[bool, typer.Option("--debug", help="Show the traceback of an error.")] = False,
    top: Annotated[int, typer.Option(min=0, help="How many flagged rows to list.")] = 10,
    html: Annotated[
        Path | None, typer.Option("--html", help="Write a self-contained HTML report to this file.")
    ] = None,
    embeddings: Annotated[
        Path | None,
        typer.Option(
            help="A model's representation of each row (.npy, .npz, .parquet or .csv, aligned with the rows)."
        ),
    ] = None,
    representation: Annotated[
        str | None, typer.Option(help="'leaves': derive a representation from the table (a forest's leaf embedding).")
    ] = None,
    policy: Annotated[
        Path | None,
        typer.Option(
            help="Judge the result with this policy file (poisonguard.yaml or pyproject.toml); the gate decides the exit code."
        ),
    ] = None,
    junit: Annotated[Path | None, typer.Option(help="With --policy: write the gate's JUnit XML here.")] = None,
    sarif: Annotated[Path | None, typer.Option(help="With --policy: write the gate's SARIF here.")] = None,
    baseline: Annotated[
        str | None,
        typer.Option(
            help="Trusted data to judge DATA against: a file, or ledger:NAME@VERSION (ledger:NAME = its latest "
            "trusted version). Only rows the baseline lacks are scored, by models fitted on the baseline."
        ),
    ] = None,
    db: Annotated[str | None, typer.Option(help="Ledger database URL for a ledger: baseline.")] = None,
) -> None:
    """Scan a labelled table for poisoned rows and print a summary.

    Exit code 0: the verdict is below --fail-on (with --policy: every rule holds); 1: at or above it (a rule is
    broken); 2: a usage or input error.
    """
    ctx.meta[_DEBUG_KEY] = debug
    if (junit or sarif) and policy is None:
        raise ConfigError("--junit and --sarif write the gate's result; pass --policy FILE too.")
    loaded = None
    if policy is not None:
        from .policy import load_policy

        loaded = load_policy(policy)  # a bad policy fails before the scan runs
    if baseline is not None and canaries:
        raise ConfigError("--canaries does not apply to a scan with --baseline; leave one of them out.")
    if baseline is not None and (html or policy or embeddings or representation):
        raise ConfigError(
            "--html, --policy, --embeddings and --representation are not available with --baseline yet; scan the "
            "whole data for those."
        )
    if baseline is not None:
        verdict = run_incremental_scan(
            data,
            baseline=baseline,
            db=db,
            label=label,
            console=Console(highlight=False),
            source=source,
            id=id,
            exclude=tuple(exclude or ()),
            types=_parse_types(type_ or []),
            out=out,
            force=force,
            fpr=fpr,
            seed=seed,
            quiet=quiet,
            top=top,
            debug=debug,
        )
        raise typer.Exit(_exit_code(verdict, fail_on))
    result = run_scan(
        data,
        label=label,
        console=Console(highlight=False),
        source=source,
        id=id,
        exclude=tuple(exclude or ()),
        types=_parse_types(type_ or []),
        out=out,
        force=force,
        fpr=fpr,
        seed=seed,
        canaries=canaries,
        quiet=quiet,
        encoding=encoding,
        top=top,
        debug=debug,
        embeddings=embeddings,
        representation=representation,
    )
    console = Console(highlight=False)
    if html is not None:
        from .report import scan_html, write

        write(scan_html(result), html, inputs=(data,))
        console.print(f"Wrote the report to {escape(str(html))}")
    if loaded is not None:
        from .gate import evaluate_gate

        gate = evaluate_gate(
            loaded,
            scan=result.to_dict(),
            data=data,
            contract_checker=_contract_checker(),
            inputs={"data": str(data)},
        )
        flagged = result.flagged[["row", "score", "reasons"]].head(SARIF_MAX_ROWS).to_dict("records")
        _finish_gate(console, gate, junit=junit, sarif=sarif, data=data, flagged_rows=flagged)
        raise typer.Exit(0 if gate.passed else 1)
    raise typer.Exit(_exit_code(result.verdict, fail_on))


@app.command()
def demo(
    ctx: typer.Context,
    out: Annotated[
        Path,
        typer.Option("--out", "-o", help="Directory for the demo data and results (its files are replaced)."),
    ] = Path("demo_out"),
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show the traceback of an error.")] = False,
) -> None:
    """Poison a copy of scikit-learn's breast cancer data, scan it, and compare what was caught with what was
    planted.

    Writes OUT/poisoned.csv, OUT/truth.csv and the scan results in OUT/scan/ (with the HTML report
    OUT/scan/report.html). Always exits 0 unless it fails.
    """
    import pandas as pd

    from . import demo as demo_mod

    ctx.meta[_DEBUG_KEY] = debug
    console = Console(highlight=False)
    data_path, truth_path = demo_mod.write_data(out)
    truth = pd.read_csv(truth_path)
    planted = truth.loc[truth["poisoned"], "kind"].value_counts()
    n_flip, n_trigger = int(planted.get("label_flip", 0)), int(planted.get("backdoor_trigger", 0))
    console.print(
        f"Demo data: {len(truth):,} rows of scikit-learn's breast cancer table with {n_flip} flipped labels "
        f"and {n_trigger} rows carrying a backdoor trigger (label '{demo_mod.TRIGGER_LABEL}').\n"
        f"Wrote {escape(str(data_path))} and {escape(str(truth_path))}; scanning them as"
    )
    html_path = out / "scan" / "report.html"
    command = f"poisonguard scan {data_path} --label {demo_mod.LABEL} --out {out / 'scan'} --html {html_path}"
    console.print(f"  {escape(command)}\n", soft_wrap=True)
    result = run_scan(
        data_path,
        label=demo_mod.LABEL,
        console=console,
        out=out / "scan",
        force=True,
        quiet=quiet,
        debug=debug,
    )
    from .report import scan_html, write

    write(scan_html(result), html_path)
    report = demo_mod.caught_vs_planted(result.rows, truth)
    print_demo_report(console, report)
    console.print(f"\nThe report for people: open {escape(str(html_path))} in a browser (it works offline).")


def print_demo_report(console: Console, report: Any) -> None:
    table = Table(title="Caught vs planted", title_justify="left")
    table.add_column("kind")
    table.add_column("planted", justify="right")
    table.add_column("flagged", justify="right")
    table.add_column("recall", justify="right")
    for k in report.kinds:
        table.add_row(k.kind, str(k.planted), str(k.flagged), _pct(k.recall) if k.planted else "-")
    total = sum(k.flagged for k in report.kinds)
    table.add_row(
        "all planted",
        str(report.planted),
        str(total),
        _pct(total / report.planted) if report.planted else "-",
    )
    console.print()
    console.print(table)
    precision = (
        f"{_pct(report.precision)} ({report.flagged_poisoned} of {report.flagged} flagged rows were planted)"
        if report.flagged
        else "n/a (no rows flagged)"
    )
    console.print(f"Precision of the flags: {precision}")
    console.print(f"AUROC of the score (planted vs clean rows): {report.auroc:.3f}")


@app.command()
def redteam(
    ctx: typer.Context,
    data: Annotated[Path, typer.Argument(help="CSV, TSV, Parquet or JSON Lines file.", show_default=False)],
    label: Annotated[str, typer.Option("--label", "-l", help="The label (class) column.", show_default=False)],
    attacks: Annotated[
        list[str] | None, typer.Option("--attacks", "-a", help="Attack to simulate (repeatable; default: all).")
    ] = None,
    rates: Annotated[
        list[float] | None,
        typer.Option("--rates", "-r", help="Poison rate to try (repeatable; default 0.01 0.05 0.1 0.2)."),
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="module:factory returning a scikit-learn style estimator (default: boosting).")
    ] = None,
    damage: Annotated[
        float, typer.Option(help="Damage (accuracy drop, or backdoor success rate) that defines the poison budget.")
    ] = 0.02,
    exclude: Annotated[
        list[str] | None, typer.Option("--exclude", "-x", help="Column to leave out (repeatable).")
    ] = None,
    type_: Annotated[
        list[str] | None, typer.Option("--type", "-t", help="COL=KIND type override (repeatable).")
    ] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the full results to this JSON file.")] = None,
    html: Annotated[
        Path | None, typer.Option("--html", help="Write a self-contained HTML report to this file.")
    ] = None,
    fpr: Annotated[float, typer.Option(help="False-alarm rate of the scan.")] = 0.01,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
    encoding: Annotated[str, typer.Option(help="Text encoding of a CSV, TSV or JSON Lines file.")] = "utf-8",
    debug: Annotated[bool, typer.Option("--debug", help="Show the traceback of an error.")] = False,
) -> None:
    """Simulate poisoning attacks on your data and model: damage, detection, and what sanitizing restores."""
    from ._progress import RichProgress
    from .io import read_table
    from .redteam import DEFAULT_RATES, load_model_factory
    from .redteam import redteam as run_redteam
    from .scanner import _check_params

    ctx.meta[_DEBUG_KEY] = debug
    _check_params(fpr, seed)
    factory = load_model_factory(model) if model else None
    if json_out is not None and json_out.exists() and json_out.resolve() == data.resolve():
        raise ConfigError(f"--json {json_out}: would overwrite the input file; choose another path.")
    console = Console(highlight=False)
    with warnings.catch_warnings(record=True) as caught, RichProgress(quiet=quiet) as progress:
        warnings.simplefilter("always")
        with progress.task(f"reading {data.name}"):
            frame = read_table(data, encoding=encoding)
        result = run_redteam(
            frame,
            label=label,
            attacks=attacks or None,
            rates=tuple(rates) if rates else DEFAULT_RATES,
            model=factory,
            seed=seed,
            fpr=fpr,
            damage_threshold=damage,
            exclude=tuple(exclude or ()),
            types=_parse_types(type_ or []),
            progress=progress,
            name=str(data),
        )
    _report_warnings(caught, debug=debug)
    for note in result.settings.get("notes", []):
        console.print(f"note: {escape(str(note))}", highlight=False)
    base = result.baseline
    console.print(f"Clean model: accuracy {_pct(base['accuracy'])}, macro F1 {base['f1_macro']:.3f}")
    table = Table(title="Attacks", title_justify="left")
    for col in (
        "attack",
        "rate",
        "acc. change",
        "ASR",
        "detection AUROC",
        "flag recall",
        "flag precision",
        "sanitized acc.",
        "sanitized ASR",
    ):
        table.add_column(col, justify="left" if col == "attack" else "right")
    for rec in result.runs.to_dict("records"):
        table.add_row(
            rec["attack"],
            _pct(rec["rate"]),
            f"{100 * rec['accuracy_change']:+.1f} pt",
            _fmt_opt(rec["asr"]),
            _fmt_opt(rec["detection_auroc"], pct=False),
            _fmt_opt(rec["flag_recall"]),
            _fmt_opt(rec["flag_precision"]),
            _pct(rec["sanitized_accuracy"]),
            _fmt_opt(rec["sanitized_asr"]),
        )
    console.print(table)
    for rec in result.budget.to_dict("records"):
        b = rec["budget"]
        console.print(
            f"poison budget of {rec['attack']}: "
            + (f"{_pct(b)} of the training rows" if b == b and b is not None else "above every rate tried")
        )
    for name, why in result.skipped.items():
        console.print(f"skipped {name}: {escape(why)}")
    if json_out is not None:
        result.to_json(json_out)
        console.print(f"Wrote {escape(str(json_out))}")
    if html is not None:
        from .report import redteam_html, write

        write(redteam_html(result), html, inputs=(data,))
        console.print(f"Wrote the report to {escape(str(html))}")


def _fmt_opt(v: Any, *, pct: bool = True) -> str:
    if v is None or v != v:
        return "-"
    return _pct(v) if pct else f"{v:.3f}"


SARIF_MAX_ROWS = 200  # flagged rows listed in SARIF (code-scanning views choke on thousands)


def _contract_checker() -> Any:
    """The data-contract check for the gate."""
    from .gate import check_contract_rule

    return check_contract_rule


def _finish_gate(
    console: Console,
    gate: Any,
    *,
    junit: Path | None,
    sarif: Path | None,
    data: Path | None,
    flagged_rows: list[dict[str, Any]],
    json_out: Path | None = None,
) -> None:
    """Print the gate's checks and write its JUnit, SARIF and JSON files."""
    from .gate import write_junit, write_sarif

    table = Table(title=f"Gate: {escape(gate.policy)}", title_justify="left")
    for col in ("rule", "result", "what was found"):
        table.add_column(col, overflow="fold")
    for c in gate.checks:
        found = escape(c.message) + "".join(f"\n  - {escape(d)}" for d in c.details[:10])
        if len(c.details) > 10:
            found += f"\n  ... and {len(c.details) - 10} more"
        table.add_row(escape(c.rule), "[green]pass[/]" if c.passed else "[bold red]FAIL[/]", found)
    console.print()
    console.print(table)
    if not gate.checks:
        console.print("The policy sets no rule for the results given; nothing to judge.")
    broken = gate.broken
    console.print(
        "[bold green]Gate passed[/]"
        if not broken
        else f"[bold red]Gate failed[/]: {len(broken)} of {len(gate.checks)} rules broken"
    )
    header = 1 if data is not None and data.suffix.lower() in {".csv", ".tsv", ".txt"} else 0
    rows = (
        flagged_rows
        if data is not None and data.suffix.lower() in {".csv", ".tsv", ".txt", ".jsonl", ".ndjson"}
        else []
    )
    for target, write in (
        (junit, lambda p: write_junit(gate, p)),
        (sarif, lambda p: write_sarif(gate, p, data=data, flagged_rows=rows, header_lines=header)),
    ):
        if target is None:
            continue
        try:
            write(target)
        except OSError as exc:
            raise ConfigError(f"{target}: cannot write ({exc.strerror or exc}).") from exc
        console.print(f"Wrote {escape(str(target))}")
    if json_out is not None:
        import json

        json_out.write_text(json.dumps(gate.to_dict(), indent=2, default=str) + "\n", encoding="utf-8")
        console.print(f"Wrote {escape(str(json_out))}")


def _read_json(path: Path, what: str, flag: str) -> dict[str, Any]:
    import json

    if path.is_dir():
        path = path / "summary.json"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{flag} {path}: no such file; pass the {what}.") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{flag} {path}: not valid JSON ({exc}); pass the {what}.") from exc
    if not isinstance(doc, dict):
        raise ConfigError(f"{flag} {path}: not a JSON object; pass the {what}.")
    return doc


@app.command()
def gate(
    ctx: typer.Context,
    policy: Annotated[
        Path | None,
        typer.Option(
            help="The policy file (default: ./poisonguard.yaml, else [tool.poisonguard] in ./pyproject.toml)."
        ),
    ] = None,
    scan_dir: Annotated[
        Path | None, typer.Option("--scan", help="A saved scan: the directory of 'scan --out', or its summary.json.")
    ] = None,
    data: Annotated[
        Path | None, typer.Option(help="The data file, for the policy's contracts and SARIF lines.")
    ] = None,
    redteam_json: Annotated[Path | None, typer.Option("--redteam", help="The file of 'redteam --json'.")] = None,
    evaluation_json: Annotated[Path | None, typer.Option("--evaluation", help="The file of 'evaluate --json'.")] = None,
    junit: Annotated[Path | None, typer.Option(help="Write JUnit XML here (one test case per rule).")] = None,
    sarif: Annotated[Path | None, typer.Option(help="Write SARIF 2.1.0 here (broken rules and flagged rows).")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the gate's result as JSON here.")] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show the traceback of an error.")] = False,
) -> None:
    """Judge saved results against the policy: exit 0 when every rule holds, 1 with the list of broken rules,
    2 for a bad policy or input."""
    import pandas as pd

    from .gate import evaluate_gate
    from .policy import find_policy, load_policy

    ctx.meta[_DEBUG_KEY] = debug
    if policy is None:
        policy = find_policy(".")
        if policy is None:
            raise ConfigError(
                "no policy: pass --policy FILE, or put a poisonguard.yaml (or a [tool.poisonguard] table in "
                "pyproject.toml) in the current directory."
            )
    loaded = load_policy(policy)
    scan_doc = (
        _read_json(scan_dir, "directory of 'poisonguard scan --out' or its summary.json", "--scan")
        if scan_dir
        else None
    )
    flagged: list[dict[str, Any]] = []
    if scan_dir is not None:
        rows_csv = (scan_dir if scan_dir.is_dir() else scan_dir.parent) / "rows.csv"
        if rows_csv.is_file():
            rows = pd.read_csv(rows_csv, usecols=lambda c: c in {"row", "score", "flagged", "reasons"})
            if {"row", "score", "flagged"} <= set(rows.columns):
                flagged = rows[rows["flagged"].astype(bool)].nlargest(SARIF_MAX_ROWS, "score").to_dict("records")
    inputs = {
        k: str(v)
        for k, v in (("scan", scan_dir), ("data", data), ("redteam", redteam_json), ("evaluation", evaluation_json))
        if v
    }
    result = evaluate_gate(
        loaded,
        scan=scan_doc,
        data=data,
        redteam=_read_json(redteam_json, "file of 'poisonguard redteam --json'", "--redteam") if redteam_json else None,
        evaluation=_read_json(evaluation_json, "file of 'poisonguard evaluate --json'", "--evaluation")
        if evaluation_json
        else None,
        contract_checker=_contract_checker(),
        inputs=inputs,
    )
    _finish_gate(
        Console(highlight=False), result, junit=junit, sarif=sarif, data=data, flagged_rows=flagged, json_out=json_out
    )
    raise typer.Exit(0 if result.passed else 1)


@app.command()
def report(
    ctx: typer.Context,
    path: Annotated[
        Path,
        typer.Argument(
            help="A saved result: the directory of 'scan --out', or the --json file of redteam or evaluate.",
            show_default=False,
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="The HTML file to write (default: report.html beside the result)."),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show the traceback of an error.")] = False,
) -> None:
    """Build the self-contained HTML report of a saved scan or red-team result."""
    from .report import saved_html, write

    ctx.meta[_DEBUG_KEY] = debug
    page = saved_html(path)
    target = out or ((path / "report.html") if path.is_dir() else path.with_suffix(".html"))
    write(page, target, inputs=(path,))
    Console(highlight=False).print(f"Wrote the report to {escape(str(target))}")


# ----------------------------------------------------------------------------------------------- monitoring


def print_monitor(console: Console, result: Any) -> None:
    """Drift per feature, the multivariate check, trigger hits and the alerts, as rich tables."""
    drift = result.drift
    table = Table(
        title=f"Drift: {drift.n_current} new rows against {drift.n_reference} reference rows", title_justify="left"
    )
    for col in ("column", "kind", "test", "p (adj.)", "PSI", "JS / Wasserstein", "drifted"):
        table.add_column(col, justify="left" if col in ("column", "kind", "test") else "right")
    rows = [*drift.features, *(x for x in (drift.label, drift.prediction) if x)]
    for f in rows:
        eff = f"{f['js']:.3f}" if f["kind"] == "categorical" else f"{f['wasserstein']:.3f} sd"
        table.add_row(
            escape(str(f["column"])),
            f["kind"],
            f["test"],
            f"{f['p_adjusted']:.2g}",
            f"{f['psi']:.3f}",
            eff,
            "[red]yes[/red]" if f["drifted"] else "no",
        )
    console.print(table)
    mv = drift.multivariate
    if mv is not None and mv.get("auc") is not None:
        console.print(
            f"Domain classifier: AUC {mv['auc']:.3f} (p = {mv['pvalue']:.2g}){' [red]drift[/red]' if mv['drifted'] else ''}"
        )
    if drift.performance:
        perf = drift.performance
        ref = perf.get("reference_accuracy")
        console.print(
            f"Accuracy on labelled rows: {_pct(perf['accuracy'])}"
            + (f" (reference {_pct(ref)})" if ref is not None else "")
        )
    watch = result.watch
    if watch is not None:
        for t in watch.triggers:
            console.print(f"trigger {escape(t['trigger'])}: {t['hits']} hits ({t['rate']:.3%})")
        cf = watch.counterfactual
        if cf is not None:
            console.print(
                f"counterfactual: {cf['flips']} of {watch.n_rows} rows change prediction once their unusual values are "
                f"reset ({cf['rate']:.3%}; reference {cf['baseline_rate']:.3%})"
            )
    if result.alerts:
        for a in result.alerts:
            colour = "red" if a.severity == "critical" else "yellow"
            console.print(f"[{colour}]{a.severity}[/{colour}] {a.kind}: {escape(a.message)}")
    else:
        console.print("[green]No alert.[/green]")


@app.command()
def monitor(
    ctx: typer.Context,
    reference: Annotated[
        Path, typer.Argument(help="The training data (CSV, Parquet, ...) or a saved profile (profile.json).")
    ],
    new: Annotated[Path, typer.Argument(help="The new data: inference rows, with labels if they have arrived.")],
    label: Annotated[
        str | None, typer.Option("--label", "-l", help="The label column (label drift, accuracy).")
    ] = None,
    prediction: Annotated[
        str | None, typer.Option(help="A column holding the model's predictions (in both files).")
    ] = None,
    model: Annotated[
        Path | None, typer.Option(help="A fitted model saved with joblib: predictions and the counterfactual check.")
    ] = None,
    triggers: Annotated[
        Path | None, typer.Option(help="A scan's summary.json: watch for the triggers it discovered.")
    ] = None,
    json_out: Annotated[Path, typer.Option("--json", help="Write the report as JSON here.")] = Path(
        "drift-report.json"
    ),
    html: Annotated[Path | None, typer.Option("--html", help="Write a self-contained HTML drift report here.")] = None,
    multivariate: Annotated[bool, typer.Option(help="Run the domain classifier (multivariate drift).")] = True,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same report.")] = 0,
    debug: Annotated[bool, typer.Option("--debug", help="Show the traceback of an error.")] = False,
) -> None:
    """Compare new data with a reference: drift per feature, multivariate, label and prediction drift, triggers.

    Exit code 0: no alert; 1: at least one alert (drift with a large enough effect, a trigger, an accuracy
    drop); 2: a usage or input error.
    """
    from .monitor.offline import run_monitor

    ctx.meta[_DEBUG_KEY] = debug
    console = Console(highlight=False)
    result = run_monitor(
        reference,
        new,
        label=label,
        prediction=prediction,
        model=model,
        triggers=triggers,
        multivariate=multivariate,
        seed=seed,
    )
    print_monitor(console, result)
    result.to_json(json_out)
    console.print(f"Wrote {escape(str(json_out))}")
    if html is not None:
        import json as _json

        from .report import monitor_html, write

        write(monitor_html(_json.loads(json_out.read_text())), html, inputs=(reference, new))
        console.print(f"Wrote the report to {escape(str(html))}")
    raise typer.Exit(1 if result.alerts else 0)


@app.command()
def profile(
    ctx: typer.Context,
    data: Annotated[Path, typer.Argument(help="The training data the model learnt from.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the profile (JSON).")],
    label: Annotated[str | None, typer.Option("--label", "-l", help="The label column.")] = None,
    prediction: Annotated[str | None, typer.Option(help="A column holding the model's predictions.")] = None,
    model: Annotated[Path | None, typer.Option(help="A fitted model saved with joblib, to predict the rows.")] = None,
    triggers: Annotated[Path | None, typer.Option(help="A scan's summary.json: triggers to watch for.")] = None,
    seed: Annotated[int, typer.Option(help="Random seed of the reference sample.")] = 0,
    debug: Annotated[bool, typer.Option("--debug", help="Show the traceback of an error.")] = False,
) -> None:
    """Save a reference profile of training data, for `poisonguard monitor` or the service."""
    from .monitor.offline import build_profile, load_model, load_triggers

    ctx.meta[_DEBUG_KEY] = debug
    fitted = load_model(model) if model is not None else None
    trig = load_triggers(triggers) if triggers is not None else None
    prof = build_profile(data, label=label, prediction=prediction, model=fitted, triggers=trig, seed=seed)
    prof.save(out)
    typer.echo(f"Profiled {len(prof.columns)} columns of {prof.n_rows} rows; wrote {out}")


@app.command()
def serve(
    ctx: typer.Context,
    db: Annotated[str, typer.Option(help="SQLAlchemy database URL (default: SQLite file poisonguard.db).")] = (
        "sqlite:///poisonguard.db"
    ),
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    token: Annotated[
        str | None,
        typer.Option(envvar="POISONGUARD_TOKEN", help="Bearer token for write endpoints (env POISONGUARD_TOKEN)."),
    ] = None,
    protect_reads: Annotated[bool, typer.Option(help="Require the token for reads too.")] = False,
    no_auth: Annotated[
        bool, typer.Option("--no-auth", help="Accept writes without a token (local experiments only).")
    ] = False,
    model: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            metavar="NAME=PATH",
            help="A fitted model (joblib) for the model NAME: its batches get the counterfactual check (repeatable).",
        ),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show the traceback of an error.")] = False,
) -> None:
    """Run the monitoring service: register references, ingest batches, read drift reports and alerts."""
    from .monitor.offline import load_model

    ctx.meta[_DEBUG_KEY] = debug
    models: dict[str, Any] = {}
    for spec in model or []:
        name, sep, path = spec.partition("=")
        if not sep or not name.strip() or not path.strip():
            raise ConfigError(f"--model expects NAME=PATH (for example --model churn=model.joblib); got {spec!r}.")
        models[name.strip()] = load_model(path.strip())
    if token is None and not no_auth:
        raise ConfigError(
            "the service needs a token for its write endpoints: pass --token or set POISONGUARD_TOKEN "
            "(or --no-auth for a local experiment)."
        )
    try:
        import uvicorn

        from .monitor.service import create_app
    except ImportError as exc:
        raise ConfigError(f"the service needs the 'serve' extra ({exc}); pip install 'poisonguard[serve]'.") from exc
    app_ = create_app(db, token=token, protect_reads=protect_reads, models=models)
    uvicorn.run(app_, host=host, port=port, log_level="warning")


@app.command()
def evaluate(
    ctx: typer.Context,
    model: Annotated[
        Path,
        typer.Option(
            "--model",
            "-m",
            help="The model: a .joblib/.pkl estimator (unpickling runs code: trusted files only), an .onnx file, or "
            "a predictions table (.csv/.parquet) with one probability column per class.",
            show_default=False,
        ),
    ],
    data: Annotated[
        Path,
        typer.Option("--data", "-d", help="The labelled test table (CSV, TSV, Parquet, JSONL).", show_default=False),
    ],
    label: Annotated[str, typer.Option("--label", "-l", help="The label (class) column.", show_default=False)],
    baseline_model: Annotated[
        Path | None,
        typer.Option("--baseline-model", "-b", help="The last trusted model (or the original of an optimised one)."),
    ] = None,
    triggers: Annotated[
        Path | None,
        typer.Option(help="Triggers to probe: a scan's summary.json or a JSON list of {conditions, target}."),
    ] = None,
    slice_: Annotated[
        list[str] | None,
        typer.Option(
            "--slice", "-s", metavar="COND", help="A segment to report, e.g. 'education=Bachelors' (repeatable)."
        ),
    ] = None,
    exclude: Annotated[
        list[str] | None, typer.Option("--exclude", "-x", help="A column not to give the model (repeatable).")
    ] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the full results to this JSON file.")] = None,
    html: Annotated[
        Path | None, typer.Option("--html", help="Write a self-contained HTML report to this file.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed of the bootstrap.")] = 0,
    n_boot: Annotated[int, typer.Option("--n-boot", help="Bootstrap resamples for the intervals.")] = 1000,
    top: Annotated[int, typer.Option(min=0, help="How many slices to list.")] = 10,
    fail_on_regression: Annotated[
        bool, typer.Option("--fail-on-regression", help="Exit 1 when a significant regression is found.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars and a short summary.")] = False,
    encoding: Annotated[str, typer.Option(help="Text encoding of a CSV, TSV or JSON Lines file.")] = "utf-8",
    debug: Annotated[bool, typer.Option("--debug", help="Show the traceback of an error.")] = False,
) -> None:
    """Evaluate a model where poisoning hides: metrics with intervals, calibration, weak slices, triggers, and
    regressions against a baseline model.

    Exit code 0: no significant regression (or no --fail-on-regression); 1: a significant regression and
    --fail-on-regression; 2: a usage or input error.
    """
    from ._progress import RichProgress
    from .evaluate import evaluate as run_evaluate
    from .io import read_table
    from .models import UnpicklingWarning

    ctx.meta[_DEBUG_KEY] = debug
    if json_out is not None and json_out.exists() and json_out.resolve() in {data.resolve(), model.resolve()}:
        raise ConfigError(f"--json {json_out}: would overwrite an input file; choose another path.")
    console = Console(highlight=False)
    with warnings.catch_warnings(record=True) as caught, RichProgress(quiet=quiet) as progress:
        warnings.simplefilter("always")
        with progress.task(f"reading {data.name}"):
            frame = read_table(data, encoding=encoding)
        result = run_evaluate(
            model,
            frame,
            label=label,
            baseline=baseline_model,
            triggers=triggers,
            slices=slice_ or (),
            seed=seed,
            n_boot=n_boot,
            exclude=tuple(exclude or ()),
            progress=progress,
            name=str(data),
        )
    for w in caught:
        if issubclass(w.category, UnpicklingWarning):
            print(f"warning: {w.message}", file=sys.stderr)
    _report_warnings([w for w in caught if not issubclass(w.category, UnpicklingWarning)], debug=debug)
    print_evaluation(console, result, top=top, quiet=quiet)
    if json_out is not None:
        result.to_json(json_out)
        console.print(f"Wrote {escape(str(json_out))}")
    if html is not None:
        from .report import evaluation_html, write

        write(evaluation_html(result), html, inputs=(data, model))
        console.print(f"Wrote the report to {escape(str(html))}")
    raise typer.Exit(1 if fail_on_regression and result.significant_regressions else 0)


def _ci(block: Any, pct: bool = True) -> str:
    lo, hi = block["ci"] if isinstance(block, dict) else block
    if lo is None or hi is None:
        return "-"
    return f"[{100 * lo:.1f}, {100 * hi:.1f}]" if pct else f"[{lo:.3f}, {hi:.3f}]"


def print_evaluation(console: Console, result: Any, *, top: int = 10, quiet: bool = False) -> None:
    """Print an evaluation: metrics with intervals (and the baseline), weak slices, regressions, backdoor probe."""
    s = result.settings
    sig = result.significant_regressions
    acc = result.metrics["accuracy"]
    if quiet:
        console.print(
            f"accuracy {_pct(acc['value'])} {_ci(acc)}; {s['weak_slices_found']} weak slices; "
            f"{len(sig)} significant regressions ({escape(str(s['data']))})"
        )
        return
    for note in result.notes:
        console.print(f"note: {escape(str(note))}")
    console.print(
        f"{s['rows']:,} test rows, classes {', '.join(map(str, s['classes']))}; {s['n_boot']} bootstrap resamples, "
        f"{100 * s['confidence']:.0f}% intervals; {s['slices_tested']:,} slices tested (at least {s['min_support']} rows)"
    )
    pct_metrics = {
        "accuracy",
        "precision_macro",
        "recall_macro",
        "f1_macro",
        "precision_weighted",
        "recall_weighted",
        "f1_weighted",
        "auroc",
        "average_precision",
        "ece",
    }
    table = Table(title="Metrics", title_justify="left")
    for col in ("metric", "value", "interval"):
        table.add_column(col, justify="left" if col == "metric" else "right")
    comp = {r["metric"]: r for r in result.comparison or []}
    if result.comparison is not None:
        for col in ("baseline", "change", "p (adj.)"):
            table.add_column(col, justify="right")
    for name, block in result.metrics.items():
        pct = name in pct_metrics
        val = _pct(block["value"]) if pct and block["value"] is not None else _fmt_opt(block["value"], pct=False)
        row = [name, val, _ci(block, pct)]
        if name in comp:
            r = comp[name]
            b = _pct(r["baseline"]) if pct else f"{r['baseline']:.4f}"
            change = f"{100 * r['delta']:+.2f} pt" if pct else f"{r['delta']:+.4f}"
            style = "red" if r["significant"] else ""
            row += [b, f"[{style}]{change}[/]" if style else change, f"{r['p_value']:.3g}"]
        table.add_row(*row)
    console.print(table)
    pc = Table(title="Per class", title_justify="left")
    for col in ("class", "support", "precision", "recall", "F1"):
        pc.add_column(col, justify="left" if col == "class" else "right")
    for c in result.per_class:
        pc.add_row(
            escape(str(c["class"])),
            str(c["support"]),
            *(f"{_pct(c[m]['value'])} {_ci(c[m])}" for m in ("precision", "recall", "f1")),
        )
    console.print(pc)
    console.print(f"Expected calibration error: {_pct(result.metrics['ece']['value'])} {_ci(result.metrics['ece'])}")
    if result.weak_slices:
        ws = Table(
            title=f"Weak slices (significantly less accurate than the other rows; {s['weak_slices_found']} found)",
            title_justify="left",
        )
        for col in ("slice", "rows", "accuracy", "other rows", "q"):
            ws.add_column(col, justify="left" if col == "slice" else "right")
        for w in result.weak_slices[:top]:
            ws.add_row(
                escape(w["slice"]),
                str(w["support"]),
                f"{_pct(w['accuracy']['value'])} {_ci(w['accuracy'])}",
                _pct(w["rest_accuracy"]),
                f"{w['q_value']:.2g}",
            )
        console.print(ws)
    else:
        console.print("Weak slices: none significant.")
    for u in result.user_slices:
        a = u["accuracy"]["value"]
        line = f"slice {escape(u['slice'])}: {u['support']} rows"
        if a is not None:
            line += f", accuracy {_pct(a)} {_ci(u['accuracy'])} vs {_pct(u['rest_accuracy'])} elsewhere"
        if u.get("baseline") is not None:
            line += f"; baseline {_pct(u['baseline'])}, change {100 * -u['drop']:+.2f} pt (p {u['p_value']:.3g})"
        console.print(line)
    if result.comparison is not None:
        if result.slice_regressions:
            sr = Table(
                title=f"Slices where the model is worse than the baseline ({s['slice_regressions_found']} found)",
                title_justify="left",
            )
            for col in ("slice", "rows", "baseline", "model", "change", "interval", "q"):
                sr.add_column(col, justify="left" if col == "slice" else "right")
            for r in result.slice_regressions[:top]:
                sr.add_row(
                    escape(r["slice"]),
                    str(r["support"]),
                    _pct(r["baseline"]),
                    _pct(r["new"]),
                    f"{100 * r['delta']:+.2f} pt",
                    _ci(r["ci"]),
                    f"{r['q_value']:.2g}",
                )
            console.print(sr)
        else:
            console.print("Slices worse than the baseline: none significant.")
    if result.backdoor:
        bd = Table(title="Backdoor probe (attack success rate)", title_justify="left")
        for col in ("trigger", "target", "rows", "model ASR", "baseline ASR"):
            bd.add_column(col, justify="left" if col == "trigger" else "right")
        for b in result.backdoor:
            base = b["baseline"]
            bd.add_row(
                escape(" and ".join(f"{c} = {v!r}" for c, v in b["conditions"].items())),
                escape(str(b["target"])),
                str(b["rows"]),
                f"{_pct(b['new']['value'])} {_ci(b['new'])}" if b["new"]["value"] == b["new"]["value"] else "-",
                f"{_pct(base['value'])} {_ci(base)}" if base and base["value"] == base["value"] else "-",
            )
        console.print(bd)
    if sig:
        console.print(f"[red]{len(sig)} significant regression(s):[/]")
        order = {"asr": 0, "slice_drop": 1, "metric_drop": 2, "calibration": 3}
        for r in sorted(sig, key=lambda r: order.get(r["rule"], 4))[:top]:
            where = (
                f" in {r['slice']}" if r.get("slice") else (f" for trigger {r['trigger']}" if r.get("trigger") else "")
            )
            console.print(f"  {r['rule']}: {escape(str(r['metric']))}{escape(where)}: {_change(r)}")
        if len(sig) > top:
            console.print(f"  ... and {len(sig) - top} more (see --json)")
    elif result.comparison is not None:
        console.print("[green]No significant regression against the baseline.[/]")


def _change(r: dict[str, Any]) -> str:
    if r.get("baseline") is None:
        return f"{_pct(r['new'])}"
    return f"{r['baseline']:.4f} -> {r['new']:.4f} (p {r['p_value']:.3g})"


# ---------------------------------------------------------------------- contracts, ledger, diff, incremental

contract_app = typer.Typer(help="Infer a data contract from trusted data, and check new data against it.")
ledger_app = typer.Typer(help="The provenance ledger: record dataset versions, trust them, list and show them.")
app.add_typer(contract_app, name="contract")
app.add_typer(ledger_app, name="ledger")

DbOption = Annotated[
    str | None,
    typer.Option(
        "--db", help="Ledger database URL (default: env POISONGUARD_DB, else sqlite:///poisonguard-ledger.db)."
    ),
]


def _new_file(path: Path, what: str, *, force: bool, inputs: tuple[Path, ...] = ()) -> None:
    """Outputs go to new files: refuse to overwrite an input, or an existing file without --force."""
    for p in inputs:
        if p.exists() and path.exists() and path.resolve() == p.resolve():
            raise ConfigError(f"{what} {path}: is an input file; choose another path.")
    if path.exists() and not force:
        raise ConfigError(f"{what} {path}: exists; pass --force to overwrite it, or choose another path.")


@contract_app.command("infer")
def contract_infer(
    ctx: typer.Context,
    data: Annotated[Path, typer.Argument(help="Trusted data: CSV, TSV, Parquet or JSON Lines.", show_default=False)],
    label: Annotated[str, typer.Option("--label", "-l", help="The label (class) column.", show_default=False)],
    id: Annotated[str | None, typer.Option("--id", help="A row id column (its uniqueness becomes a rule).")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write the contract here (default: stdout).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Allow --out to overwrite an existing file.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show the traceback of an error.")] = False,
) -> None:
    """Write the contract that DATA satisfies (YAML): types, nulls, ranges, categories, label set and balance."""
    from .contracts import infer_contract

    ctx.meta[_DEBUG_KEY] = debug
    if out is not None:
        _new_file(out, "--out", force=force, inputs=(data,))
    contract = infer_contract(data, label=label, id=id, name=data.name)
    if out is None:
        sys.stdout.write(contract.to_yaml())
    else:
        contract.save(out)
        print(f"Wrote the contract to {out}", file=sys.stderr)


@contract_app.command("check")
def contract_check(
    ctx: typer.Context,
    data: Annotated[Path, typer.Argument(help="Data to check.", show_default=False)],
    contract: Annotated[Path, typer.Argument(help="The contract (YAML).", show_default=False)],
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write the violations to this JSON file.")
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show the traceback of an error.")] = False,
) -> None:
    """Check DATA against CONTRACT and list every violation. Exit 0 when it holds, 2 on violations."""
    import json

    from .contracts import check_contract

    ctx.meta[_DEBUG_KEY] = debug
    if json_out is not None:
        _new_file(json_out, "--json", force=True, inputs=(data, contract))
    result = check_contract(data, contract, name=str(data))
    console = Console(highlight=False)
    if json_out is not None:
        json_out.write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    if result.ok:
        console.print(
            f"[green]ok[/]: {escape(str(data))} ({result.rows:,} rows) holds the contract {escape(str(contract))}"
        )
        return
    table = Table(title=f"{len(result.violations)} contract violations in {escape(str(data))}", title_justify="left")
    for name, justify in (("rule", "left"), ("column", "left"), ("count", "right"), ("example rows", "left")):
        table.add_column(name, justify=justify, no_wrap=True)
    table.add_column("message", overflow="fold")
    for v in result.violations:
        table.add_row(
            v.rule, escape(str(v.column or "")), f"{v.count:,}", ", ".join(map(str, v.examples)), escape(v.message)
        )
    console.print(table)
    raise typer.Exit(EXIT_USAGE)


def _parse_meta(specs: list[str]) -> dict[str, str]:
    meta: dict[str, str] = {}
    for spec in specs:
        key, sep, value = spec.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--meta expects KEY=VALUE (for example --meta vendor=acme); got {spec!r}.")
        meta[key.strip()] = value.strip()
    return meta


def _print_version(console: Console, v: Any, *, full: bool = False) -> None:
    trusted = "[green]trusted[/]" if v.trusted else "untrusted"
    console.print(
        f"[bold]{escape(v.ref)}[/] (id {v.id}): {v.rows:,} rows, {trusted}, {escape(v.content_hash[:23])}..., "
        f"{escape(v.path)}",
        highlight=False,
    )
    if not full:
        return
    console.print(
        f"  recorded {v.created_at:%Y-%m-%d %H:%M:%S}"
        + (f", trusted {v.trusted_at:%Y-%m-%d %H:%M:%S}" if v.trusted_at else "")
    )
    console.print(
        f"  label '{escape(v.label)}', id {escape(v.id_column or '-')}, source {escape(v.source_column or '-')}"
    )
    if v.sources:
        console.print("  sources: " + ", ".join(f"{escape(k)} ({n:,})" for k, n in v.sources.items()))
    if v.metadata:
        console.print("  metadata: " + ", ".join(f"{escape(str(k))}={escape(str(x))}" for k, x in v.metadata.items()))
    if v.contract is not None:
        c = v.contract
        state = (
            "holds"
            if c["ok"]
            else f"{len(c['violations'])} violations (" + ", ".join(sorted({x["rule"] for x in c["violations"]})) + ")"
        )
        console.print(f"  contract: {escape(state)}")
    if v.scan is not None:
        console.print(
            f"  scan: {v.scan['verdict']}, {v.scan['flagged']:,} of {v.scan['rows']:,} rows flagged",
            highlight=False,
        )


@ledger_app.command("add")
def ledger_add(
    ctx: typer.Context,
    data: Annotated[Path, typer.Argument(help="The dataset version's file.", show_default=False)],
    label: Annotated[str, typer.Option("--label", "-l", help="The label (class) column.", show_default=False)],
    db: DbOption = None,
    name: Annotated[str | None, typer.Option(help="Dataset name (default: the file name without suffix).")] = None,
    source: Annotated[str | None, typer.Option(help="A column naming each row's source or batch.")] = None,
    id: Annotated[str | None, typer.Option("--id", help="A row id column.")] = None,
    meta: Annotated[list[str] | None, typer.Option("--meta", help="KEY=VALUE metadata (repeatable).")] = None,
    contract: Annotated[Path | None, typer.Option(help="Check this contract and record the result.")] = None,
    scan: Annotated[bool, typer.Option("--scan", help="Scan the version and record the summary.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show the traceback of an error.")] = False,
) -> None:
    """Record a new (untrusted) version of a dataset: content hash, row fingerprints, metadata, checks."""
    from ._progress import RichProgress
    from .ledger import Ledger

    ctx.meta[_DEBUG_KEY] = debug
    with Ledger(db) as led, RichProgress(quiet=not scan) as progress:
        v = led.add(
            data,
            label=label,
            id=id,
            source=source,
            name=name,
            metadata=_parse_meta(meta or []),
            contract=contract,
            scan=scan,
            progress=progress,
        )
    _print_version(Console(highlight=False), v, full=True)


@ledger_app.command("trust")
def ledger_trust(
    ctx: typer.Context,
    version: Annotated[str, typer.Argument(help="NAME@NUMBER, an id, or NAME (its latest).", show_default=False)],
    db: DbOption = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show the traceback of an error.")] = False,
) -> None:
    """Mark a version trusted: later batches are diffed and scanned against it."""
    from .ledger import Ledger

    ctx.meta[_DEBUG_KEY] = debug
    with Ledger(db) as led:
        v = led.trust(version)
    _print_version(Console(highlight=False), v)


@ledger_app.command("list")
def ledger_list(
    ctx: typer.Context,
    db: DbOption = None,
    name: Annotated[str | None, typer.Option(help="Only this dataset's versions.")] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show the traceback of an error.")] = False,
) -> None:
    """List the recorded versions."""
    from .ledger import Ledger

    ctx.meta[_DEBUG_KEY] = debug
    with Ledger(db) as led:
        versions = led.list(name)
    console = Console(highlight=False)
    if not versions:
        console.print("no versions recorded yet; add one with `poisonguard ledger add DATA --label COL`")
        return
    table = Table(title_justify="left")
    for col in ("version", "id", "rows", "trusted", "contract", "scan", "recorded", "file"):
        table.add_column(col, justify="right" if col in {"id", "rows"} else "left", overflow="fold")
    for v in versions:
        contract = (
            "-" if v.contract is None else ("ok" if v.contract["ok"] else f"{len(v.contract['violations'])} violations")
        )
        table.add_row(
            escape(v.ref),
            str(v.id),
            f"{v.rows:,}",
            "yes" if v.trusted else "no",
            contract,
            "-" if v.scan is None else str(v.scan["verdict"]),
            f"{v.created_at:%Y-%m-%d %H:%M}",
            escape(v.path),
        )
    console.print(table)


@ledger_app.command("show")
def ledger_show(
    ctx: typer.Context,
    version: Annotated[str, typer.Argument(help="NAME@NUMBER, an id, or NAME (its latest).", show_default=False)],
    db: DbOption = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show the traceback of an error.")] = False,
) -> None:
    """Show one version: file, hash, sources, metadata, contract result, scan summary."""
    from .ledger import Ledger

    ctx.meta[_DEBUG_KEY] = debug
    with Ledger(db) as led:
        v = led.show(version)
    _print_version(Console(highlight=False), v, full=True)


@app.command("diff")
def diff_cmd(
    ctx: typer.Context,
    old: Annotated[Path, typer.Argument(help="The older (trusted) table.", show_default=False)],
    new: Annotated[Path, typer.Argument(help="The newer table.", show_default=False)],
    id: Annotated[str | None, typer.Option("--id", help="Row id column: pairs rows to find changed ones.")] = None,
    label: Annotated[str | None, typer.Option("--label", "-l", help="Label column: list label changes.")] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write added/removed/changed/label_changes CSVs here.")
    ] = None,
    top: Annotated[int, typer.Option(min=0, help="How many label changes to list.")] = 20,
    debug: Annotated[bool, typer.Option("--debug", help="Show the traceback of an error.")] = False,
) -> None:
    """Rows added, removed and changed from OLD to NEW; label changes (the classic poisoning channel) listed."""
    from .diff import diff
    from .io import read_table

    ctx.meta[_DEBUG_KEY] = debug
    if out is not None:
        if out.is_dir() and any(out.iterdir()):
            raise ConfigError(f"--out {out}: the directory is not empty; choose a new directory for the diff.")
        out.mkdir(parents=True, exist_ok=True)
    a, b = read_table(old), read_table(new)
    d = diff(a, b, id=id, label=label)
    console = Console(highlight=False)
    console.print(
        f"{escape(str(old))} -> {escape(str(new))}: {len(d.added):,} added, {len(d.removed):,} removed, "
        f"{len(d.changed):,} changed ({len(d.label_changes):,} label changes), {d.unchanged:,} unchanged"
    )
    for note in d.notes:
        console.print(f"  - {escape(note)}")
    if len(d.changed):
        counts = d.changed["changed_columns"].explode().value_counts()
        console.print("Changed columns: " + ", ".join(f"{escape(str(c))} ({n:,})" for c, n in counts.items()))
    if len(d.label_changes) and top:
        shown = d.label_changes.head(top)
        table = Table(title=f"Label changes ({len(shown)} of {len(d.label_changes):,})", title_justify="left")
        for col in ("id", "old_row", "new_row", "old_label", "new_label"):
            table.add_column(col)
        for rec in shown.itertuples(index=False):
            table.add_row(*(escape(str(x)) for x in rec))
        console.print(table)
    if out is not None:
        written = d.save(out, a, b)
        console.print(f"Wrote {', '.join(p.name for p in written)} to {escape(str(out))}/")


def _resolve_baseline(baseline: str, db: str | None, label: str) -> tuple[Any, str, dict[str, str | None]]:
    """A baseline file path, or ledger:NAME[@N] (a trusted version): (data, description, id/source defaults)."""
    if not baseline.startswith("ledger:"):
        path = Path(baseline)
        if not path.exists():
            raise ConfigError(f"--baseline {baseline}: no such file; pass trusted data or ledger:NAME[@VERSION].")
        return path, str(path), {}
    from .ledger import Ledger

    spec = baseline.removeprefix("ledger:")
    with Ledger(db) as led:
        if "@" in spec:
            v = led.show(spec)
            if not v.trusted:
                raise ConfigError(
                    f"--baseline {baseline}: version {v.ref} is not trusted; trust it first "
                    f"(poisonguard ledger trust {v.ref}) or pass a trusted version."
                )
        else:
            v = led.latest_trusted(spec)
            if v is None:
                raise ConfigError(
                    f"--baseline {baseline}: dataset '{spec}' has no trusted version; see `poisonguard ledger list` "
                    "and trust one with `poisonguard ledger trust NAME@N`."
                )
        if v.label != label:
            raise ConfigError(f"--baseline {baseline}: {v.ref} was recorded with label '{v.label}', not '{label}'.")
        _, frame = led.load(v.ref)
    return frame, f"{v.ref} ({v.path})", {"id": v.id_column, "source": v.source_column}


def run_incremental_scan(
    data: Path,
    *,
    baseline: str,
    db: str | None,
    label: str,
    console: Console,
    source: str | None = None,
    id: str | None = None,
    exclude: tuple[str, ...] = (),
    types: dict[str, str] | None = None,
    out: Path | None = None,
    force: bool = False,
    fpr: float = 0.01,
    seed: int = 0,
    quiet: bool = False,
    top: int = 10,
    debug: bool = False,
) -> str:
    """``poisonguard scan DATA --baseline TRUSTED``: score the rows TRUSTED lacks; returns the verdict."""
    from ._progress import RichProgress
    from .incremental import fit_reference, scan_incremental
    from .scanner import _check_params

    _check_params(fpr, seed)
    if out is not None:
        _prepare_out(out, force=force, inputs=(data,))
    trusted, described, defaults = _resolve_baseline(baseline, db, label)
    id = id or defaults.get("id")
    source = source or defaults.get("source")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with RichProgress(quiet=quiet) as progress:
            ref = fit_reference(
                trusted,
                label=label,
                source=source,
                id=id,
                exclude=exclude,
                types=types,
                seed=seed,
                fpr=fpr,
                progress=progress,
                name=described,
            )
            result = scan_incremental(
                data, baseline=ref, label=label, seed=seed, fpr=fpr, progress=progress, name=str(data)
            )
    _report_warnings(caught, debug=debug)
    s = result.summary
    b = s["batch"]
    d = s["diff"]
    colour = VERDICT_COLOURS.get(result.verdict, "white")
    if quiet:
        console.print(f"{result.verdict}: {s['flagged']:,} of {s['scored']:,} new rows flagged ({escape(str(data))})")
    else:
        console.print(
            f"[bold]poisonguard {__version__}[/] incremental scan of [bold]{escape(str(data))}[/] against "
            f"{escape(described)}: {s['rows']:,} rows, {d['added']:,} added, {d['changed']:,} changed "
            f"({d['label_changes']:,} label changes), {d['unchanged']:,} unchanged; {s['scored']:,} rows scored"
        )
        console.print(f"\nVerdict: [bold {colour}]{result.verdict.upper()}[/]")
        console.print(
            f"Batch test: a new row is more suspicious than a trusted row with probability {b['auc']:.3f} "
            f"(0.5 = alike); {b.get('flagged', 0):,} flagged at the fixed levels "
            f"({_pct(b.get('flagged_fraction', 0.0))} vs {_pct(b.get('trusted_flagged_fraction', 0.0))} of the "
            f"trusted rows); p = {b['pvalue']:.3g}" + (" [bold red](significant)[/]" if b["significant"] else "")
        )
        console.print(f"Flagged: {s['flagged']:,} of {s['scored']:,} scored rows at a {_pct(fpr)} false-alarm rate")
        for note in s["notes"]:
            console.print(f"  - {escape(str(note))}")
        flagged = result.flagged
        if top > 0 and len(flagged):
            shown = flagged.head(top)
            cols = ["row", *(c for c in ("id", "source") if c in shown.columns), "status", "label", "score", "reasons"]
            table = Table(title=f"Top {len(shown)} of {len(flagged):,} flagged rows", title_justify="left")
            for c in cols:
                table.add_column(c, overflow="fold", ratio=4 if c == "reasons" else None, no_wrap=c != "reasons")
            for rec in shown[cols].itertuples(index=False):
                table.add_row(*(f"{v:.4f}" if c == "score" else escape(str(v)) for c, v in zip(cols, rec, strict=True)))
            console.print()
            console.print(table)
        if result.by_source is not None:
            table = Table(title="By source (new rows)", title_justify="left")
            for c in ("source", "rows", "flagged", "flagged %", "AUC vs trusted", "worse than trusted (p)"):
                table.add_column(c, justify="left" if c == "source" else "right")
            for rec in result.by_source.to_dict("records"):
                worse = "[bold red]yes[/]" if rec["worse_than_trusted"] else "no"
                table.add_row(
                    escape(str(rec["source"])),
                    f"{int(rec['rows']):,}",
                    f"{int(rec['flagged']):,}",
                    _pct(rec["flagged_fraction"]),
                    f"{rec['auc_vs_trusted']:.3f}",
                    f"{worse} ({rec['p_worse_than_trusted']:.2g})",
                )
            console.print()
            console.print(table)
    if out is not None:
        try:
            written = result.save(out)
        except OSError as exc:
            raise ConfigError(f"--out {out}: cannot write the results ({exc.strerror or exc}).") from exc
        if not quiet:
            console.print(f"\nWrote {', '.join(p.name for p in written)} to {escape(str(out))}/")
    return result.verdict


@app.command()
def version() -> None:
    """Print the poisonguard version."""
    typer.echo(f"poisonguard {__version__}")


def main() -> None:
    app(prog_name="poisonguard")


if __name__ == "__main__":
    main()
