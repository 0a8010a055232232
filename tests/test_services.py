"""The test services themselves work: a page's console errors are caught, and PostgreSQL takes writes."""

from __future__ import annotations

from pathlib import Path


def test_browser_reports_console_errors(browser, tmp_path: Path) -> None:
    page_file = tmp_path / "p.html"
    page_file.write_text("<h1 id=t>x</h1><script>document.getElementById('t').textContent='ok'; nope();</script>")
    page, report = browser.open(page_file)
    assert page.text_content("#t") == "ok"
    assert any("nope" in p for p in report.problems)


def test_postgres_takes_writes(postgres_url: str) -> None:
    import sqlalchemy as sa

    from services import fresh_database

    engine = sa.create_engine(fresh_database(postgres_url, "smoke"))
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE t (x int)"))
        conn.execute(sa.text("INSERT INTO t VALUES (1), (2)"))
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT sum(x) FROM t")).scalar() == 3
    engine.dispose()
