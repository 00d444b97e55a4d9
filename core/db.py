"""The only place an engine, a session or a database connection is made.

SQLAlchemy and SQLModel are imported where an engine or a session is made, not when this
module is: `read_connection` serves commands that only read a few rows with plain SQL (the
subscriber listing) over the driver's own connection, with the URL parsing, connect arguments
and SQLite pragmas that the engine uses, without paying for SQLAlchemy first.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote

from core.errors import first_line

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine
    from sqlmodel import Session

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
    from sqlalchemy import event
    from sqlalchemy.engine import make_url
    from sqlmodel import create_engine

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
    from sqlmodel import Session

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


def one_of(session: Session, column: Any, values: Collection[int] | Collection[str]) -> Any:
    """`column IN (...)`; on PostgreSQL `column = ANY(:array)`: one parameter instead of
    thousands, which SQLAlchemy and psycopg would otherwise expand, parse and convert per
    statement (a planner's chunk asks about 20,000 subscribers at once)."""
    from sqlalchemy import Integer, String, any_, bindparam
    from sqlalchemy.dialects.postgresql import ARRAY
    from sqlmodel import col

    if not is_postgres(session):
        return col(column).in_(list(values))
    kind = String if values and isinstance(next(iter(values)), str) else Integer
    return col(column) == any_(bindparam(None, list(values), type_=ARRAY(kind)))


def one_of_param(column: Any, name: str, *, postgres: bool) -> Any:
    """`one_of` for integer ids as a named parameter (`name`, the values given when it runs),
    for a statement built once and run many times: SQLAlchemy then keeps its compiled form and
    cache key, which a statement built per call recomputes (on a sender's waves, about as
    much CPU again as running it)."""
    from sqlalchemy import Integer, any_, bindparam
    from sqlalchemy.dialects.postgresql import ARRAY
    from sqlmodel import col

    if not postgres:
        return col(column).in_(bindparam(name, expanding=True))
    return col(column) == any_(bindparam(name, type_=ARRAY(Integer)))


def is_postgres_url(url: str) -> bool:
    """True when the URL names a PostgreSQL database (before any session is opened)."""
    return parse_url(url).backend == "postgresql"


# sqlalchemy.engine.url._parse_url's pattern: tests/test_subscriber_listing.py checks that
# parse_url reads every form of URL the way make_url does.
_URL = re.compile(
    r"""
        (?P<name>[\w\+]+)://
        (?:
            (?P<username>[^:/]*)
            (?::(?P<password>[^@]*))?
        @)?
        (?:
            (?:
                \[(?P<ipv6host>[^/\?]+)\] |
                (?P<ipv4host>[^/:\?]+)
            )?
            (?::(?P<port>[^/\?]*))?
        )?
        (?:/(?P<database>[^\?]*))?
        (?:\?(?P<query>.*))?
    """,
    re.X,
)


@dataclass(frozen=True)
class DatabaseURL:
    """A database URL's parts, as sqlalchemy.engine.make_url reads them."""

    drivername: str
    username: str | None = None
    password: str | None = None
    host: str | None = None
    port: int | None = None
    database: str | None = None
    query: dict[str, str | tuple[str, ...]] = field(default_factory=dict)

    @property
    def backend(self) -> str:
        return self.drivername.partition("+")[0]

    @property
    def driver(self) -> str:
        """The DB-API driver's name; "" for the backend's default."""
        return self.drivername.partition("+")[2]


def parse_url(url: str) -> DatabaseURL:
    """The parts of a SQLAlchemy database URL, without importing SQLAlchemy."""
    found = _URL.match(url)
    if found is None:
        raise ValueError("Could not parse SQLAlchemy URL from given URL string")
    parts = found.groupdict()
    query: dict[str, str | tuple[str, ...]] = {}
    for key, value in parse_qsl(parts["query"] or ""):
        seen = query.get(key)
        if seen is None:
            query[key] = value
        else:
            query[key] = (*((seen,) if isinstance(seen, str) else seen), value)
    return DatabaseURL(
        drivername=parts["name"],
        username=unquote(parts["username"]) if parts["username"] is not None else None,
        password=unquote(parts["password"]) if parts["password"] is not None else None,
        host=parts["ipv4host"] or parts["ipv6host"],
        port=int(parts["port"]) if parts["port"] else None,
        database=unquote(parts["database"]) if parts["database"] is not None else None,
        query=query,
    )


class ReadError(Exception):
    """The database could not be read (not reachable, locked, or no such table): the
    driver's error, whichever driver it was, as its first line."""


@dataclass(frozen=True)
class ReadConnection:
    """A DB-API connection for reading rows with plain SQL. `placeholder` is the driver's
    mark for a parameter ("?" for sqlite3, "%s" for psycopg)."""

    dbapi_connection: Any
    placeholder: str
    errors: tuple[type[BaseException], ...]

    def rows(self, sql: str, parameters: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            cursor = self.dbapi_connection.cursor()
            try:
                cursor.execute(sql, tuple(parameters))
                return [tuple(row) for row in cursor.fetchall()]
            finally:
                cursor.close()
        except self.errors as error:
            raise ReadError(first_line(error)) from error


@contextmanager
def read_connection(url: str) -> Iterator[ReadConnection]:
    """A connection to read with, closed afterwards (nothing it did is committed).

    SQLite (the sqlite3 driver) and PostgreSQL (psycopg, SQLAlchemy's default) connect
    through their driver with the arguments and SQLite pragmas the engine gives them, so
    SQLAlchemy is not imported. Any other URL (another driver, several hosts, SQLite URI
    options) borrows a connection from the engine's pool instead.
    """
    parsed = parse_url(url)
    if parsed.backend == "sqlite" and parsed.driver in ("", "pysqlite"):
        connection = _sqlite_read_connection(parsed)
    elif parsed.backend == "postgresql" and parsed.driver in ("", "psycopg"):
        connection = _psycopg_read_connection(parsed)
    else:
        connection = None
    if connection is None:
        connection = _engine_read_connection(url)
    try:
        yield connection
    finally:
        try:
            connection.dbapi_connection.rollback()
        finally:
            connection.dbapi_connection.close()


def _sqlite_read_connection(url: DatabaseURL) -> ReadConnection | None:
    """sqlite3, as the engine connects it (pysqlite's connect args, our pragmas)."""
    import sqlite3

    if url.username or url.password or url.host or url.port or set(url.query) - {"timeout"}:
        return None  # the engine's rules (and errors) for these
    filename = url.database or ":memory:"
    if filename != ":memory:":
        Path(filename).parent.mkdir(parents=True, exist_ok=True)  # as get_engine does
        filename = os.path.abspath(filename)
    busy_seconds = float(str(url.query.get("timeout", SQLITE_BUSY_SECONDS)))
    try:
        dbapi_connection = sqlite3.connect(filename, timeout=busy_seconds,
                                           check_same_thread=False)
        try:
            _sqlite_pragmas(busy_seconds)(dbapi_connection, None)
        except sqlite3.Error:
            dbapi_connection.close()
            raise
    except sqlite3.Error as error:
        raise ReadError(first_line(error)) from error
    return ReadConnection(dbapi_connection, "?", (sqlite3.Error,))


def _psycopg_read_connection(url: DatabaseURL) -> ReadConnection | None:
    """psycopg, with the keyword arguments SQLAlchemy's psycopg dialect passes it."""
    if any(not isinstance(value, str) for value in url.query.values()):
        return None  # several hosts: the dialect's own rules
    import psycopg

    names = (("user", url.username), ("password", url.password), ("host", url.host),
             ("port", url.port), ("dbname", url.database))
    arguments: dict[str, Any] = {name: value for name, value in names if value}
    arguments.update(url.query)
    try:
        dbapi_connection = psycopg.connect(**arguments) if arguments else psycopg.connect("")
    except psycopg.Error as error:
        raise ReadError(first_line(error)) from error
    return ReadConnection(dbapi_connection, "%s", (psycopg.Error,))


def _engine_read_connection(url: str) -> ReadConnection:
    """A DB-API connection from the engine's pool (closing it gives it back)."""
    from sqlalchemy.exc import SQLAlchemyError

    engine = get_engine(url)
    driver_errors: tuple[type[BaseException], ...] = (engine.dialect.loaded_dbapi.Error,)
    try:
        dbapi_connection = engine.raw_connection()
    except SQLAlchemyError as error:
        raise ReadError(database_reason(error)) from error
    marks = {"qmark": "?", "format": "%s", "pyformat": "%s"}
    if engine.dialect.paramstyle not in marks:
        dbapi_connection.close()
        raise ValueError(f"{engine.dialect.name}: no plain-SQL reads through "
                         f"{engine.dialect.driver} (parameter style "
                         f"{engine.dialect.paramstyle})")
    return ReadConnection(dbapi_connection, marks[engine.dialect.paramstyle], driver_errors)


def database_reason(error: BaseException) -> str:
    """What the database (or its driver) said, in one line: a SQLAlchemy error's own
    message, without the statement and parameters SQLAlchemy adds below it."""
    return first_line(getattr(error, "orig", None) or error)
