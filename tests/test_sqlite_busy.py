"""SQLite beside a running server: writers wait for each other instead of losing rows, and a
row that is lost anyway makes the command fail and say how many.

Real processes: `digest serve` saving clips through its API while `digest clip import` runs.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.support.cli import DIGEST, run
from tests.support.live_server import free_port
from tests.support.subprocess_env import without_digest_settings

API_TOKEN = "busy-test-token"


def _serve(var_dir: Path, port: int) -> subprocess.Popen[bytes]:
    environment = without_digest_settings()
    environment |= {"DIGEST_VAR_DIR": str(var_dir), "DIGEST_PUBLIC_URL": "http://digest.test",
                    "DIGEST_ADMIN_PASSWORD": "busy-test-password",
                    "DIGEST_ADMIN_API_TOKEN": API_TOKEN}
    server = subprocess.Popen([DIGEST, "serve", "--web-only", "--port", str(port)],
                              env=environment, cwd=var_dir.parent,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while True:
        assert server.poll() is None, server.stderr.read() if server.stderr else ""
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "digest serve did not start"
        time.sleep(0.2)


def _save_clips_until(
    stop: threading.Event, port: int, saved: list[int], refused: list[str]
) -> None:
    """The editor's bookmarklet, saving a clip through the server every few milliseconds.
    A refused save is recorded in `refused` (and ends the loop) for the test to report: an
    assertion raised in this thread would only be a warning."""
    headers = {"Authorization": f"Bearer {API_TOKEN}"}
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
        n = 0
        while not stop.is_set():
            n += 1
            response = client.post("/admin/api/clips", headers=headers, json={
                "url": f"https://example.org/from-the-server/{n}", "month": "2026-05",
                "title": f"Server clip {n}"})
            if response.status_code != 201:
                refused.append(f"clip {n}: {response.status_code} {response.text}")
                return
            saved.append(n)


def _links_to_import(var_dir: Path, tmp_path: Path, urls: list[str]) -> Path:
    """A migrated var/ and a file of urls for `digest clip import`."""
    assert run(var_dir, "db", "upgrade").returncode == 0
    links = tmp_path / "links.txt"
    links.write_text("".join(f"{url}\n" for url in urls))
    return links


def _imported(count: int) -> list[str]:
    return [f"https://example.org/imported/{n}" for n in range(count)]


def _clips(var_dir: Path, month: str) -> int:
    with sqlite3.connect(var_dir / "digest.db") as connection:
        return int(connection.execute("SELECT count(*) FROM clip WHERE month = ?",
                                      (month,)).fetchone()[0])


@pytest.mark.slow
def test_an_import_beside_a_busy_server_loses_nothing(var_dir: Path, tmp_path: Path) -> None:
    links = _links_to_import(var_dir, tmp_path, _imported(3000))
    port = free_port()
    server = _serve(var_dir, port)
    stop, saved, refused = threading.Event(), [], []
    writer = threading.Thread(target=_save_clips_until, args=(stop, port, saved, refused))
    writer.start()
    try:
        while len(saved) < 5 and not refused:  # the server writes before the import starts
            time.sleep(0.05)
        imported = run(var_dir, "clip", "import", str(links), "--month", "2026-04",
                       "--no-fetch", "--json")
    finally:
        stop.set()
        writer.join(60)
        server.terminate()
        server.wait(30)
    server_log = server.stderr.read().decode() if server.stderr else ""
    assert refused == [], server_log[-4000:]
    assert imported.returncode == 0, imported.stderr
    report = json.loads(imported.stdout)
    assert (report["added"], report["errors"]) == (3000, [])
    assert _clips(var_dir, "2026-04") == 3000
    assert _clips(var_dir, "2026-05") == len(saved) > 5  # the server lost nothing either


@pytest.mark.slow
def test_rows_the_database_refuses_fail_the_command_and_are_counted(
    var_dir: Path, tmp_path: Path
) -> None:
    links = _links_to_import(var_dir, tmp_path, [
        "https://example.org/a", "https://example.org/refused/1", "https://example.org/b",
        "https://example.org/refused/2"])
    with sqlite3.connect(var_dir / "digest.db") as connection:  # a database that refuses rows
        connection.execute("CREATE TRIGGER refuse BEFORE INSERT ON clip WHEN NEW.url LIKE "
                           "'%refused%' BEGIN SELECT RAISE(ABORT, 'refused by a trigger'); END")
    imported = run(var_dir, "clip", "import", str(links), "--month", "2026-04", "--no-fetch")
    assert imported.returncode == 1, imported.stdout
    assert "2 links lost to database errors" in imported.stderr
    assert "line 2: database error: refused by a trigger" in imported.stdout
    assert _clips(var_dir, "2026-04") == 2  # the others are kept


@pytest.mark.slow
def test_a_lock_held_past_the_busy_timeout_fails_the_whole_import(
    var_dir: Path, tmp_path: Path
) -> None:
    links = _links_to_import(var_dir, tmp_path, ["https://example.org/a", "https://example.org/b"])
    blocker = sqlite3.connect(var_dir / "digest.db", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another writer that never lets go
    try:
        started = time.monotonic()
        imported = run(var_dir, "clip", "import", str(links), "--month", "2026-04",
                       "--no-fetch", env={"DIGEST_DATABASE_URL":
                                          f"sqlite:///{var_dir / 'digest.db'}?timeout=1"})
        waited = time.monotonic() - started
    finally:
        blocker.rollback()
        blocker.close()
    assert imported.returncode == 1
    assert "database is locked" in imported.stderr and "nothing was saved" in imported.stderr
    assert waited >= 1  # it waited for the other writer before giving up
    assert _clips(var_dir, "2026-04") == 0


@pytest.mark.slow
def test_an_import_killed_part_way_keeps_whole_batches_and_a_second_run_adds_the_rest(
    var_dir: Path, tmp_path: Path
) -> None:
    links = _links_to_import(var_dir, tmp_path, _imported(5000))
    environment = without_digest_settings() | {"DIGEST_VAR_DIR": str(var_dir),
                                               "DIGEST_PUBLIC_URL": "http://digest.test"}
    importing = subprocess.Popen(
        [DIGEST, "clip", "import", str(links), "--month", "2026-04", "--no-fetch"],
        env=environment, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while _clips(var_dir, "2026-04") == 0:  # the first batch is in
            assert importing.poll() is None, "the import ended before it could be killed"
            time.sleep(0.005)
        importing.send_signal(signal.SIGKILL)  # no chance to clean up
    finally:
        importing.wait(30)
    saved = _clips(var_dir, "2026-04")
    assert 0 < saved < 5000 and saved % 200 == 0  # whole batches, nothing half-written

    again = run(var_dir, "clip", "import", str(links), "--month", "2026-04", "--no-fetch",
                "--json")
    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)
    assert (report["added"], report["merged"], report["errors"]) == (5000 - saved, saved, [])
    assert _clips(var_dir, "2026-04") == 5000


def test_an_import_stopped_by_a_lock_part_way_reports_the_batches_it_saved(
    var_dir: Path,
) -> None:
    from sqlalchemy import event
    from sqlalchemy.orm import Session

    from core.db import session_scope
    from digest.clippings.imports import ImportStopped, import_clips

    assert run(var_dir, "db", "upgrade").returncode == 0
    blocker = sqlite3.connect(var_dir / "digest.db", isolation_level=None)
    text = "".join(f"https://example.org/imported/{n}\n" for n in range(1000))
    try:
        with pytest.raises(ImportStopped) as stopped, session_scope(
            f"sqlite:///{var_dir / 'digest.db'}?timeout=0.2"
        ) as session:

            @event.listens_for(session, "after_commit")
            def another_writer_takes_the_database(committed: Session) -> None:
                # right after the first batch (a row's savepoint commits too: not that)
                if not committed.in_nested_transaction() and not blocker.in_transaction:
                    blocker.execute("BEGIN IMMEDIATE")

            import_clips(session=session, text=text, month="2026-04", commit_every=300)
    finally:
        blocker.rollback()
        blocker.close()
    assert (stopped.value.report.committed, stopped.value.report.committed_line) == (300, 300)
    assert stopped.value.reason == "database is locked"
    assert _clips(var_dir, "2026-04") == 300
