"""Incremental scans: judge the new part of a table by models fitted on a trusted snapshot.

A full scan scores every row out of fold, so poison in a new batch trains the very models that judge it. Here
the detectors are fitted on the trusted rows only (``fit_reference``, which is a plain scan of the trusted
data), then transferred to the rows that the trusted snapshot does not hold: added rows and, with an id column,
changed rows (``Detector.transfer``). Unchanged rows are not scored again. A dirty-label backdoor, invisible to
a model that learns its trigger from the poisoned rows, reads as a plain label error to a model that never saw it.

The trusted rows' own out-of-fold p-values are the calibration: each new row's p-value per detector is re-read
as the share of trusted rows at least as suspicious (a conformal p-value), so clean new rows are judged exactly
like trusted ones whatever a detector's null gets wrong. Fusion then flags rows as in a full scan. The batch as
a whole is tested against the trusted rows (a one-sided Mann-Whitney test on the fused score at fixed levels,
and a binomial test of the flagged count against the trusted flagged rate, Bonferroni over the two), and each
source in the batch is tested the same way.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import binom, mannwhitneyu

from . import __version__
from .context import CHUNK, Progress, ScanContext
from .detectors import Detector, DetectorOutput
from .diff import Diff, diff, row_fingerprints
from .errors import DetectorError, InputError, PoisonguardError
from .fusion import fuse, row_reasons
from .io import Dataset, load_dataset, read_table
from .result import ScanResult, _json_default
from .scanner import _breakdown, _check_params, _scan_dataset

BATCH_ALPHA = 1e-3  # as the full scan's verdict


@dataclass
class Reference:
    """Detectors fitted on trusted data, with the trusted rows' own scan (their out-of-fold scores calibrate
    the new rows). Fit once with ``fit_reference``; score any number of new batches against it."""

    data: Dataset
    context: ScanContext
    detectors: list[Detector]
    result: ScanResult
    fpr: float
    seed: int
    seconds: float
    # the trusted rows' out-of-fold p-values (rows x detectors): the calibration set for new rows
    pvalues: np.ndarray = field(repr=False, default_factory=lambda: np.empty((0, 0)))
    # trusted rows whose content (every column) occurs more than once in the trusted data
    twins: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0, dtype=bool))


def fit_reference(
    trusted: Any,
    *,
    label: Any,
    source: str | None = None,
    id: str | None = None,
    exclude: Sequence[str] = (),
    types: Mapping[str, str] | None = None,
    seed: int = 0,
    fpr: float = 0.01,
    detectors: Sequence[str] | Mapping[str, dict[str, Any]] | None = None,
    progress: Progress | None = None,
    name: str | None = None,
) -> Reference:
    """Scan the trusted data and keep its fitted detectors (arguments as for ``poisonguard.scan``)."""
    _check_params(fpr, seed)
    t0 = time.perf_counter()
    progress = progress or Progress()
    with progress.task("loading trusted data"):
        ds = load_dataset(
            trusted, label=label, source=source, id=id, exclude=exclude, types=dict(types or {}), name=name
        )
    result, ctx, dets, P = _scan_dataset(ds, seed=seed, fpr=fpr, detectors=detectors, progress=progress)
    twins = pd.Series(row_fingerprints(ds.frame)).duplicated(keep=False).to_numpy()
    seconds = round(time.perf_counter() - t0, 3)
    return Reference(ds, ctx, dets, result, fpr, int(seed), seconds, P, twins)


def conformal(P: np.ndarray, calibration: np.ndarray) -> np.ndarray:
    """Each detector's p-values re-read against the trusted rows' out-of-fold p-values: the share of trusted
    rows at least as suspicious (``(k + 1) / (n + 1)``, linearly interpolated between trusted values so that
    order is kept, also below the most suspicious trusted row).

    A detector's own null is fitted to out-of-fold statistics; a transferred model's statistics follow them
    closely but not exactly, and in a batch of 10,000 rows a slight shift earns a detector a larger level in
    fusion and flags clean rows. Against the trusted rows' own p-values, clean new rows are exchangeable with
    them, so these conformal p-values are valid whatever the detector's null gets wrong (Bates et al., "Testing
    for outliers with conformal p-values", Ann. Statist. 2023; Benjamini-Hochberg on them controls the FDR).
    """
    out = np.empty_like(P, dtype=np.float64)
    n = len(calibration)
    for j in range(P.shape[1]):
        xp, counts = np.unique(calibration[:, j], return_counts=True)
        fp = np.cumsum(counts) + 1.0  # trusted rows at or below each distinct value, plus one
        if xp[0] > 0.0:
            xp, fp = np.insert(xp, 0, 0.0), np.insert(fp, 0, 0.0)
        if xp[-1] < 1.0:
            xp, fp = np.append(xp, 1.0), np.append(fp, n + 1.0)
        out[:, j] = np.interp(P[:, j], xp, fp) / (n + 1)
    return np.clip(out, 0.0, 1.0)


def _plain(P: np.ndarray, dets: list[Detector], fpr: float) -> Any:
    """Fusion at the fixed levels. A batch full of poison earns its detectors larger levels (see ``fusion``),
    which raises every score in the batch, clean rows included; comparing batch and trusted rows needs one
    scale for both."""
    weights = np.array([d.weight for d in dets])
    gated = np.array([d.gated for d in dets])
    return fuse(P, weights, gated, fpr, adapt=False)


@dataclass(frozen=True)
class IncrementalResult:
    """What ``scan_incremental`` returns.

    ``rows`` holds one row per scored row of the new table (``row`` is its position there; ``status`` is
    ``added`` or ``changed``), with ``score``, ``p_value``, ``flagged``, ``reasons`` and ``<detector>_score``.
    ``summary['batch']`` is the batch test; ``by_source`` compares each source with the rest of the batch and
    with the trusted rows.
    """

    rows: pd.DataFrame
    summary: dict[str, Any]
    by_source: pd.DataFrame | None
    diff: Diff
    data: pd.DataFrame = field(repr=False)

    @property
    def verdict(self) -> str:
        return str(self.summary["verdict"])

    @property
    def flagged(self) -> pd.DataFrame:
        return self.rows[self.rows["flagged"]].sort_values("score", ascending=False)

    def to_dict(self) -> dict[str, Any]:
        import json

        return {
            **self.summary,
            "by_source": None if self.by_source is None else json.loads(self.by_source.to_json(orient="records")),
        }

    def save(self, out_dir: str | Path) -> list[Path]:
        """Write rows.csv (scored rows), flagged.csv (flagged input rows) and summary.json into ``out_dir``."""
        import json

        out = Path(out_dir)
        paths = [out / "rows.csv", out / "flagged.csv", out / "summary.json"]
        self.rows.to_csv(paths[0], index=False)
        flagged = self.flagged
        data = self.data.iloc[flagged["row"].to_numpy()].copy()
        data.insert(0, "row", flagged["row"].to_numpy())
        data["poisonguard_score"] = flagged["score"].to_numpy()
        data["poisonguard_reasons"] = flagged["reasons"].to_numpy()
        data.to_csv(paths[1], index=False)
        paths[2].write_text(json.dumps(self.to_dict(), indent=2, default=_json_default) + "\n")
        return paths


def _label_codes(values: pd.Series, classes: np.ndarray, name: str, label: str) -> np.ndarray:
    """Codes of ``values`` in the trusted classes; a label the trusted data never held is an input error."""
    index = pd.Index(classes)
    if index.inferred_type in {"integer", "floating"}:
        keys = pd.to_numeric(values.astype("string").str.strip(), errors="coerce")
    elif index.inferred_type == "boolean":
        keys = values.astype("boolean")
    else:
        keys = values.astype("string").str.strip()
    codes = index.get_indexer(keys)
    bad = codes < 0
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        unknown = sorted({str(v) for v in values[bad].tolist()})[:5]
        raise InputError(
            f"{name}: label column '{label}' holds {int(bad.sum())} values the trusted data never has "
            f"({', '.join(unknown)}; first at row {first}); the trusted models cannot judge a new class. Check "
            "the label, or trust a snapshot that holds the class."
        )
    return codes.astype(np.int64)


def _new_context(ref: Reference, frame: pd.DataFrame, rows: np.ndarray, name: str, progress: Progress) -> ScanContext:
    """The rows to score as a context encoded with the trusted encoder (never refitted on new data)."""
    ds = ref.data
    missing = [c for c in [*ds.columns, ds.label] if c not in frame.columns]
    if missing:
        raise InputError(
            f"{name}: lacks column(s) {', '.join(repr(c) for c in missing)} that the trusted data has; a new "
            "batch must have the trusted data's columns."
        )
    sub = frame.iloc[rows].reset_index(drop=True)
    for col in (ds.source, ds.id):
        if col is not None and col not in sub.columns:
            raise InputError(f"{name}: no column '{col}' (the trusted data's source or id column).")
    new = Dataset(
        frame=sub,
        label=ds.label,
        y=_label_codes(sub[ds.label], ds.classes, name, ds.label),
        classes=ds.classes,
        columns=dict(ds.columns),
        ignored=dict(ds.ignored),
        source=ds.source,
        id=ds.id,
        name=name,
    )
    ctx = ScanContext(data=new, seed=ref.seed, progress=progress, encoder=ref.context.encoder)
    enc = ref.context.encoder
    assert enc is not None
    # nothing new: empty views of the trusted widths
    tree = [np.empty((0, ref.context.tree_X.shape[1]), np.float32)]
    metric = [np.empty((0, ref.context.metric_X.shape[1]), np.float32)]
    with progress.task("encoding new rows", total=len(sub)) as advance:
        for part in ctx.chunks(CHUNK):
            chunk = sub.iloc[part]
            tree.append(enc.tree(chunk))
            metric.append(enc.metric(chunk))
            advance(len(part))
    ctx.tree_X = np.vstack(tree)
    _mark_unseen(ctx.tree_X, sub, enc)
    ctx.metric_X = np.ascontiguousarray(np.vstack(metric), dtype=np.float32)
    return ctx


def _mark_unseen(tree: np.ndarray, frame: pd.DataFrame, enc: Any) -> None:
    """Categories the trusted data never held get code -1 in the tree view instead of NaN: a missing cell is
    ordinary, a value nobody trusted is not. (Boosting reads negative codes as missing, as before; the isolation
    forest sees a code outside every trusted one.)"""
    for col, kind in enc.columns.items():
        if kind != "categorical":
            continue
        j = enc.tree_names.index(col)
        text = frame[col].astype("string").str.strip().fillna("")
        unseen = np.isnan(tree[:, j]) & text.ne("").to_numpy(dtype=bool)
        tree[unseen, j] = -1.0


def batch_test(new_scores: np.ndarray, new_flagged: int, trusted_scores: np.ndarray, trusted_rate: float) -> dict:
    """Is the batch more suspicious than the trusted rows? Rank test on the scores, binomial test on the flags.

    ``auc`` is the chance that a new row scores above a trusted row (0.5: no difference); ``pvalue`` is the
    Bonferroni minimum of the two one-sided p-values.
    """
    n = len(new_scores)
    if n == 0:
        return {"rows": 0, "auc": 0.5, "p_rank": 1.0, "p_flags": 1.0, "pvalue": 1.0, "significant": False}
    mw = mannwhitneyu(new_scores, trusted_scores, alternative="greater")
    auc = float(mw.statistic) / (n * len(trusted_scores))
    p0 = max(trusted_rate, 1.0 / len(trusted_scores))
    p_flags = float(binom.sf(new_flagged - 1, n, p0)) if new_flagged > 0 else 1.0
    p = min(1.0, 2 * min(float(mw.pvalue), p_flags))
    return {
        "rows": n,
        "flagged": int(new_flagged),
        "flagged_fraction": round(new_flagged / n, 6),
        "trusted_flagged_fraction": round(trusted_rate, 6),
        "excess_flagged_fraction": round(max(0.0, new_flagged / n - trusted_rate), 6),
        "auc": round(auc, 4),
        "p_rank": float(mw.pvalue),
        "p_flags": p_flags,
        "pvalue": p,
        "alpha": BATCH_ALPHA,
        "significant": bool(p < BATCH_ALPHA),
        "meaning": "auc: chance that a new row is more suspicious than a trusted row (0.5 = alike); pvalue: "
        "one-sided, the smaller of the rank test on scores and the binomial test on flags, doubled",
    }


def _by_source(
    rows: pd.DataFrame, plain: Any, trusted_scores: np.ndarray, trusted_rate: float, fpr: float
) -> pd.DataFrame:
    """Each source against the rest of the batch (as in a full scan) and, by the batch test, against the trusted
    rows (on the fixed-level scale, ``plain``): a vendor whose rows are more suspicious than trusted data."""
    g = _breakdown(rows, "source", fpr)
    src = rows["source"].astype(str).to_numpy()
    tests = [
        batch_test(plain.score[src == s], int(plain.flagged[src == s].sum()), trusted_scores, trusted_rate)
        for s in g["source"]
    ]
    g["auc_vs_trusted"] = [t["auc"] for t in tests]
    g["p_worse_than_trusted"] = [t["pvalue"] for t in tests]
    g["worse_than_trusted"] = g["p_worse_than_trusted"] * len(g) < BATCH_ALPHA
    return g


def scan_incremental(
    data: Any,
    *,
    baseline: Reference | Any,
    label: Any,
    source: str | None = None,
    id: str | None = None,
    exclude: Sequence[str] = (),
    types: Mapping[str, str] | None = None,
    seed: int = 0,
    fpr: float = 0.01,
    detectors: Sequence[str] | Mapping[str, dict[str, Any]] | None = None,
    progress: Progress | None = None,
    name: str | None = None,
) -> IncrementalResult:
    """Score the rows of ``data`` that ``baseline`` (trusted data, or a ``Reference`` fitted on it) lacks.

    ``data`` may be a whole new snapshot (rows also in the baseline are skipped: matched by ``id`` when given,
    by content otherwise) or just the new batch. The detectors are fitted on the baseline only.
    """
    _check_params(fpr, seed)
    t0 = time.perf_counter()
    progress = progress or Progress()
    ref = (
        baseline
        if isinstance(baseline, Reference)
        else fit_reference(
            baseline,
            label=label,
            source=source,
            id=id,
            exclude=exclude,
            types=types,
            seed=seed,
            fpr=fpr,
            detectors=detectors,
            progress=progress,
        )
    )
    fit_seconds = time.perf_counter() - t0
    t1 = time.perf_counter()
    if name is None:
        name = str(data) if isinstance(data, str | Path) else f"<{type(data).__name__}>"
    with progress.task("loading new data"):
        frame = read_table(data) if isinstance(data, str | Path) else data
        if not isinstance(frame, pd.DataFrame):
            raise InputError(f"{name}: an incremental scan takes a file path or a DataFrame.")
        frame = frame.reset_index(drop=True)
    ds = ref.data
    id_col = id if id is not None else ds.id
    with progress.task("comparing with the trusted rows"):
        d = diff(ds.frame, frame, id=id_col, label=ds.label)
    rows = d.new_rows
    status = np.where(np.isin(rows, d.added), "added", "changed")
    ctx = _new_context(ref, frame, rows, name, progress)

    outputs: dict[str, DetectorOutput] = {}
    recalibrated: dict[str, np.ndarray] = {}
    info: dict[str, dict[str, Any]] = {}
    if len(rows):
        for det in ref.detectors:
            t = time.perf_counter()
            try:
                moved = det.transfer(ref.context, ctx)
                outputs[det.name] = DetectorOutput.concat([moved.score(ctx, part) for part in ctx.chunks()])
                if moved.refits_on_transfer:  # its calibration must come from the same model
                    parts = [moved.score(ref.context, part).pvalues for part in ref.context.chunks()]
                    recalibrated[det.name] = np.concatenate(parts)
            except PoisonguardError:
                raise
            except Exception as exc:  # a broken detector must never read as a clean batch
                raise DetectorError(f"detector '{det.name}' failed on the new rows of {name}: {exc}") from exc
            info[det.name] = {"status": "ok", "seconds": round(time.perf_counter() - t, 3), **moved.info}
    names = [det.name for det in ref.detectors]
    weights = np.array([det.weight for det in ref.detectors])
    gated = np.array([det.gated for det in ref.detectors])
    n = len(rows)
    raw = np.column_stack([outputs[k].pvalues for k in names]) if n else np.ones((0, len(names)))
    # Matched by content, a new row that equals a trusted row is not scored, so the scored rows lack the
    # commonest records; the calibration leaves out the trusted rows' own repeated records to match.
    keep = ~ref.twins if id_col is None else np.ones(ds.n_rows, dtype=bool)
    if keep.sum() < 0.5 * ds.n_rows:  # mostly repeated records: the whole trusted set is the better yardstick
        keep[:] = True
    calibration = ref.pvalues.copy()
    for j, k in enumerate(names):
        if k in recalibrated:
            calibration[:, j] = recalibrated[k]
    calibration = calibration[keep]
    P = conformal(raw, calibration)
    R = np.column_stack([outputs[k].reasons for k in names]) if n else np.empty((0, len(names)), dtype=object)
    # detectors that may not earn the adaptive level in a full scan may not here either (see ``Detector.adapts``)
    adapts = np.array([det.adapts for det in ref.detectors])
    fused = fuse(P, weights, gated, fpr, adapts=adapts)
    reasons = row_reasons(R, P, fused, list(names)) if n else np.empty(0, dtype=object)
    out = pd.DataFrame(
        {
            "row": rows,
            "status": status,
            "label": ds.classes[ctx.y] if n else np.empty(0, dtype=object),
            "score": fused.score,
            "p_value": fused.pvalue,
            "flagged": fused.flagged,
            "reasons": reasons,
        }
    )
    if id_col is not None and id_col in frame.columns:
        out.insert(1, "id", frame[id_col].to_numpy()[rows])
    if ds.source is not None:
        out.insert(1, "source", ctx.data.sources())
    for k in names:
        out[f"{k}_score"] = outputs[k].scores if n else np.empty(0)

    plain = _plain(P, ref.detectors, fpr)
    trusted = _plain(conformal(calibration, calibration), ref.detectors, fpr)
    yardstick, rate = trusted.score, float(trusted.flagged.mean())
    batch = batch_test(plain.score, int(plain.flagged.sum()), yardstick, rate)
    by_source = _by_source(out, plain, yardstick, rate, fpr) if ds.source is not None and n else None
    if batch["significant"] and batch["p_flags"] * 2 < BATCH_ALPHA and batch["excess_flagged_fraction"] >= 0.001:
        level = "poisoned"
    elif batch["significant"] or (by_source is not None and bool(by_source["worse_than_trusted"].any())):
        level = "suspicious"
    else:
        level = "clean"
    notes = list(d.notes)
    if ref.result.verdict != "clean":
        notes.append(
            f"the trusted data itself scans as {ref.result.verdict}; new rows are judged against models fitted on it"
        )
    if len(d.label_changes):
        notes.append(f"{len(d.label_changes)} rows changed their label since the trusted snapshot")
    summary: dict[str, Any] = {
        "verdict": level,
        "rows": len(frame),
        "scored": n,
        "flagged": int(out["flagged"].sum()),
        "fpr": fpr,
        "diff": d.summary(),
        "batch": batch,
        "trusted": {
            "name": ds.name,
            "rows": ds.n_rows,
            "verdict": ref.result.verdict,
            "fingerprint": ref.result.summary["data"]["fingerprint"],
            "fit_seconds": ref.seconds,
        },
        "detectors": info,
        "notes": notes,
        "seed": ref.seed,
        "version": __version__,
        "seconds": {
            "reference": round(fit_seconds, 3),
            "new_rows": round(time.perf_counter() - t1, 3),
        },
    }
    return IncrementalResult(rows=out, summary=summary, by_source=by_source, diff=d, data=frame)


__all__ = ["IncrementalResult", "Reference", "batch_test", "fit_reference", "scan_incremental"]
