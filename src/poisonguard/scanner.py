"""``poisonguard.scan``: load, encode, run every detector, fuse, judge."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import norm, rankdata

from . import __version__
from .context import Progress, ScanContext
from .detectors import DEFAULT_DETECTORS, REPRESENTATION_DETECTORS, Detector, DetectorOutput, get_detector
from .errors import ConfigError, DetectorError, PoisonguardError
from .fusion import excess, fuse, row_reasons, verdict
from .io import Dataset, load_dataset
from .result import ScanResult


def _findings(status: Mapping[str, Mapping[str, Any]], level: str, evidence: list[str]) -> tuple[str, list[str]]:
    """Data-set level findings that detectors report in their info (``info["finding"]``, a sentence that says
    which rows to look at): each joins the evidence, and one that no flagged row backs leaves the data set
    ``suspicious`` rather than ``clean``."""
    found = [str(info["finding"]) for info in status.values() if info.get("finding")]
    if not found:
        return level, evidence
    if level == "clean":
        return "suspicious", found
    return level, [*evidence, *found]


def _detectors(
    spec: Sequence[str] | Mapping[str, dict[str, Any]] | None, *, representation: bool = False
) -> list[Detector]:
    if spec is None:
        spec = DEFAULT_DETECTORS + (REPRESENTATION_DETECTORS if representation else ())
    if isinstance(spec, str):
        raise ConfigError("detectors must be a list of names (or a dict of name -> parameters), not a string.")
    if isinstance(spec, Mapping):
        dets = [get_detector(name, **(params or {})) for name, params in spec.items()]
    else:
        dets = [get_detector(name) for name in spec]
    if not dets:
        raise ConfigError("at least one detector is needed.")
    return dets


def _embeddings_as_features(
    data: Any, embeddings: Any, label: Any, other: tuple[Any, ...], name: str | None
) -> tuple[Any, np.ndarray | None, bool]:
    """A table of labels only (ids, sources) with embeddings: the embeddings become its feature columns.

    That is the usual shape of text and image data: the content lives in the model's representation.
    """
    from .io import read_table
    from .representation import load_embeddings

    frame = read_table(data) if isinstance(data, str | Path) else data
    if not isinstance(frame, pd.DataFrame) or not isinstance(label, str):
        return data, None, False
    used = {label, *(c for c in other if c is not None)}
    if any(c not in used for c in frame.columns):
        return frame, None, False
    emb = load_embeddings(embeddings, len(frame), name=str(name or "embeddings"))
    cols = pd.DataFrame(emb, columns=[f"embedding_{i}" for i in range(emb.shape[1])])
    return pd.concat([frame.reset_index(drop=True), cols], axis=1), emb, True


def _check_params(fpr: float, seed: int) -> None:
    if not isinstance(fpr, int | float) or isinstance(fpr, bool) or not 0 < fpr < 0.5:
        raise ConfigError(
            f"fpr must be a number between 0 and 0.5 (the share of clean rows that may be flagged); got {fpr!r}."
        )
    if not isinstance(seed, int | np.integer) or isinstance(seed, bool) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer; got {seed!r}.")


def scan(
    data: Any,
    *,
    label: Any,
    source: str | None = None,
    id: str | None = None,
    exclude: Sequence[str] = (),
    types: Mapping[str, str] | None = None,
    seed: int = 0,
    fpr: float = 0.01,
    detectors: Sequence[str] | Mapping[str, dict[str, Any]] | None = None,
    canaries: bool = False,
    progress: Progress | None = None,
    name: str | None = None,
    embeddings: Any = None,
    representation: str | None = None,
) -> ScanResult:
    """Score every row of a labelled table for poisoning.

    ``data`` is a file path (CSV, TSV, Parquet, JSON Lines), a DataFrame, or a 2-D array (then ``label`` may be
    an array of labels). ``fpr`` is the share of clean rows that may be flagged. ``canaries=True`` plants a few
    seeded poison rows of each family in a copy, scans it again and reports how many were caught.

    ``embeddings``: a model's representation of each row (an (n, k) array or a .npy/.npz/.parquet/.csv file,
    aligned with the rows), for text and image models; the deep k-NN detector then joins the scan, and a table
    that holds only labels (ids, sources) gets the embeddings as its feature columns. ``representation="leaves"``
    derives a representation from the table instead (a random forest's leaf embedding).
    """
    _check_params(fpr, seed)
    if representation not in (None, "leaves", "embeddings"):
        raise ConfigError(f"representation must be None, 'leaves' or 'embeddings'; got {representation!r}.")
    if representation == "embeddings" and embeddings is None:
        raise ConfigError("representation='embeddings' needs embeddings=...; pass an array or a file.")
    t0 = time.perf_counter()
    progress = progress or Progress()
    emb = None
    as_features = False
    if embeddings is not None:
        data, emb, as_features = _embeddings_as_features(data, embeddings, label, (id, source, *exclude), name)
    with progress.task("loading data"):
        ds = load_dataset(data, label=label, source=source, id=id, exclude=exclude, types=dict(types or {}), name=name)
    if embeddings is not None and emb is None:
        from .representation import load_embeddings

        emb = load_embeddings(embeddings, ds.n_rows)
    if as_features:
        note = (
            f"the table has no feature columns besides the label, so the {emb.shape[1]} embedding dimensions "
            "serve as its features (columns embedding_0, embedding_1, ...)"
        )
        ds = dataclasses.replace(ds, notes=(*ds.notes, note))
    if as_features and detectors is None:
        # a trigger is a value stamped into the data; embedding coordinates are not data values, and the
        # exact zeros of ReLU units co-occur by class in every clean model
        detectors = tuple(d for d in DEFAULT_DETECTORS if d != "trigger_pattern") + REPRESENTATION_DETECTORS
    result = scan_dataset(
        ds,
        seed=seed,
        fpr=fpr,
        detectors=detectors,
        progress=progress,
        embeddings=emb,
        representation="embeddings" if emb is not None else representation,
    )
    if canaries:
        from .canaries import canary_check

        report = canary_check(ds, result, seed=seed, fpr=fpr, detectors=detectors, progress=progress)
        result.summary["canaries"] = report
        recall = report.get("recall")
        if recall:
            est = result.summary["estimated_poisoned_fraction"]
            est["recall_adjusted"] = round(min(1.0, est["value"] / recall), 5)
    result.info["seconds"] = round(time.perf_counter() - t0, 3)
    return result


def scan_dataset(
    ds: Dataset,
    *,
    seed: int = 0,
    fpr: float = 0.01,
    detectors: Sequence[str] | Mapping[str, dict[str, Any]] | None = None,
    progress: Progress | None = None,
    embeddings: np.ndarray | None = None,
    representation: str | None = None,
) -> ScanResult:
    """Scan an already loaded ``Dataset`` (used by ``scan`` and by canary rescans)."""
    return _scan_dataset(
        ds,
        seed=seed,
        fpr=fpr,
        detectors=detectors,
        progress=progress,
        embeddings=embeddings,
        representation=representation,
    )[0]


def _scan_dataset(
    ds: Dataset,
    *,
    seed: int = 0,
    fpr: float = 0.01,
    detectors: Sequence[str] | Mapping[str, dict[str, Any]] | None = None,
    progress: Progress | None = None,
    embeddings: np.ndarray | None = None,
    representation: str | None = None,
) -> tuple[ScanResult, ScanContext, list[Detector], np.ndarray]:
    """``scan_dataset`` that also returns the context, the fitted detectors (in the order of the result's
    columns) and the rows x detectors p-values: what an incremental scan keeps as its reference."""
    _check_params(fpr, seed)
    progress = progress or Progress()
    dets = _detectors(detectors, representation=representation is not None)
    ctx = ScanContext(
        data=ds, seed=int(seed), progress=progress, embeddings=embeddings, representation_kind=representation
    )
    needs = [d.name for d in dets if d.name in REPRESENTATION_DETECTORS]
    if needs and representation is None:
        raise ConfigError(
            f"detector(s) {', '.join(needs)} need a representation: pass embeddings=... (--embeddings FILE) or "
            "representation='leaves' (--representation leaves)."
        )
    outputs: dict[str, DetectorOutput] = {}
    status: dict[str, dict[str, Any]] = {}
    ctx.encode()
    for det in sorted(dets, key=lambda d: not d.fits_first):  # stable: the named order otherwise
        t = time.perf_counter()
        try:
            det.fit(ctx)
            parts = [det.score(ctx, rows) for rows in ctx.chunks()]
        except PoisonguardError:
            raise
        except Exception as exc:  # a broken detector must never read as a clean data set
            raise DetectorError(f"detector '{det.name}' failed on {ds.name}: {type(exc).__name__}: {exc}") from exc
        outputs[det.name] = DetectorOutput.concat(parts)
        status[det.name] = {"status": "ok", "seconds": round(time.perf_counter() - t, 3), **det.info}

    names = list(dict.fromkeys(det.name for det in dets))  # the order they were named in
    status = {n: status[n] for n in names}
    P = np.column_stack([outputs[n].pvalues for n in names])
    R = np.column_stack([outputs[n].reasons for n in names])
    dets_by_name = {d.name: d for d in dets}
    weights = np.array([dets_by_name[n].weight for n in names])
    gated = np.array([dets_by_name[n].gated for n in names])
    adapts = np.array([dets_by_name[n].adapts for n in names])
    # rows a class-level finding names for review (only detectors that name some; most scans have none)
    lead = None
    if any("lead" in outputs[n].extra for n in names):
        lead = np.column_stack([outputs[n].extra.get("lead", np.full(ds.n_rows, np.inf)) for n in names])
    explained = np.zeros(ds.n_rows, dtype=bool)
    for trig in ctx.cache.get("triggers", []):
        explained[trig.rows] = True
    fused = fuse(P, weights, gated, fpr, adapts=adapts, lead=lead, explained=explained)
    reasons = row_reasons(R, P, fused, names)

    rows = pd.DataFrame(
        {
            "row": np.arange(ds.n_rows),
            "score": fused.score,
            "p_value": fused.pvalue,
            "flagged": fused.flagged,
            # named for review by a class-level finding short of its flag level (see ``fuse``'s ``lead``)
            "review": np.zeros(ds.n_rows, dtype=bool) if fused.led_by is None else fused.led_by >= 0,
            "reasons": reasons,
        }
    )
    if ds.id is not None:
        rows.insert(1, "id", ds.frame[ds.id].to_numpy())
    rows.insert(rows.columns.get_loc("score"), "label", ds.classes[ds.y])
    for n in names:
        rows[f"{n}_score"] = outputs[n].scores
    if "duplicates" in outputs:
        rows["duplicate_group"] = outputs["duplicates"].extra["duplicate_group"]
    sources = ds.sources()
    if sources is not None:
        rows.insert(1, "source", sources)

    # what clean data would give per class: a detector's share of the budget times the class's rows, or what
    # its null says per class (the label model's doubt falls mostly on the classes it is least sure of)
    class_n = np.bincount(ds.y, minlength=ds.n_classes).astype(np.float64)
    base_levels = weights / weights.sum() * fpr
    expected = np.zeros(ds.n_classes)
    for j, n in enumerate(names):
        e = dets_by_name[n].expected_flags_by_class(float(base_levels[j]), ds.n_classes)
        expected += base_levels[j] * class_n if e is None else e
    expected = np.minimum(expected, class_n)
    by_class = _breakdown(
        rows,
        "label",
        fpr,
        compare=False,
        expected={str(c): float(v) for c, v in zip(ds.classes, expected, strict=True)},
    )
    by_source = _breakdown(rows, "source", fpr) if sources is not None else None
    worse = [] if by_source is None else by_source.loc[by_source["worse_than_rest"], "source"].astype(str).tolist()
    # A detector that may not flag at the level it earned (its clean rows' p-values are disturbed by the poison)
    # still testifies to the data set at that level: its excess passed a Bonferroni-corrected test to earn it.
    flagged_by = [int((P[:, j] <= fused.levels[j]).sum()) for j in range(len(names))]
    excesses = [
        excess(n, flagged_by[j], ds.n_rows, fused.levels[j])
        if adapts[j] or fused.earned[j] <= fused.levels[j]
        else excess(n, int((P[:, j] <= fused.earned[j]).sum()), ds.n_rows, fused.earned[j], flags=False)
        for j, n in enumerate(names)
    ]
    n_flagged = int(fused.flagged.sum())
    level, evidence = verdict(excesses, n_flagged, ds.n_rows, fpr, worse)
    level, evidence = _findings(status, level, evidence)
    top = max(excesses, key=lambda e: e.fraction)
    label_issues = outputs.get("label_consistency")
    summary: dict[str, Any] = {
        "verdict": level,
        "evidence": evidence,
        "rows": ds.n_rows,
        "flagged": int(fused.flagged.sum()),
        "flagged_fraction": round(float(fused.flagged.mean()), 6),
        "fpr": fpr,
        "threshold": fused.threshold,
        "expected_false_flags_at_most": round(fpr * ds.n_rows, 2),
        "estimated_poisoned_fraction": {
            "value": round(top.fraction, 5),
            "low": round(top.low, 5),
            "high": round(top.high, 5),
            "detector": top.detector,
            "meaning": "rows flagged beyond what clean data would give, as a share of all rows (95% interval); "
            "a lower bound, since not every poisoned row is caught",
        },
        "confident_learning_issues": int(label_issues.extra["label_issue"].sum()) if label_issues else None,
        "triggers": [t.to_dict() for t in ctx.cache.get("triggers", [])],
        "data": {
            "name": ds.name,
            "label": ds.label,
            "classes": [str(c) for c in ds.classes],
            "features": ds.columns,
            "ignored": ds.ignored,
            "fingerprint": fingerprint(ds),
        },
        "notes": list(ds.notes) + _concentrated_flags(by_class),
        "seed": int(seed),
        "version": __version__,
    }
    for j, n in enumerate(names):
        status[n].update(
            weight=float(weights[j] / weights.sum()),
            gated=bool(gated[j]),
            flag_level=float(fused.levels[j]),
            flagged=flagged_by[j],
            expected_on_clean=round(float(fused.levels[j]) * ds.n_rows, 2),
        )
        if not excesses[j].flags:
            status[n]["excess_level"] = float(fused.earned[j])
    info = {
        "detectors": status,
        "threshold_rule": "flag when min_d p_d / w_d <= fpr (weighted Bonferroni; gated detectors count only "
        "below their own flag level w_d * fpr)",
    }
    result = ScanResult(
        rows=rows,
        summary=summary,
        by_class=by_class,
        by_source=by_source,
        info=info,
        data=ds,
        triggers=list(ctx.cache.get("triggers", [])),
    )
    return result, ctx, [dets_by_name[n] for n in names], P


CONCENTRATED_SHARE = 0.1  # a class this much of whose rows are flagged gets a note, if clean data would flag as many


def _concentrated_flags(by_class: pd.DataFrame) -> list[str]:
    """A note for each class with a tenth or more of its rows flagged, where clean data would flag about as many:
    the label model doubts a rare class's rows most, so its false flags gather there (bank_marketing with 1%
    'yes': about 100 of 258 genuine rows), and dropping them would drop that share of the class."""
    out = []
    for r in by_class.to_dict("records"):
        k, exp = int(r["flagged"]), float(r["expected_flagged"])
        if k >= 5 and r["flagged_fraction"] >= CONCENTRATED_SHARE and k <= exp + 2.0 * np.sqrt(exp) + 1.0:
            out.append(
                f"{k:,} of the {int(r['rows']):,} rows of class '{r['label']}' are flagged "
                f"({r['flagged_fraction']:.0%}), about what clean data gives there ({exp:,.0f}: the label model is "
                "least sure of this class's rows); review them before dropping them, which would drop that share "
                "of the class"
            )
    return out


def _breakdown(
    rows: pd.DataFrame, key: str, fpr: float, *, compare: bool = True, expected: dict[str, float] | None = None
) -> pd.DataFrame:
    """Rows, flags and a rank test per group: is this group's score higher than the rest's?

    ``expected_flagged`` is what clean data would give the group: ``fpr`` of its rows, or ``expected`` (by group
    name) where the detectors' nulls say more; the estimated poisoned share is the flags beyond it.

    ``auc_vs_rest`` is the chance that a row of the group is more suspicious than a row of the rest (0.5 = no
    difference); its one-sided p-value comes from the Mann-Whitney normal approximation. Comparing whole score
    distributions finds a vendor whose rows are all a little off, not only one whose rows cross the flag line.
    Classes are not compared (``compare=False``): a minority class is naturally less certain than the rest.
    """
    g = rows.groupby(key, sort=True, observed=True)["flagged"].agg(["size", "sum"]).reset_index()
    g.columns = [key, "rows", "flagged"]
    g["flagged_fraction"] = g["flagged"] / g["rows"]
    exp = g["rows"] * fpr
    if expected is not None:
        exp = g[key].astype(str).map(expected).fillna(exp)
    g["expected_flagged"] = exp.round(1)
    g["estimated_poisoned_fraction"] = ((g["flagged"] - exp) / g["rows"]).clip(lower=0)
    if not compare:
        g[key] = g[key].astype(str)
        return g
    n = len(rows)
    ranks = rankdata(rows["score"].to_numpy())
    codes = pd.Categorical(rows[key], categories=g[key]).codes
    rank_sum = np.bincount(codes, weights=ranks, minlength=len(g))
    n1 = g["rows"].to_numpy(dtype=np.float64)
    n2 = n - n1
    with np.errstate(divide="ignore", invalid="ignore"):
        u = rank_sum - n1 * (n1 + 1) / 2
        auc = np.where(n2 > 0, u / (n1 * n2), 0.5)
        sd = np.sqrt(n1 * n2 * (n + 1) / 12)
        z = np.where(sd > 0, (u - n1 * n2 / 2) / sd, 0.0)
    g["auc_vs_rest"] = auc
    g["p_worse_than_rest"] = norm.sf(z) if len(g) > 1 else 1.0
    g["worse_than_rest"] = (g["p_worse_than_rest"] * len(g) < 0.01) & (g["auc_vs_rest"] > 0.55)
    g[key] = g[key].astype(str)
    return g


def fingerprint(ds: Dataset) -> str:
    """A content hash of the scanned table (row order included), for reports and provenance."""
    import hashlib

    h = pd.util.hash_pandas_object(ds.frame, index=False).to_numpy()
    return "sha256:" + hashlib.sha256(h.tobytes()).hexdigest()[:32]
