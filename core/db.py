"""The only place an engine or a session is made."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, make_url
from sqlmodel import Session, create_engine

SQLITE_BUSY_SECONDS = 30.0  # how long a writer waits for another; `?timeout=N` in the URL wins


def _sqlite_pragmas(busy_seconds: float) -> Callable[[Any, Any], None]:
    """WAL lets the web app read while a worker writes; a writer waits `busy_seconds` for
    another to finish instead of failing; foreign keys are off by default."""

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_seconds * 1000)}")
        cursor.close()

    return on_connect


def _begin_before_savepoint(connection: Connection, _name: str | None) -> None:
    """Start a savepoint's transaction with BEGIN IMMEDIATE.

    The sqlite3 driver opens a transaction only before INSERT/UPDATE/DELETE, so a SAVEPOINT
    issued first starts a deferred one by itself: its first write must then upgrade a read
    lock, which SQLite refuses at once ("database is locked") without waiting for the busy
    timeout, and releasing that savepoint commits everything before it. Taking the write lock
    up front waits for other writers like any other write, and keeps one transaction.
    """
    dbapi_connection = connection.connection.driver_connection
    if dbapi_connection is not None and not dbapi_connection.in_transaction:
        connection.exec_driver_sql("BEGIN IMMEDIATE")  # errors arrive as SQLAlchemy's


@lru_cache(maxsize=8)
def get_engine(url: str) -> Engine:
    """One engine per database URL and process; SQLite files get their folder made."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        busy_seconds = float(str(parsed.query.get("timeout", SQLITE_BUSY_SECONDS)))
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": busy_seconds}
        )
        event.listen(engine, "connect", _sqlite_pragmas(busy_seconds))
        event.listen(engine, "savepoint", _begin_before_savepoint)
        return engine
    return create_engine(url, pool_pre_ping=True)


@contextmanager
def session_scope(url: str) -> Iterator[Session]:
    """A session that commits on success and rolls back on any error."""
    with Session(get_engine(url), expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def is_postgres(session: Session) -> bool:
    """True when the session talks to PostgreSQL (enables SKIP LOCKED, COPY and friends)."""
    return session.get_bind().dialect.name == "postgresql"


def is_postgres_url(url: str) -> bool:
    """True when the URL names a PostgreSQL database (before any session is opened)."""
    return make_url(url).get_backend_name() == "postgresql"
