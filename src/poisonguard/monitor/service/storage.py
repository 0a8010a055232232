"""The service's database: SQLite by default (WAL, fsync on commit), any SQLAlchemy URL otherwise.

Durability and idempotency rest on the database, not on the process: a batch is acknowledged only after its
transaction commits, and ``(model, batch_id)`` is a unique key, so a retried batch (the client did not see the
answer, the server was killed) is recognised and not counted twice, even when two retries race.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from ...errors import ConfigError

metadata = sa.MetaData()

models = sa.Table(
    "monitor_models",
    metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("profile", sa.Text, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

batches = sa.Table(
    "monitor_batches",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("model", sa.String(100), nullable=False),
    sa.Column("batch_id", sa.String(128), nullable=False),
    sa.Column("n_rows", sa.Integer, nullable=False),
    sa.Column("received_at", sa.Float, nullable=False),
    sa.Column("n_alerts", sa.Integer, nullable=False),
    sa.Column("trigger_hits", sa.Integer, nullable=False),
    sa.Column("predictions", sa.Text, nullable=True),
    sa.Column("summary", sa.Text, nullable=False),
    sa.Column("report", sa.Text, nullable=False),
    sa.UniqueConstraint("model", "batch_id", name="uq_monitor_batch"),
)

labels = sa.Table(
    "monitor_labels",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("model", sa.String(100), nullable=False),
    sa.Column("batch_id", sa.String(128), nullable=False),
    sa.Column("n_rows", sa.Integer, nullable=False),
    sa.Column("accuracy", sa.Float, nullable=True),
    sa.Column("report", sa.Text, nullable=False),
    sa.Column("received_at", sa.Float, nullable=False),
    sa.UniqueConstraint("model", "batch_id", name="uq_monitor_labels"),
)

alerts = sa.Table(
    "monitor_alerts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("model", sa.String(100), nullable=False),
    sa.Column("batch_id", sa.String(128), nullable=False),
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("subject", sa.String(300), nullable=False),
    sa.Column("severity", sa.String(20), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("value", sa.Float, nullable=True),
    sa.Column("pvalue", sa.Float, nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
)
sa.Index("ix_monitor_alerts_model", alerts.c.model, alerts.c.id)


@dataclass
class Stored:
    """What an insert found: ``created`` False means the batch id was already there (a retry)."""

    created: bool
    row: dict[str, Any]


def make_engine(url: str) -> sa.Engine:
    """An engine for ``url``; SQLite gets WAL, synchronous=FULL, a busy timeout and BEGIN IMMEDIATE for writes."""
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError as exc:
        raise ConfigError(f"--db {url!r}: not a database URL (try sqlite:///monitor.db).") from exc
    if parsed.get_backend_name() != "sqlite":
        return sa.create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
    memory = parsed.database in (None, "", ":memory:")
    kwargs: dict[str, Any] = {"connect_args": {"check_same_thread": False, "timeout": 30}}
    if memory:
        kwargs["poolclass"] = sa.pool.StaticPool
    engine = sa.create_engine(url, **kwargs)

    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # transactions are begun below, so writers can take the lock up front
        cur = dbapi_conn.cursor()
        if not memory:
            cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @sa.event.listens_for(engine, "begin")
    def _begin(conn: sa.Connection) -> None:
        # a deferred transaction that reads and then writes can fail at once with "database is locked";
        # a writer that takes the lock at BEGIN waits for it instead
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("write") else "BEGIN")

    return engine


class Storage:
    """Tables of references, batches, labels and alerts behind one engine."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        try:
            metadata.create_all(self.engine)
        except SQLAlchemyError as exc:
            raise ConfigError(
                f"--db {_safe(url)}: cannot open the database ({exc.__class__.__name__}: {exc})."
            ) from exc

    def _write(self) -> sa.Connection:
        return self.engine.connect().execution_options(write=True)

    def close(self) -> None:
        self.engine.dispose()

    # --- references -----------------------------------------------------------------------------------------

    def put_model(self, name: str, profile: dict[str, Any]) -> bool:
        """Store (or replace) a model's reference profile; True when the model is new."""
        now = time.time()
        text = json.dumps(profile, allow_nan=False)
        with self._write() as conn, conn.begin():
            found = conn.execute(sa.select(models.c.name).where(models.c.name == name)).first()
            if found:
                conn.execute(models.update().where(models.c.name == name).values(profile=text, updated_at=now))
                return False
            conn.execute(models.insert().values(name=name, profile=text, created_at=now, updated_at=now))
            return True

    def get_model(self, name: str) -> tuple[dict[str, Any], float] | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(models.c.profile, models.c.updated_at).where(models.c.name == name)).first()
        return None if row is None else (json.loads(row.profile), row.updated_at)

    def model_version(self, name: str) -> float | None:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(models.c.updated_at).where(models.c.name == name)).scalar()

    def list_models(self) -> list[dict[str, Any]]:
        counts = (
            sa.select(batches.c.model, sa.func.count().label("batches"), sa.func.sum(batches.c.n_rows).label("rows"))
            .group_by(batches.c.model)
            .subquery()
        )
        q = (
            sa.select(models.c.name, models.c.updated_at, counts.c.batches, counts.c.rows)
            .select_from(models.outerjoin(counts, counts.c.model == models.c.name))
            .order_by(models.c.name)
        )
        with self.engine.connect() as conn:
            return [
                {"name": r.name, "updated_at": r.updated_at, "batches": int(r.batches or 0), "rows": int(r.rows or 0)}
                for r in conn.execute(q)
            ]

    # --- batches --------------------------------------------------------------------------------------------

    def get_batch(self, model: str, batch_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(batches).where(batches.c.model == model, batches.c.batch_id == batch_id)
            ).first()
        return None if row is None else dict(row._mapping)

    def add_batch(
        self,
        model: str,
        batch_id: str,
        *,
        n_rows: int,
        predictions: list[Any] | None,
        summary: dict[str, Any],
        report: dict[str, Any],
        alert_list: Iterable[dict[str, Any]],
        trigger_hits: int,
    ) -> Stored:
        """Insert a batch and its alerts in one transaction, committed before returning; a batch id already
        stored for this model returns the stored row with ``created`` False and changes nothing."""
        now = time.time()
        alert_list = list(alert_list)
        values = {
            "model": model,
            "batch_id": batch_id,
            "n_rows": n_rows,
            "received_at": now,
            "n_alerts": len(alert_list),
            "trigger_hits": trigger_hits,
            "predictions": None if predictions is None else json.dumps(predictions),
            "summary": json.dumps(summary, allow_nan=False),
            "report": json.dumps(report, allow_nan=False, default=str),
        }
        try:
            with self._write() as conn, conn.begin():
                new_id = conn.execute(batches.insert().values(**values)).inserted_primary_key[0]
                if alert_list:
                    conn.execute(
                        alerts.insert(),
                        [{"model": model, "batch_id": batch_id, "created_at": now, **a} for a in alert_list],
                    )
        except IntegrityError:
            existing = self.get_batch(model, batch_id)
            if existing is None:  # not a duplicate after all: let the caller see the error
                raise
            return Stored(False, existing)
        return Stored(True, {"id": new_id, **values})

    def reports(self, model: str, *, limit: int = 200, after: int = 0) -> list[dict[str, Any]]:
        """Summaries of the latest ``limit`` batches (oldest first), with accuracy where labels arrived."""
        q = (
            sa.select(
                batches.c.id,
                batches.c.batch_id,
                batches.c.received_at,
                batches.c.n_rows,
                batches.c.n_alerts,
                batches.c.trigger_hits,
                batches.c.summary,
                labels.c.accuracy,
            )
            .select_from(
                batches.outerjoin(
                    labels, (labels.c.model == batches.c.model) & (labels.c.batch_id == batches.c.batch_id)
                )
            )
            .where(batches.c.model == model, batches.c.id > after)
            .order_by(batches.c.id.desc())
            .limit(limit)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
        out = []
        for r in reversed(rows):
            d = {k: v for k, v in r._mapping.items() if k != "summary"}
            d.update(json.loads(r.summary))
            out.append(d)
        return out

    def recent(self, model: str, *, rows: int, limit: int = 200) -> list[dict[str, Any]]:
        """Summaries of the latest batches, newest first, until they hold ``rows`` rows (at most ``limit``)."""
        q = (
            sa.select(batches.c.n_rows, batches.c.summary)
            .where(batches.c.model == model)
            .order_by(batches.c.id.desc())
            .limit(limit)
        )
        out: list[dict[str, Any]] = []
        total = 0
        with self.engine.connect() as conn:
            for r in conn.execute(q):
                if total >= rows:
                    break
                out.append({"rows": r.n_rows, **json.loads(r.summary)})
                total += r.n_rows
        return out

    def count_batches(self, model: str) -> tuple[int, int]:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(batches.c.n_rows), 0)).where(
                    batches.c.model == model
                )
            ).one()
        return int(row[0]), int(row[1])

    def batch_ids(self, model: str) -> list[str]:
        with self.engine.connect() as conn:
            return list(conn.execute(sa.select(batches.c.batch_id).where(batches.c.model == model)).scalars())

    # --- labels and alerts ----------------------------------------------------------------------------------

    def add_labels(
        self, model: str, batch_id: str, *, n_rows: int, accuracy: float | None, report: dict[str, Any], alert_list
    ) -> Stored:
        now = time.time()
        alert_list = list(alert_list)
        values = {
            "model": model,
            "batch_id": batch_id,
            "n_rows": n_rows,
            "accuracy": accuracy,
            "report": json.dumps(report, allow_nan=False, default=str),
            "received_at": now,
        }
        try:
            with self._write() as conn, conn.begin():
                conn.execute(labels.insert().values(**values))
                if alert_list:
                    conn.execute(
                        alerts.insert(),
                        [{"model": model, "batch_id": batch_id, "created_at": now, **a} for a in alert_list],
                    )
        except IntegrityError:
            with self.engine.connect() as conn:
                row = conn.execute(
                    sa.select(labels).where(labels.c.model == model, labels.c.batch_id == batch_id)
                ).first()
            if row is None:
                raise
            return Stored(False, dict(row._mapping))
        return Stored(True, values)

    def alerts(self, model: str, *, limit: int = 100, severity: str | None = None) -> list[dict[str, Any]]:
        q = sa.select(alerts).where(alerts.c.model == model)
        if severity:
            q = q.where(alerts.c.severity == severity)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q.order_by(alerts.c.id.desc()).limit(limit))]

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))


def _safe(url: str) -> str:
    """The URL without its password, for messages."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:  # a URL that does not parse is shown as given
        return url


__all__ = ["Storage", "Stored", "make_engine"]
