"""The provenance ledger: which versions of a data set exist, where they came from, and which are trusted.

A ledger is a database (a SQLite file by default, any SQLAlchemy URL otherwise; PostgreSQL through pg8000).
Each version records the file's content hash, a fingerprint per row (``diff.row_fingerprints``, stored as
8-byte integers and inserted in bulk), its source column and per-source row counts, user metadata, the contract
result, the scan summary, and whether a person trusted it. A trusted version is the baseline that later
batches are diffed and scanned against.

Every write is one transaction: a crash in the middle leaves the previous state. SQLite runs in WAL mode with a
busy timeout and takes the write lock when a transaction begins (``BEGIN IMMEDIATE``), so concurrent writers
queue instead of failing; version numbers are unique per name, and a writer that loses the race for a number
retries with the next one.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from .errors import LedgerError
from .io import load_dataset, read_table

DEFAULT_URL = "sqlite:///poisonguard-ledger.db"
ROW_CHUNK = 20_000
RETRIES = 20

_meta = sa.MetaData()
versions_table = sa.Table(
    "poisonguard_versions",
    _meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("number", sa.Integer, nullable=False),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("content_hash", sa.String(80), nullable=False),
    sa.Column("n_rows", sa.Integer, nullable=False),
    sa.Column("label", sa.String(255), nullable=False),
    sa.Column("id_column", sa.String(255)),
    sa.Column("source_column", sa.String(255)),
    sa.Column("sources", sa.JSON),
    sa.Column("meta", sa.JSON, nullable=False),
    sa.Column("contract", sa.JSON),
    sa.Column("scan", sa.JSON),
    sa.Column("trusted", sa.Boolean, nullable=False, default=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("trusted_at", sa.DateTime(timezone=True)),
    sa.UniqueConstraint("name", "number", name="uq_poisonguard_version"),
)
rows_table = sa.Table(
    "poisonguard_rows",
    _meta,
    sa.Column("version_id", sa.Integer, sa.ForeignKey("poisonguard_versions.id"), primary_key=True),
    sa.Column("row", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("fingerprint", sa.BigInteger, nullable=False),
)
sa.Index("ix_poisonguard_rows_fingerprint", rows_table.c.fingerprint)


@dataclass(frozen=True)
class Version:
    """One recorded version of a data set; ``ref`` (``name@number``) names it on the command line."""

    id: int
    name: str
    number: int
    path: str
    content_hash: str
    rows: int
    label: str
    id_column: str | None
    source_column: str | None
    sources: dict[str, int] | None
    metadata: dict[str, Any]
    contract: dict[str, Any] | None
    scan: dict[str, Any] | None
    trusted: bool
    created_at: datetime
    trusted_at: datetime | None

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.number}"

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["ref"] = self.ref
        d["created_at"] = self.created_at.isoformat()
        d["trusted_at"] = self.trusted_at.isoformat() if self.trusted_at else None
        return d


def file_hash(path: str | Path) -> str:
    """sha256 of the file's bytes: the version's identity, whatever the rows mean."""
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return "sha256:" + h.hexdigest()


def default_url() -> str:
    return os.environ.get("POISONGUARD_DB") or DEFAULT_URL


def _normalise_url(url: str) -> str:
    if "://" not in url:  # a bare path is a SQLite file
        return f"sqlite:///{url}"
    if url.startswith(("postgresql://", "postgres://")):  # the pg8000 driver is the one poisonguard supports
        return "postgresql+pg8000://" + url.split("://", 1)[1]
    return url


def _insert_rows(conn: sa.Connection, version_id: int, fingerprints: np.ndarray) -> None:
    """Bulk insert of the row fingerprints: executemany in chunks of ``ROW_CHUNK`` (the driver's fast path on
    SQLite; batched multi-row VALUES on PostgreSQL through SQLAlchemy's insertmanyvalues)."""
    fps = fingerprints.astype(np.int64).tolist()
    stmt = sa.insert(rows_table)
    for start in range(0, len(fps), ROW_CHUNK):
        part = fps[start : start + ROW_CHUNK]
        conn.execute(stmt, [{"version_id": version_id, "row": start + i, "fingerprint": f} for i, f in enumerate(part)])


class Ledger:
    """A provenance ledger at ``url`` (default: env ``POISONGUARD_DB``, else ``sqlite:///poisonguard-ledger.db``)."""

    def __init__(self, url: str | None = None) -> None:
        self.url = _normalise_url(url or default_url())
        try:
            self.engine = sa.create_engine(self.url, future=True)
        except (sa_exc.ArgumentError, sa_exc.NoSuchModuleError, ImportError) as exc:
            raise LedgerError(
                f"ledger {self.url}: not a usable database URL ({exc}); use sqlite:///FILE or "
                "postgresql+pg8000://USER@HOST:PORT/DB (pip install 'poisonguard[postgres]')."
            ) from exc
        if self.engine.dialect.name == "sqlite":
            sa.event.listen(self.engine, "connect", _sqlite_connect)
            sa.event.listen(self.engine, "begin", _sqlite_begin)
        self._create_schema()

    def _connect_error(self, exc: Exception) -> LedgerError:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return LedgerError(f"ledger {self.engine.url.render_as_string(hide_password=True)}: {first}")

    def _create_schema(self) -> None:
        """Idempotent; on PostgreSQL an advisory lock keeps two first writers from racing to create tables."""
        try:
            with self.engine.begin() as conn:
                if self.engine.dialect.name == "postgresql":
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(7262024)"))
                _meta.create_all(conn, checkfirst=True)
        except sa_exc.SQLAlchemyError as exc:
            raise self._connect_error(exc) from exc

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------------------------------------------ writes

    def add(
        self,
        path: str | Path,
        *,
        label: str,
        id: str | None = None,
        source: str | None = None,
        name: str | None = None,
        metadata: dict[str, Any] | None = None,
        contract: Any = None,
        scan: bool = False,
        seed: int = 0,
        progress: Any = None,
    ) -> Version:
        """Record a new version of the data set ``name`` (default: the file's stem) from the file at ``path``.

        ``contract`` (a ``Contract`` or a YAML path) is checked and its result stored; ``scan=True`` runs
        ``poisonguard.scan`` and stores its summary (``progress``: a ``poisonguard.context.Progress`` for it).
        The version starts untrusted.
        """
        p = Path(path)
        frame = read_table(p)
        content = file_hash(p)
        ds = load_dataset(frame, label=label, id=id, source=source, name=str(p))
        fps = _fingerprints(frame)
        contract_result = None
        if contract is not None:
            from .contracts import check_contract

            contract_result = check_contract(frame, contract, name=str(p)).to_dict()
        scan_summary = None
        if scan:
            from .scanner import scan_dataset

            s = scan_dataset(ds, seed=seed, progress=progress).summary
            keep = ("verdict", "evidence", "rows", "flagged", "flagged_fraction", "estimated_poisoned_fraction", "fpr")
            scan_summary = json.loads(json.dumps({k: s[k] for k in keep}, default=str))
        sources = None
        if ds.source is not None:
            counts = pd.Series(ds.sources()).value_counts()
            sources = {str(k): int(v) for k, v in counts.items()}
        record = {
            "name": name or p.stem,
            "path": str(p.resolve()),
            "content_hash": content,
            "n_rows": len(frame),
            "label": ds.label,
            "id_column": ds.id,
            "source_column": ds.source,
            "sources": sources,
            "meta": {str(k): v for k, v in (metadata or {}).items()},
            "contract": contract_result,
            "scan": scan_summary,
            "trusted": False,
            "created_at": datetime.now(UTC),
        }
        for attempt in range(RETRIES):
            try:
                with self.engine.begin() as conn:
                    latest = conn.execute(
                        sa.select(sa.func.max(versions_table.c.number)).where(versions_table.c.name == record["name"])
                    ).scalar()
                    number = int(latest or 0) + 1
                    vid = conn.execute(versions_table.insert().values(**record, number=number)).inserted_primary_key[0]
                    _insert_rows(conn, int(vid), fps)
                return self.show(int(vid))
            except sa_exc.IntegrityError:  # another writer took this number first: try the next one
                time.sleep(0.01 * (attempt + 1))
            except sa_exc.SQLAlchemyError as exc:
                raise self._connect_error(exc) from exc
        raise LedgerError(f"ledger: could not record a version of '{record['name']}' after {RETRIES} tries.")

    def trust(self, version: str | int, trusted: bool = True) -> Version:
        """Mark a version trusted (or, with ``trusted=False``, no longer trusted)."""
        v = self.show(version)
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    versions_table.update()
                    .where(versions_table.c.id == v.id)
                    .values(trusted=trusted, trusted_at=datetime.now(UTC) if trusted else None)
                )
        except sa_exc.SQLAlchemyError as exc:
            raise self._connect_error(exc) from exc
        return self.show(v.id)

    # ------------------------------------------------------------------------------------------------- reads

    def list(self, name: str | None = None) -> list[Version]:
        q = sa.select(versions_table).order_by(versions_table.c.name, versions_table.c.number)
        if name is not None:
            q = q.where(versions_table.c.name == name)
        return [_version(r) for r in self._read(q)]

    def show(self, version: str | int) -> Version:
        """A version by id (``7``), by ``name@number``, or by ``name`` (its latest version)."""
        q = sa.select(versions_table)
        spec = str(version)
        if isinstance(version, int) or spec.isdigit():
            q = q.where(versions_table.c.id == int(spec))
        elif "@" in spec:
            name, _, number = spec.rpartition("@")
            if not number.isdigit():
                raise LedgerError(f"ledger: version '{spec}' is not NAME@NUMBER (for example adult@2).")
            q = q.where(versions_table.c.name == name, versions_table.c.number == int(number))
        else:
            q = q.where(versions_table.c.name == spec).order_by(versions_table.c.number.desc()).limit(1)
        rows = self._read(q)
        if not rows:
            known = ", ".join(v.ref for v in self.list()[-10:]) or "none yet"
            raise LedgerError(f"ledger: no version '{spec}' (recent: {known}); see `poisonguard ledger list`.")
        return _version(rows[0])

    def latest_trusted(self, name: str) -> Version | None:
        q = (
            sa.select(versions_table)
            .where(versions_table.c.name == name, versions_table.c.trusted.is_(True))
            .order_by(versions_table.c.number.desc())
            .limit(1)
        )
        rows = self._read(q)
        return _version(rows[0]) if rows else None

    def fingerprints(self, version: str | int) -> np.ndarray:
        """The version's row fingerprints, in row order."""
        v = self.show(version)
        q = sa.select(rows_table.c.fingerprint).where(rows_table.c.version_id == v.id).order_by(rows_table.c.row)
        return np.array([r["fingerprint"] for r in self._read(q)], dtype=np.int64)

    def load(self, version: str | int) -> tuple[Version, pd.DataFrame]:
        """The version's table, read from its file after checking that the file still holds that version."""
        v = self.show(version)
        if not Path(v.path).is_file():
            raise LedgerError(f"ledger: the file of {v.ref} ({v.path}) is gone; restore it or record a new version.")
        if file_hash(v.path) != v.content_hash:
            raise LedgerError(
                f"ledger: {v.path} changed since {v.ref} was recorded (content hash differs); it is no longer that "
                "version. Record it again with `poisonguard ledger add` and trust the new version if it deserves it."
            )
        return v, read_table(v.path)

    def _read(self, q: Any) -> list[Any]:
        try:
            with self.engine.connect() as conn:
                return list(conn.execute(q).mappings())
        except sa_exc.SQLAlchemyError as exc:
            raise self._connect_error(exc) from exc


def _fingerprints(frame: pd.DataFrame) -> np.ndarray:
    from .diff import row_fingerprints

    return row_fingerprints(frame)


def _version(r: Any) -> Version:
    return Version(
        id=int(r["id"]),
        name=r["name"],
        number=int(r["number"]),
        path=r["path"],
        content_hash=r["content_hash"],
        rows=int(r["n_rows"]),
        label=r["label"],
        id_column=r["id_column"],
        source_column=r["source_column"],
        sources=r["sources"],
        metadata=r["meta"] or {},
        contract=r["contract"],
        scan=r["scan"],
        trusted=bool(r["trusted"]),
        created_at=r["created_at"],
        trusted_at=r["trusted_at"],
    )


def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None  # SQLAlchemy's begin event issues BEGIN itself
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA busy_timeout = 60000")
    cur.execute("PRAGMA journal_mode = WAL")
    cur.execute("PRAGMA foreign_keys = ON")
    cur.close()


def _sqlite_begin(conn: Any) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE")


__all__ = ["DEFAULT_URL", "Ledger", "Version", "default_url", "file_hash"]
