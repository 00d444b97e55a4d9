"""The `digest` command with a fresh var/ directory: its logic in this process (Typer's
CliRunner, `invoke`), and a few runs as a user would, in a real process (`run`)."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from sqlalchemy import create_engine, make_url, text
from typer.testing import CliRunner

from core.db import is_postgres_url
from core.settings import Settings
from tests.support.cli import DIGEST, run
from tests.support.subprocess_env import without_digest_settings
from workers.cli_support import migration_heads
from workers.migrate import MIGRATION_LOCK, sqlite_lock_file

FEEDS = Path(__file__).parent / "data" / "feeds"


def invoke(
    var_dir: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`run` without the process: the same command, environment (DIGEST_ settings but
    DIGEST_SEMANTIC dropped) and working directory, through Typer's CliRunner in this
    interpreter, so no 4 s of start-up and imports per call. An exception the command lets
    escape lands in stderr as a traceback, as it would from a process."""
    from core.settings import get_settings
    from workers.cli import app

    environment: dict[str, str | None] = {
        key: None for key in os.environ if key.startswith("DIGEST_") and key != "DIGEST_SEMANTIC"
    }
    environment |= {
        "DIGEST_VAR_DIR": str(var_dir),
        "DIGEST_PUBLIC_URL": "http://digest.test",
        **(env or {}),
    }
    cwd = Path.cwd()
    os.chdir(var_dir.parent)
    get_settings.cache_clear()  # read once per process: here, once per command
    try:
        result = CliRunner().invoke(app, list(args), env=environment)
    finally:
        get_settings.cache_clear()
        os.chdir(cwd)
    stderr = result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        stderr += "".join(traceback.format_exception(result.exception))
    return subprocess.CompletedProcess([DIGEST, *args], result.exit_code, result.stdout, stderr)


@pytest.fixture
def stocked(var_dir: Path) -> Path:
    result = invoke(var_dir, "ingest", "--sample")
    assert result.returncode == 0, result.stderr
    assert "337 added" in result.stdout
    return var_dir


def test_every_command_has_an_example_in_its_help(var_dir: Path) -> None:
    for command in (
        ["demo"],
        ["db", "upgrade"],
        ["ingest"],
        ["backfill"],
        ["rank"],
        ["subscribers", "add"],
        ["subscribers", "list"],
        ["send", "daily"],
    ):
        result = invoke(var_dir, *command, "--help")
        assert result.returncode == 0, result.stderr
        assert "Example:" in result.stdout, command


@pytest.mark.slow
def test_the_installed_command_starts_and_shows_help(var_dir: Path) -> None:
    """Smoke: the console script itself, in a process of its own."""
    result = run(var_dir, "ingest", "--help")
    assert result.returncode == 0, result.stderr
    assert "Example:" in result.stdout


def test_db_upgrade_reports_the_revision(var_dir: Path) -> None:
    result = invoke(var_dir, "db", "upgrade")
    assert result.returncode == 0, result.stderr
    assert "revision 0001" in result.stdout or "revision 0" in result.stdout


def test_processes_starting_at_once_on_an_old_schema_migrate_one_at_a_time(
    db_settings: Settings, var_dir: Path
) -> None:
    """A new release's processes (web, workers, a cron job) all start by upgrading the
    schema. Three `digest db upgrade` at once on an empty database: before the migration
    lock, two of the three failed ("duplicate key value violates unique constraint" on
    PostgreSQL, "duplicate column name" on SQLite)."""
    environment = without_digest_settings() | {
        "DIGEST_VAR_DIR": str(var_dir), "DIGEST_DATABASE_URL": db_settings.sqlalchemy_url,
    }
    starts = [subprocess.Popen([DIGEST, "db", "upgrade"], env=environment, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
              for _ in range(3)]
    outputs = [process.communicate(timeout=300)[0] for process in starts]
    assert [process.returncode for process in starts] == [0, 0, 0], outputs
    head = max(migration_heads())
    assert all(f"database at revision {head}" in output for output in outputs), outputs


def test_a_process_that_waits_too_long_for_another_upgrade_gives_up_in_one_line(
    db_settings: Settings, var_dir: Path
) -> None:
    """A migrator that hangs holds the migration lock: the next process waits
    DIGEST_MIGRATE_WAIT_SECONDS, then exits 1 with one line saying why (no traceback)."""
    environment = without_digest_settings() | {
        "DIGEST_VAR_DIR": str(var_dir), "DIGEST_DATABASE_URL": db_settings.sqlalchemy_url,
        "DIGEST_MIGRATE_WAIT_SECONDS": "1",
    }
    with _migration_lock_held(db_settings):
        result = subprocess.run([DIGEST, "db", "upgrade"], env=environment, text=True,
                                capture_output=True, timeout=30)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: another process has been migrating this database for over 1 s; "
                      "if none is running, retry"], result.stderr
    assert "waiting for it" in result.stderr  # it said it was waiting before it gave up


@contextmanager
def _migration_lock_held(settings: Settings) -> Iterator[None]:
    """Hold the lock a migrator takes (see workers/migrations/env.py), as a hung one would."""
    url = settings.sqlalchemy_url
    if not is_postgres_url(url):
        with open(sqlite_lock_file(make_url(url).database or ""), "a") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            yield
        return
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK})
            try:
                yield
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"),
                                   {"key": MIGRATION_LOCK})
    finally:
        engine.dispose()


def test_ingesting_twice_adds_nothing_the_second_time(stocked: Path) -> None:
    result = invoke(stocked, "ingest", "--sample", "--json")
    report = json.loads(result.stdout)
    assert (report["added"], report["unchanged"]) == (0, 337)


def test_bad_input_is_one_line_and_a_non_zero_exit(var_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.xml"
    broken.write_text("<rss><channel><item><title>unclosed")
    for args in (
        ["ingest", str(broken)],
        ["ingest", str(tmp_path / "missing.xml")],
        ["rank", "--keywords", " , "],
        ["send", "daily", "--date", "yesterday"],
        ["subscribers", "add", "not-an-address", "--keywords", "tts"],
    ):
        result = invoke(var_dir, *args)
        assert result.returncode != 0, args
        assert "Traceback" not in result.stderr, args
        assert len(result.stderr.strip().splitlines()) == 1, (args, result.stderr)


@pytest.mark.slow
def test_a_process_exits_non_zero_with_one_line_on_bad_input(var_dir: Path) -> None:
    """Smoke: the exit code and stderr a shell sees, from a real process."""
    result = run(var_dir, "ingest", str(var_dir / "missing.xml"))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_rank_prints_json_best_first_with_what_matched(stocked: Path) -> None:
    result = invoke(
        stocked, "rank", "--keywords", "speech tokenizer, audio codec", "--limit", "5", "--json"
    )
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert 0 < len(rows) <= 5
    assert set(rows[0]) == {"arxiv_id", "title", "score", "matched", "close_to"}
    assert all(r["close_to"] == [] for r in rows)  # words only here: DIGEST_SEMANTIC is off
    assert [r["score"] for r in rows] == sorted((r["score"] for r in rows), reverse=True)
    assert all(
        set(r["matched"]) <= {"speech tokenizer", "audio codec"} and r["matched"] for r in rows
    )


def test_rank_since_restricts_the_window(stocked: Path) -> None:
    result = invoke(stocked, "rank", "--keywords", "TTS", "--since", "2026-01-20", "--json")
    rows = json.loads(result.stdout)
    assert rows and all(r["arxiv_id"].startswith(("2601.", "2512.", "25", "24")) for r in rows)
    everything = json.loads(
        invoke(stocked, "rank", "--keywords", "TTS", "--limit", "500", "--json").stdout
    )
    assert len(rows) < len(everything)


def test_subscribers_add_and_list(stocked: Path) -> None:
    added = invoke(
        stocked, "subscribers", "add", "Ada@Example.org", "--keywords", "tts, prosody", "--json"
    )
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["email"] == "ada@example.org"
    again = invoke(stocked, "subscribers", "add", "ada@example.org", "--keywords", "tts")
    assert again.returncode == 1 and "already" in again.stderr
    nothing = invoke(stocked, "subscribers", "add", "bob@example.org")
    assert nothing.returncode == 1 and "at least one keyword" in nothing.stderr
    trending = invoke(stocked, "subscribers", "add", "cy@example.org", "--trending-only", "--json")
    assert trending.returncode == 0, trending.stderr
    listed = json.loads(invoke(stocked, "subscribers", "list", "--json").stdout)
    assert [(s["email"], s["keywords"], s["trending_only"]) for s in listed] == [
        ("ada@example.org", ["tts", "prosody"], False),
        ("cy@example.org", [], True),
    ]


def test_send_daily_dry_run_writes_nothing(stocked: Path) -> None:
    invoke(stocked, "subscribers", "add", "ada@example.org", "--keywords", "TTS, speech synthesis")
    dry = json.loads(invoke(stocked, "send", "daily", "--dry-run", "--json").stdout)
    assert dry["dry_run"] and dry["digests"][0]["papers"] > 0 and dry["sent"] == 0
    assert not (stocked / "outbox").exists() or not list((stocked / "outbox").glob("*.eml"))
    real = json.loads(invoke(stocked, "send", "daily", "--json").stdout)
    assert real["planned"] == 1 and real["sent"] == 1
    again = json.loads(invoke(stocked, "send", "daily", "--json").stdout)
    assert again["planned"] == 0 and again["sent"] == 0 and again["already_planned"] == 1
    assert len(list((stocked / "outbox").glob("*.eml"))) == 1


def test_trending_stores_a_day_and_reports_a_broken_api_in_one_line(
    stocked: Path, httpserver: HTTPServer
) -> None:
    from tests.support.trending_data import DAILY, DAY

    httpserver.expect_request("/api/daily_papers", query_string=f"date={DAY}").respond_with_data(
        json.dumps(DAILY), content_type="application/json")
    httpserver.expect_request("/broken/daily_papers").respond_with_data("<html>oops</html>")
    env = {"DIGEST_TRENDING_URL": httpserver.url_for("/api/daily_papers")}
    result = invoke(stocked, "trending", "--date", DAY.isoformat(), "--json", env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["scores_added"] == len({i["paper"]["id"] for i in DAILY})
    broken = invoke(stocked, "trending", "--date", DAY.isoformat(),
                 env={"DIGEST_TRENDING_URL": httpserver.url_for("/broken/daily_papers")})
    assert broken.returncode == 1 and len(broken.stderr.strip().splitlines()) == 1
