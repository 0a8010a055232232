"""The provenance ledger on SQLite and on a real PostgreSQL server: versions, trust, crashes, concurrent writers."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from conftest import make_table
from poisonguard import ledger as ledger_mod
from poisonguard.diff import row_fingerprints
from poisonguard.errors import LedgerError
from poisonguard.ledger import Ledger

SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ledger") / "batch.csv"
    frame = make_table(60, seed=4)
    frame["vendor"] = np.where(np.arange(60) < 40, "acme", "globex")
    frame.to_csv(path, index=False)
    return path


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    from services import fresh_database

    server = request.getfixturevalue("postgres_url")
    return fresh_database(server, f"ledger_{abs(hash(request.node.name)) % 10**8}")


def test_add_trust_list_show(url: str, table: Path) -> None:
    with Ledger(url) as led:
        v1 = led.add(table, label="label", source="vendor", metadata={"vendor": "acme", "ticket": 12})
        v2 = led.add(table, label="label", name="batch")
        assert (v1.ref, v2.ref) == ("batch@1", "batch@2")
        assert v1.rows == 60 and v1.content_hash.startswith("sha256:") and v1.content_hash == v2.content_hash
        assert v1.sources == {"acme": 40, "globex": 20}
        assert v1.metadata == {"vendor": "acme", "ticket": 12}
        assert not v1.trusted and led.latest_trusted("batch") is None
        t = led.trust("batch@1")
        assert t.trusted and t.trusted_at is not None
        assert led.latest_trusted("batch").ref == "batch@1"
        assert [v.ref for v in led.list()] == ["batch@1", "batch@2"]
        assert led.show("batch").ref == "batch@2"  # a bare name is its latest version
        assert led.show(v1.id).ref == "batch@1"
        fps = led.fingerprints("batch@1")
        assert fps.dtype == np.int64 and np.array_equal(fps, row_fingerprints(pd.read_csv(table)))
        with pytest.raises(LedgerError, match="no version 'batch@9'"):
            led.show("batch@9")
    # the schema is created idempotently: a second ledger on the same database sees the same versions
    with Ledger(url) as again:
        assert [v.ref for v in again.list()] == ["batch@1", "batch@2"]


def test_contract_and_scan_results_are_stored(url: str, table: Path, tmp_path: Path) -> None:
    from poisonguard.contracts import infer_contract

    contract = infer_contract(pd.read_csv(table), label="label")
    contract.spec["columns"]["f0"]["max"] = -100.0  # every row breaks it
    with Ledger(url) as led:
        v = led.add(table, label="label", contract=contract, scan=True)
    assert v.contract["ok"] is False and v.contract["violations"][0]["rule"] == "above_max"
    assert v.scan["verdict"] in {"clean", "suspicious", "poisoned"} and v.scan["rows"] == 60


def test_a_crash_mid_write_leaves_the_previous_state(url: str, table: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with Ledger(url) as led:
        led.add(table, label="label")
        real = ledger_mod._insert_rows

        def crash(conn: sa.Connection, version_id: int, fps: np.ndarray) -> None:
            real(conn, version_id, fps)  # the version row and every fingerprint are written ...
            raise KeyboardInterrupt("power cut")  # ... and then the process dies before the commit

        monkeypatch.setattr(ledger_mod, "_insert_rows", crash)
        with pytest.raises(KeyboardInterrupt):
            led.add(table, label="label")
        monkeypatch.setattr(ledger_mod, "_insert_rows", real)
        assert [v.ref for v in led.list()] == ["batch@1"]
        with led.engine.connect() as conn:
            n_rows = conn.execute(sa.select(sa.func.count()).select_from(ledger_mod.rows_table)).scalar()
        assert n_rows == 60
        assert led.add(table, label="label").ref == "batch@2"  # the number was not burnt


def test_a_killed_writer_leaves_the_previous_state(url: str, table: Path) -> None:
    """A separate process is killed (SIGKILL, no cleanup) while its transaction holds the fingerprints."""
    Ledger(url).add(table, label="label")
    script = textwrap.dedent(
        f"""
        import os, signal, sys
        sys.path.insert(0, {str(SRC)!r})
        from poisonguard import ledger as m
        real = m._insert_rows
        def die(conn, vid, fps):
            real(conn, vid, fps)
            os.kill(os.getpid(), signal.SIGKILL)
        m._insert_rows = die
        m.Ledger({url!r}).add({str(table)!r}, label="label")
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert proc.returncode == -9, proc.stderr.decode()
    led = Ledger(url)
    assert [v.ref for v in led.list()] == ["batch@1"]
    assert len(led.fingerprints("batch@1")) == 60
    assert led.add(table, label="label").ref == "batch@2"


WRITER = """
import sys
sys.path.insert(0, {src!r})
from poisonguard.ledger import Ledger
led = Ledger({url!r})
for i in range({n}):
    led.add({path!r}, label="label", name="shared", metadata={{"writer": {w}, "i": i}})
"""


def test_two_concurrent_writer_processes(url: str, table: Path) -> None:
    Ledger(url).close()  # schema first, so both writers race on versions only
    n = 6
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER.format(src=str(SRC), url=url, n=n, path=str(table), w=w)],
            stderr=subprocess.PIPE,
        )
        for w in range(2)
    ]
    for p in procs:
        _, err = p.communicate(timeout=240)
        assert p.returncode == 0, err.decode()
    with Ledger(url) as led:
        versions = led.list("shared")
        assert sorted(v.number for v in versions) == list(range(1, 2 * n + 1))
        assert sorted((v.metadata["writer"], v.metadata["i"]) for v in versions) == [
            (w, i) for w in range(2) for i in range(n)
        ]
        expected = row_fingerprints(pd.read_csv(table))
        for v in versions:
            assert np.array_equal(led.fingerprints(v.id), expected)


def test_load_refuses_a_changed_file(tmp_path: Path, table: Path) -> None:
    path = tmp_path / "copy.csv"
    path.write_bytes(table.read_bytes())
    led = Ledger(f"sqlite:///{tmp_path / 'l.db'}")
    v = led.add(path, label="label")
    assert led.load(v.ref)[1].shape == (60, 9)
    path.write_text(path.read_text().replace("acme", "acne"))
    with pytest.raises(LedgerError, match="changed since copy@1"):
        led.load(v.ref)


def test_unusable_url_is_a_ledger_error(tmp_path: Path) -> None:
    with pytest.raises(LedgerError, match="not a usable database URL"):
        Ledger("nosuchdb://x/y")
    with pytest.raises(LedgerError, match="ledger"):
        Ledger(f"sqlite:///{tmp_path / 'missing-dir' / 'x.db'}")
