"""The monitoring service: FastAPI over ``Storage``; ``create_app(db_url, token=...)`` builds it.

Endpoints (JSON; errors are ``{"detail": "<what is wrong and what to do>"}`` with a 4xx status):

    GET  /healthz                              liveness and database check
    GET  /metrics                              Prometheus text format
    GET  /                                     dashboard (self-contained HTML)
    GET  /v1/models                            registered models with batch and row counts
    POST /v1/models/{name}/reference           a saved profile, or {"rows": [...], "label": ..., "predictions": ...}
    GET  /v1/models/{name}                     the reference's columns and triggers
    POST /v1/models/{name}/batches             {"batch_id": ..., "rows": [{col: value}], "predictions": [...]}
    GET  /v1/models/{name}/batches/{batch_id}  one batch's full drift and trigger report
    POST /v1/models/{name}/labels              {"batch_id": ..., "labels": [...]} (delayed ground truth)
    GET  /v1/models/{name}/reports             per-batch drift summaries, oldest first (?limit=, ?after=)
    GET  /v1/models/{name}/alerts              alerts, newest first (?limit=, ?severity=)

Writes need ``Authorization: Bearer <token>`` (401 without it, 403 with a wrong one); reads too with
``protect_reads``. A batch is answered 201 only after its transaction commits; a batch id the model already has
is answered 200 with ``"duplicate": true`` and is not counted again.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import math
import re
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pandas as pd
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool

from ...errors import PoisonguardError
from ...triggers import Trigger
from ..drift import DriftThresholds, compare, label_report
from ..offline import model_predict
from ..profile import Profile, _categories
from ..watch import TriggerWatch
from .dashboard import DASHBOARD
from .metrics import Metrics
from .storage import Storage

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
BATCH_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
MAX_ROWS = 10_000
MAX_BYTES = 16 * 2**20
MAX_REFERENCE_BYTES = 256 * 2**20
WINDOW_ROWS = 20_000  # trigger hits are also judged over the latest batches holding this many rows


class ApiError(Exception):
    """An answer other than success: status and a message that says what to do."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.headers = status, detail, headers


def _json(value: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(_clean(value), status_code=status)


def _clean(v: Any) -> Any:
    """JSON-safe values: numpy scalars to Python, NaN and infinity to null."""
    if isinstance(v, dict):
        return {str(k): _clean(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_clean(x) for x in v]
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


class Monitor:
    """The service's state: storage, cached profiles and watches, metrics."""

    def __init__(
        self,
        storage: Storage,
        thresholds: DriftThresholds,
        models: dict[str, Any] | None = None,
        window_rows: int = WINDOW_ROWS,
    ) -> None:
        self.storage, self.thresholds, self.window_rows = storage, thresholds, window_rows
        self.models = dict(models or {})
        self.metrics = Metrics()
        self._cache: dict[str, tuple[float, Profile, TriggerWatch]] = {}
        self._lock = threading.Lock()

    def profile(self, name: str) -> tuple[Profile, TriggerWatch]:
        version = self.storage.model_version(name)
        if version is None:
            raise ApiError(404, f"model '{name}' has no reference; POST /v1/models/{name}/reference first.")
        with self._lock:
            hit = self._cache.get(name)
        if hit is not None and hit[0] == version:
            return hit[1], hit[2]
        stored = self.storage.get_model(name)
        if stored is None:
            raise ApiError(404, f"model '{name}' has no reference; POST /v1/models/{name}/reference first.")
        profile = Profile.from_dict(stored[0], f"reference of model '{name}'")
        model = self.models.get(name)
        predict = None if model is None else model_predict(model, list(profile.columns))
        watch = TriggerWatch(profile, model=predict)
        with self._lock:
            self._cache[name] = (stored[1], profile, watch)
        return profile, watch

    # --- writes -----------------------------------------------------------------------------------------------

    def register(self, name: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise ApiError(422, 'the reference must be a JSON object: a saved profile or {"rows": [...]}.')
        if "format" in body:
            profile = Profile.from_dict(body, "reference")
        elif "rows" in body:
            frame = _frame(body["rows"], "reference", max_rows=None)
            label = body.get("label")
            if label is not None and not isinstance(label, str):
                raise ApiError(422, "'label' must be the name of a column.")
            preds = body.get("predictions")
            if preds is not None and (not isinstance(preds, list) or len(preds) != len(frame)):
                raise ApiError(422, f"'predictions' must be a list with one value per row ({len(frame)} rows).")
            triggers = body.get("triggers", [])
            if not isinstance(triggers, list):
                raise ApiError(422, "'triggers' must be a list of triggers (a scan summary's \"triggers\").")
            profile = Profile.from_frame(frame, label=label, predictions=preds, triggers=triggers, name="reference")
        else:
            raise ApiError(422, 'the reference needs either a saved profile (with "format") or "rows".')
        for i, t in enumerate(profile.triggers):
            try:
                Trigger.from_dict(t)
            except (ValueError, TypeError, AttributeError) as exc:
                raise ApiError(422, f"trigger {i}: {exc}; send the triggers of a scan's summary.json.") from exc
        created = self.storage.put_model(name, profile.to_dict())
        return {
            "model": name,
            "created": created,
            "columns": {c: p.kind for c, p in profile.columns.items()},
            "label": profile.label,
            "triggers": len(profile.triggers),
            "reference_rows": profile.n_rows,
        }

    def ingest(self, name: str, body: Any) -> tuple[int, dict[str, Any]]:
        start = time.perf_counter()
        if not isinstance(body, dict):
            raise ApiError(422, 'a batch must be a JSON object: {"batch_id": ..., "rows": [...]}.')
        batch_id = body.get("batch_id")
        if not isinstance(batch_id, str) or not BATCH_ID.match(batch_id):
            raise ApiError(
                422,
                "'batch_id' must be a string of 1 to 128 letters, digits, '.', '_', ':' or '-' (starting with a "
                "letter or digit), unique per batch: a retry sends the same id.",
            )
        profile, watch = self.profile(name)
        existing = self.storage.get_batch(name, batch_id)
        if existing is not None:
            self.metrics.duplicate(name)
            return 200, _ack(existing, duplicate=True)
        frame = _frame(body.get("rows"), "batch", max_rows=MAX_ROWS)
        where = f"batch '{batch_id}'"
        preds = body.get("predictions")
        if preds is not None and (not isinstance(preds, list) or len(preds) != len(frame)):
            raise ApiError(422, f"'predictions' must be a list with one value per row ({len(frame)} rows).")
        if preds is not None and any(isinstance(p, dict | list) for p in preds):
            raise ApiError(422, "'predictions' must hold plain values (class labels), not objects or lists.")
        unknown = [c for c in frame.columns if c not in profile.columns]
        drift = compare(profile, frame, predictions=preds, thresholds=self.thresholds, multivariate=False, where=where)
        hits = watch.check(frame, predictions=preds, where=where) if watch.triggers or watch.predict else None
        found = [a.to_dict() for a in drift.alerts] + ([a.to_dict() for a in hits.alerts] if hits else [])
        if hits is not None and hits.hits:
            # a trigger in a fraction of a percent of traffic shows in a window of batches, not in one
            history = [
                {
                    "rows": h["rows"],
                    "triggers": {t["trigger"]: t["hits"] for t in h.get("triggers", [])},
                    "flips": h.get("counterfactual_flips"),
                }
                for h in self.storage.recent(name, rows=self.window_rows)
            ]
            found += [a.to_dict() for a in watch.window(hits, history)]
        summary = {
            "features": {
                f["column"]: {
                    "psi": f["psi"],
                    "effect": f.get("js", f.get("wasserstein")),
                    "p": f["p_adjusted"],
                    "drifted": f["drifted"],
                }
                for f in drift.features
            },
            "prediction": None
            if drift.prediction is None
            else {"psi": drift.prediction["psi"], "js": drift.prediction["js"], "drifted": drift.prediction["drifted"]},
            "triggers": [] if hits is None else [{"trigger": t["trigger"], "hits": t["hits"]} for t in hits.triggers],
            "counterfactual_flips": None
            if hits is None or hits.counterfactual is None
            else hits.counterfactual["flips"],
        }
        report = {"drift": drift.to_dict(), "watch": None if hits is None else hits.to_dict()}
        n_hits = 0 if hits is None else hits.hits
        stored = self.storage.add_batch(
            name,
            batch_id,
            n_rows=len(frame),
            predictions=None if preds is None else _categories(pd.Series(preds, dtype=object)).tolist(),
            summary=_clean(summary),
            report=_clean(report),
            alert_list=[_alert_row(a) for a in found],
            trigger_hits=n_hits,
        )
        if not stored.created:
            self.metrics.duplicate(name)
            return 200, _ack(stored.row, duplicate=True)
        self.metrics.ingested(name, len(frame), found, n_hits, summary, time.perf_counter() - start)
        out = _ack(stored.row, duplicate=False)
        out["alerts"] = found
        if unknown:
            out["ignored_columns"] = unknown[:50]
        return 201, out

    def add_labels(self, name: str, body: Any) -> tuple[int, dict[str, Any]]:
        profile, _ = self.profile(name)
        if not isinstance(body, dict):
            raise ApiError(422, 'labels must be a JSON object: {"batch_id": ..., "labels": [...]}.')
        batch_id, values = body.get("batch_id"), body.get("labels")
        if not isinstance(batch_id, str) or not BATCH_ID.match(batch_id):
            raise ApiError(422, "'batch_id' must name an ingested batch.")
        batch = self.storage.get_batch(name, batch_id)
        if batch is None:
            raise ApiError(404, f"model '{name}' has no batch '{batch_id}'; ingest the batch before its labels.")
        if not isinstance(values, list) or len(values) != batch["n_rows"]:
            raise ApiError(
                422, f"'labels' must be a list with one label per row of batch '{batch_id}' ({batch['n_rows']} rows)."
            )
        if any(isinstance(v, dict | list) for v in values):
            raise ApiError(422, "'labels' must hold plain values (class labels), not objects or lists.")
        preds = None if batch["predictions"] is None else json.loads(batch["predictions"])
        report, found = label_report(profile, values, preds, self.thresholds)
        accuracy = report.get("performance", {}).get("accuracy")
        alert_dicts = [a.to_dict() for a in found]
        stored = self.storage.add_labels(
            name,
            batch_id,
            n_rows=len(values),
            accuracy=accuracy,
            report=_clean(report),
            alert_list=[_alert_row(a) for a in alert_dicts],
        )
        if not stored.created:
            return 200, {"model": name, "batch_id": batch_id, "duplicate": True, "accuracy": stored.row["accuracy"]}
        self.metrics.labelled(name, alert_dicts)
        return 201, {
            "model": name,
            "batch_id": batch_id,
            "duplicate": False,
            "accuracy": accuracy,
            "alerts": alert_dicts,
        }


def _alert_row(a: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": a["kind"],
        "subject": str(a["subject"])[:300],
        "severity": a["severity"],
        "message": a["message"],
        "value": a.get("value"),
        "pvalue": a.get("pvalue"),
    }


def _ack(row: dict[str, Any], *, duplicate: bool) -> dict[str, Any]:
    return {
        "model": row["model"],
        "batch_id": row["batch_id"],
        "id": row["id"],
        "rows": row["n_rows"],
        "n_alerts": row["n_alerts"],
        "trigger_hits": row["trigger_hits"],
        "duplicate": duplicate,
    }


def _frame(rows: Any, what: str, *, max_rows: int | None) -> pd.DataFrame:
    """Records to a frame, with a clear 422 for every shape a client can get wrong."""
    if not isinstance(rows, list) or not rows:
        raise ApiError(422, f"the {what} needs 'rows': a non-empty list of objects (column -> value).")
    if max_rows is not None and len(rows) > max_rows:
        raise ApiError(413, f"the {what} has {len(rows)} rows; at most {max_rows} per request: split it.")
    for i, r in enumerate(rows):
        if not isinstance(r, dict):
            raise ApiError(422, f"row {i} of the {what} is a {type(r).__name__}, not an object (column -> value).")
        for k, v in r.items():
            if isinstance(v, dict | list):
                raise ApiError(422, f"row {i} of the {what}: column '{k}' holds a nested value; send plain values.")
    return pd.DataFrame.from_records(rows)


def create_app(
    db_url: str = "sqlite:///poisonguard.db",
    *,
    token: str | None = None,
    protect_reads: bool = False,
    thresholds: DriftThresholds | None = None,
    max_bytes: int = MAX_BYTES,
    models: dict[str, Any] | None = None,
) -> FastAPI:
    """The service. ``token`` guards the write endpoints (and the reads with ``protect_reads``); None leaves
    them open (the CLI refuses that without ``--no-auth``). ``models`` maps a model name to its fitted model (or
    a predict function): its batches then get the counterfactual trigger check too."""
    storage = Storage(db_url)
    mon = Monitor(storage, thresholds or DriftThresholds(), models)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        storage.close()

    app = FastAPI(title="poisonguard monitor", version="1", docs_url="/docs", redoc_url=None, lifespan=lifespan)
    app.state.monitor = mon

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(PoisonguardError)
    async def _input_error(_request: Request, exc: PoisonguardError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.middleware("http")
    async def _count(request: Request, call_next: Any) -> Response:
        response = await call_next(request)
        route = request.scope.get("route")
        mon.metrics.request(request.method, getattr(route, "path", "unmatched"), response.status_code)
        return response

    def _auth(request: Request, *, write: bool) -> None:
        if token is None or (not write and not protect_reads):
            return
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not given:
            raise ApiError(
                401,
                "this endpoint needs a token: send 'Authorization: Bearer <token>' (the server's --token).",
                {"WWW-Authenticate": "Bearer"},
            )
        if not hmac.compare_digest(given.strip().encode(), token.encode()):
            raise ApiError(403, "the token is not valid for this server.")

    def _name(name: str) -> str:
        if not NAME.match(name):
            raise ApiError(422, f"model name {name!r}: use 1 to 100 letters, digits, '.', '_' or '-'.")
        return name

    async def _body(request: Request, limit: int) -> Any:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise ApiError(413, f"the request body has {int(declared)} bytes; at most {limit}: send smaller batches.")
        data = bytearray()
        async for chunk in request.stream():
            data += chunk
            if len(data) > limit:
                raise ApiError(413, f"the request body exceeds {limit} bytes; send smaller batches.")
        try:
            return json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ApiError(400, f"the request body is not valid JSON ({exc}).") from exc

    @app.get("/healthz")
    def healthz() -> JSONResponse:
        try:
            storage.ping()
        except Exception as exc:  # any database failure makes the service unhealthy
            return _json({"status": "error", "database": f"{type(exc).__name__}: {exc}"}, 503)
        return _json({"status": "ok", "database": storage.engine.dialect.name})

    @app.get("/metrics")
    def metrics(request: Request) -> PlainTextResponse:
        _auth(request, write=False)
        return PlainTextResponse(mon.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/", response_class=HTMLResponse)
    def dashboard() -> HTMLResponse:
        return HTMLResponse(DASHBOARD)

    @app.get("/v1/models")
    def list_models(request: Request) -> JSONResponse:
        _auth(request, write=False)
        return _json({"models": storage.list_models()})

    @app.post("/v1/models/{name}/reference")
    async def register(name: str, request: Request) -> JSONResponse:
        _auth(request, write=True)
        body = await _body(request, MAX_REFERENCE_BYTES)
        out = await run_in_threadpool(mon.register, _name(name), body)
        return _json(out, 201 if out["created"] else 200)

    @app.get("/v1/models/{name}")
    def model_info(name: str, request: Request) -> JSONResponse:
        _auth(request, write=False)
        profile, _ = mon.profile(_name(name))
        batches, rows = storage.count_batches(name)
        return _json(
            {
                "model": name,
                "columns": {c: p.kind for c, p in profile.columns.items()},
                "label": profile.label,
                "reference_rows": profile.n_rows,
                "reference_accuracy": profile.reference_accuracy,
                "triggers": profile.triggers,
                "batches": batches,
                "rows": rows,
            }
        )

    @app.post("/v1/models/{name}/batches")
    async def ingest(name: str, request: Request) -> JSONResponse:
        _auth(request, write=True)
        body = await _body(request, max_bytes)
        status, out = await run_in_threadpool(mon.ingest, _name(name), body)
        return _json(out, status)

    @app.get("/v1/models/{name}/batches/{batch_id}")
    def batch(name: str, batch_id: str, request: Request) -> JSONResponse:
        _auth(request, write=False)
        row = storage.get_batch(_name(name), batch_id)
        if row is None:
            raise ApiError(404, f"model '{name}' has no batch '{batch_id}'.")
        return _json(
            {**_ack(row, duplicate=False), "received_at": row["received_at"], "report": json.loads(row["report"])}
        )

    @app.post("/v1/models/{name}/labels")
    async def add_labels(name: str, request: Request) -> JSONResponse:
        _auth(request, write=True)
        body = await _body(request, max_bytes)
        status, out = await run_in_threadpool(mon.add_labels, _name(name), body)
        return _json(out, status)

    @app.get("/v1/models/{name}/reports")
    def reports(name: str, request: Request, limit: int = 200, after: int = 0) -> JSONResponse:
        _auth(request, write=False)
        mon.profile(_name(name))
        if not 1 <= limit <= 5000:
            raise ApiError(422, "limit must be between 1 and 5000.")
        return _json({"model": name, "reports": storage.reports(name, limit=limit, after=after)})

    @app.get("/v1/models/{name}/alerts")
    def list_alerts(name: str, request: Request, limit: int = 100, severity: str | None = None) -> JSONResponse:
        _auth(request, write=False)
        mon.profile(_name(name))
        if not 1 <= limit <= 5000:
            raise ApiError(422, "limit must be between 1 and 5000.")
        if severity not in (None, "warning", "critical"):
            raise ApiError(422, "severity must be 'warning' or 'critical'.")
        return _json({"model": name, "alerts": storage.alerts(name, limit=limit, severity=severity)})

    return app


__all__ = ["ApiError", "create_app"]
