"""`digest subscribers list` reads with plain SQL (subscribers/listing.py over
core.db.read_connection) and must print what the ORM's view of the same rows printed: the same
JSON values and the same table, on SQLite and PostgreSQL (issue 16, item 9)."""

from __future__ import annotations

import io
import json
import sqlite3
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from rich.console import Console
from rich.table import Table
from sqlalchemy import text
from sqlalchemy.engine import make_url

from core.db import (
    ReadError,
    get_engine,
    is_postgres_url,
    parse_url,
    read_connection,
    session_scope,
)
from core.settings import Settings
from subscribers.listing import COLUMNS, subscriber_rows
from subscribers.models import Frequency, Status, Subscriber, SubscriberCreate
from subscribers.service import add_subscriber, list_subscribers
from tests.support.cli import run

PARIS_SUMMER = timezone(timedelta(hours=2))


def _add_varied_subscribers(settings: Settings) -> None:
    """One row per status, and every kind of value the listing converts: flags, keyword lists
    with quotes and non-ASCII, days, moments with and without microseconds, a moment given in
    another timezone, and a moment written by hand without microseconds."""
    with session_scope(settings.sqlalchemy_url) as session:
        for n, status in enumerate(Status):
            session.add(Subscriber(
                email=f"reader{n}@example.org",
                keywords=["TTS", 'say "hi"', "Sprachsynthese für Ärzte", "author:Hinton"][: n],
                frequency=Frequency.weekly if n % 2 else Frequency.daily,
                monthly=bool(n % 2),
                timezone="Europe/Paris" if n % 2 else "UTC",
                send_hour=n * 5,
                trending_only=n == 0,
                status=status,
                paused_until=date(2026, 3, n + 1) if n % 2 else None,
                created_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC) + timedelta(days=n),
                confirmed_at=(datetime(2026, 1, 3, 12, 0, 0, 120000, tzinfo=PARIS_SUMMER)
                              if status != Status.pending else None),
                unsubscribed_at=(datetime(2026, 2, 1, 8, 30, tzinfo=UTC)
                                 if status == Status.unsubscribed else None),
                links_valid_from=datetime(2026, 2, 2, 0, 0, 0, 1, tzinfo=UTC) if n == 2 else None,
                digest=n != 3,
                feed_generation=n,
            ))
    with get_engine(settings.sqlalchemy_url).begin() as connection:
        connection.execute(text("UPDATE subscriber SET created_at = '2026-01-05 06:07:08' "
                                "WHERE email = 'reader4@example.org'"))


def _orm_rows(settings: Settings, status: Status | None = None) -> list[dict[str, object]]:
    """What the listing printed before it read with plain SQL."""
    with session_scope(settings.sqlalchemy_url) as session:
        return [s.model_dump(mode="json") for s in list_subscribers(session=session,
                                                                     status=status)]


def _orm_table(rows: list[dict[str, object]], width: int) -> str:
    """The table the listing printed before, drawn from the ORM's rows."""
    table = Table("id", "email", "status", "frequency", "keywords")
    for row in rows:
        keywords = row["keywords"]
        assert isinstance(keywords, list)
        table.add_row(str(row["id"]), str(row["email"]), str(row["status"]),
                      str(row["frequency"]), ", ".join(keywords))
    out = io.StringIO()
    Console(file=out, width=width).print(table)
    return out.getvalue()


def test_the_listing_reads_what_the_orm_reads(migrated: Settings) -> None:
    _add_varied_subscribers(migrated)
    for status in [None, *Status]:
        with read_connection(migrated.sqlalchemy_url) as connection:
            rows = subscriber_rows(connection, status.value if status else None)
        expected = _orm_rows(migrated, status)
        assert rows == expected, status
        assert [list(row) for row in rows] == [list(Subscriber.model_fields)] * len(rows)
    assert len(_orm_rows(migrated)) == len(Status)


def test_the_columns_are_the_models_fields() -> None:
    """A field added to Subscriber must be added to the listing too (and in its place)."""
    assert list(COLUMNS) == list(Subscriber.model_fields)


@pytest.mark.slow  # starts `digest` processes
def test_the_command_prints_the_orms_rows(migrated: Settings, var_dir: Path) -> None:
    _add_varied_subscribers(migrated)
    env = {"DIGEST_DATABASE_URL": migrated.database_url, "COLUMNS": "120"}
    table = run(var_dir, "subscribers", "list", env=env)
    assert table.returncode == 0, table.stderr
    assert table.stdout == _orm_table(_orm_rows(migrated), width=120)
    listed = run(var_dir, "subscribers", "list", "--status", "active", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == _orm_rows(migrated, Status.active)
    assert listed.stdout == json.dumps(json.loads(listed.stdout), indent=2,
                                       ensure_ascii=False) + "\n"


@pytest.mark.parametrize("url", [
    "sqlite://",
    "sqlite:///:memory:",
    "sqlite:///var/digest.db",
    "sqlite:////tmp/x/digest.db?timeout=5",
    "sqlite+pysqlite:///file:db?mode=ro&uri=true",
    "postgresql://localhost/digest",
    "postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3Dt_1",
    "postgresql+psycopg://us%40er:p%3Ass%2Fw@[::1]:6543/d%20b?sslmode=require&a=1&a=2",
    "postgresql+psycopg://:secret@/digest?host=/var/run/postgresql",
    "mysql+pymysql://u@h/db?charset=utf8mb4&empty=",
])
def test_urls_are_read_as_sqlalchemy_reads_them(url: str) -> None:
    parsed, reference = parse_url(url), make_url(url)
    assert (parsed.drivername, parsed.username, parsed.password, parsed.host, parsed.port,
            parsed.database) == (reference.drivername, reference.username, reference.password,
                                 reference.host, reference.port, reference.database)
    assert parsed.query == dict(reference.query)
    assert parsed.backend == reference.get_backend_name()
    assert is_postgres_url(url) == (reference.get_backend_name() == "postgresql")


@pytest.mark.parametrize("query", ["", "?timeout=5"])
def test_a_sqlite_read_connection_has_the_engines_pragmas(var_dir: Path, query: str) -> None:
    url = f"sqlite:///{var_dir / 'pragmas.db'}{query}"
    pragmas = ("journal_mode", "foreign_keys", "busy_timeout")
    with get_engine(url).connect() as connection:
        expected = [connection.exec_driver_sql(f"PRAGMA {p}").scalar() for p in pragmas]
    with read_connection(url) as light:
        assert isinstance(light.dbapi_connection, sqlite3.Connection)
        found = [light.rows(f"PRAGMA {p}")[0][0] for p in pragmas]
    assert found == expected
    assert expected[2] == (5000 if query else 30000)


def test_other_urls_read_through_the_engines_connection(migrated: Settings) -> None:
    """A URL the light path leaves to SQLAlchemy (SQLite's cached_statements; PostgreSQL's
    several hosts, here the same one twice) borrows the engine's DB-API connection and lists
    the same rows."""
    _add_varied_subscribers(migrated)
    url = make_url(migrated.sqlalchemy_url)
    if url.get_backend_name() == "postgresql":
        host = f"{url.host}:{url.port or 5432}"
        url = url.set(host=None, port=None).update_query_dict({"host": [host, host]})
    else:
        url = url.update_query_dict({"cached_statements": "10"})
    with read_connection(url.render_as_string(hide_password=False)) as connection:
        assert type(connection.dbapi_connection).__module__.startswith("sqlalchemy.")
        assert subscriber_rows(connection) == _orm_rows(migrated)


def test_a_database_that_cannot_be_read_is_one_error(var_dir: Path) -> None:
    with pytest.raises(ReadError, match="no such table: subscriber"), \
            read_connection(f"sqlite:///{var_dir / 'empty.db'}") as connection:
        subscriber_rows(connection)


@pytest.mark.slow  # starts a `digest` process
def test_an_unreachable_database_is_one_line(var_dir: Path) -> None:
    env = {"DIGEST_DATABASE_URL": "postgresql+psycopg://postgres@127.0.0.1:9/nowhere"}
    result = run(var_dir, "subscribers", "list", env=env)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("database error: "), result.stderr


@pytest.mark.slow  # starts a `digest` process
def test_keywords_print_as_typed_not_as_console_markup(migrated: Settings, var_dir: Path) -> None:
    """A keyword like "[/x]" used to stop the listing with rich's MarkupError; "[red]..." lost
    its brackets and ":smile:" became an emoji."""
    typed = ["[/weird]", "[red]speech[/red]", ":smile: audio"]
    with session_scope(migrated.sqlalchemy_url) as session:
        add_subscriber(session=session, subscriber_create=SubscriberCreate(
            email="ada@example.org", keywords=typed), confirmed=True)
    env = {"DIGEST_DATABASE_URL": migrated.database_url, "COLUMNS": "120"}
    result = run(var_dir, "subscribers", "list", env=env)
    assert result.returncode == 0, result.stderr
    assert ", ".join(typed) in result.stdout
