"""Real services for tests: a headless Chromium and a throwaway PostgreSQL server.

Both come from Debian packages (``chromium``, ``postgresql``) that ``make test-services`` and ``.ci/run``
install. Without them a test that needs one is skipped with the reason, unless ``POISONGUARD_REQUIRE_SERVICES=1``
(set by ``.ci/run``), where a missing service fails the test: CI must never pass by skipping.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REQUIRE = os.environ.get("POISONGUARD_REQUIRE_SERVICES") == "1"


def unavailable(reason: str) -> None:
    """Skip (or, where services are required, fail) the calling test."""
    if REQUIRE:
        pytest.fail(f"{reason} (POISONGUARD_REQUIRE_SERVICES=1)", pytrace=False)
    pytest.skip(reason)


# --- Chromium -------------------------------------------------------------------------------------------------


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


@dataclass
class PageReport:
    """What a page did while it loaded: console messages by type and uncaught errors."""

    console: list[tuple[str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        bad = [f"console.{t}: {m}" for t, m in self.console if t in ("error", "warning", "assert")]
        return bad + [f"uncaught: {e}" for e in self.errors] + [f"request failed: {r}" for r in self.failed_requests]


class Browser:
    """One headless Chromium for the test session; ``open(path)`` gives a page and its report."""

    def __init__(self) -> None:
        try:
            from playwright.sync_api import sync_playwright
        except ImportError:
            unavailable("playwright is not installed (pip install -e .[dev])")
        exe = chromium_path()
        if exe is None:
            unavailable("no Chromium on PATH (apt-get install chromium)")
        self._pw = sync_playwright().start()
        # --no-sandbox: CI containers run as root, where Chromium's sandbox cannot start
        self._browser = self._pw.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        # offline: the page must not need the network (self-contained report)
        self._context = self._browser.new_context(offline=True, viewport={"width": 1280, "height": 900})

    def open(self, target: str | Path) -> tuple[Any, PageReport]:
        page = self._context.new_page()
        report = PageReport()
        page.on("console", lambda m: report.console.append((m.type, m.text)))
        page.on("pageerror", lambda e: report.errors.append(str(e)))
        page.on("requestfailed", lambda r: report.failed_requests.append(r.url))
        is_url = isinstance(target, str) and re.match(r"^[a-z][a-z0-9+.-]*:", target) is not None
        url = target if is_url else Path(target).resolve().as_uri()
        page.goto(url, wait_until="load")
        return page, report

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._browser.close()
        with contextlib.suppress(Exception):
            self._pw.stop()


# --- PostgreSQL -----------------------------------------------------------------------------------------------


def _pg_bindir() -> Path | None:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name))
    return Path(dirs[-1]) if dirs else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """Start a PostgreSQL cluster in a temporary directory; yield an SQLAlchemy URL (pg8000 driver).

    As root the cluster runs as the ``postgres`` user (the server refuses to run as root).
    """
    try:
        import pg8000  # noqa: F401
    except ImportError:
        unavailable("pg8000 is not installed (pip install -e .[dev])")
    bindir = _pg_bindir()
    if bindir is None:
        unavailable("no PostgreSQL server binaries (apt-get install postgresql)")
    as_root = os.geteuid() == 0
    prefix: list[str] = []
    if as_root:
        runuser = shutil.which("runuser")
        if runuser is None:
            unavailable("running as root without runuser: cannot start PostgreSQL as another user")
        prefix = [runuser, "-u", "postgres", "--"]
    root = Path(tempfile.mkdtemp(prefix="pg-test-"))
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    if as_root:
        shutil.chown(root, "postgres")
        shutil.chown(sock, "postgres")
    port = _free_port()
    try:
        subprocess.run(
            [*prefix, str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "--no-sync"],
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [
                *prefix,
                str(bindir / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(root / "log"),
                "-w",
                "-o",
                f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off",
                "start",
            ],
            check=True,
            capture_output=True,
        )
    except subprocess.CalledProcessError as exc:
        log = (root / "log").read_text() if (root / "log").exists() else ""
        shutil.rmtree(root, ignore_errors=True)
        unavailable(f"PostgreSQL did not start: {exc.stderr.decode(errors='replace')[-500:]} {log[-500:]}")
    try:
        _wait_for(port)
        yield f"postgresql+pg8000://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], capture_output=True
        )
        shutil.rmtree(root, ignore_errors=True)


def _wait_for(port: int, timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.1)
    unavailable(f"PostgreSQL did not accept connections on port {port} within {timeout:.0f} s")


def fresh_database(url: str, name: str) -> str:
    """Create database ``name`` on the server behind ``url`` (dropping an old one) and return its URL."""
    import sqlalchemy as sa

    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return url.rsplit("/", 1)[0] + f"/{name}"
