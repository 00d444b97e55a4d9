"""Alembic environment: runs migrations on the engine `digest.db` makes for the URL."""

import fcntl
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from alembic import context
from sqlalchemy import event, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import SQLModel

import workers.models  # noqa: F401  (registers every table on SQLModel.metadata)
from core.db import get_engine
from core.settings import Settings
from workers.migrate import MIGRATION_LOCK, sqlite_lock_file

target_metadata = SQLModel.metadata
LOCK_POLL_SECONDS = 0.2
# How long a process waits for another one's upgrade before it gives up with an error (a
# crashed migrator releases its lock at once; only a hung one is waited out):
# DIGEST_MIGRATE_WAIT_SECONDS, through the Alembic config (workers/migrate.py).
LOCK_WAIT_SECONDS = float(context.config.attributes.get(
    "lock_wait_seconds", Settings.model_fields["migrate_wait_seconds"].default))
log = logging.getLogger("digest.migrate")


class MigrationLockTimeout(TimeoutError):
    """Another process held the migration lock for longer than LOCK_WAIT_SECONDS (an OSError:
    the CLI prints it as one line, like other failures a user can act on)."""


@contextmanager
def one_migrator_at_a_time(connection: Connection) -> Iterator[None]:
    """Migrate alone: every `digest` command upgrades an old schema as it starts, so a new
    release's processes (web, workers, a cron job) all try at once. Unserialised, all but one
    failed on a table or type another had just made. The later migrators wait, then find the
    schema current and do nothing.

    PostgreSQL: a session advisory lock, taken before Alembic's first transaction (0015 and
    0016 commit mid-way for CREATE/DROP INDEX CONCURRENTLY; the lock outlives that) and released
    however the upgrade ends. SQLite: an exclusive lock on a file beside the database, held for
    the whole upgrade, since Alembic commits after each migration there (SQLite DDL is not
    transactional to Alembic) and a waiter would otherwise slip in between two of them.
    """
    if connection.dialect.name == "postgresql":
        _take_advisory_lock(connection)
        try:
            yield
        finally:
            _release_advisory_lock(connection)
    elif connection.dialect.name == "sqlite":
        with _sqlite_file_lock(connection.engine.url.database), \
                _foreign_keys_off(connection), \
                _each_migration_in_a_write_transaction(connection):
            yield
    else:
        yield


def _wait_for(take: Callable[[], bool]) -> None:
    """Call `take` until it returns True, saying once (a warning: the CLI shows it) that
    another process is migrating; give up after LOCK_WAIT_SECONDS."""
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    told = False
    while not take():
        if time.monotonic() > deadline:
            raise MigrationLockTimeout(
                f"another process has been migrating this database for over "
                f"{LOCK_WAIT_SECONDS:g} s; if none is running, retry")
        if not told:
            log.warning("another process is migrating this database; waiting for it")
            told = True
        time.sleep(LOCK_POLL_SECONDS)


def _take_advisory_lock(connection: Connection) -> None:
    """Poll for the advisory lock between transactions rather than wait in pg_advisory_lock:
    a statement waiting holds a snapshot, which 0015's CREATE INDEX CONCURRENTLY in the lock
    holder waits for (PostgreSQL reports the deadlock and fails one of them). 0016's DROP
    INDEX CONCURRENTLY waits only for sessions holding locks on `delivery`, never a waiter."""

    def take() -> bool:
        taken = connection.execute(text("SELECT pg_try_advisory_lock(:key)"),
                                   {"key": MIGRATION_LOCK}).scalar()
        connection.commit()  # idle between tries: no transaction, no snapshot
        return bool(taken)

    _wait_for(take)


def _release_advisory_lock(connection: Connection) -> None:
    """Release the lock without hiding the upgrade's own error: should the release fail (a
    broken connection), the connection is discarded, and the lock ends with its session."""
    try:
        connection.rollback()  # a failed upgrade's transaction, if any
        connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK})
        connection.commit()
    except SQLAlchemyError:
        log.warning("could not release the migration lock; dropping the connection releases "
                    "it", exc_info=True)
        connection.invalidate()


@contextmanager
def _sqlite_file_lock(database: str | None) -> Iterator[None]:
    """flock on `<database>-migrate.lock`, not on the database: closing any descriptor of the
    database file would drop SQLite's own POSIX locks in this process. The file stays (it is
    empty): unlinking a lock file races with a process about to lock it. A database in
    memory belongs to one connection and needs no lock."""
    if not database or database == ":memory:" or database.startswith("file:"):
        yield
        return
    with open(sqlite_lock_file(database), "a") as lock_file:

        def take() -> bool:
            try:
                fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            return True

        _wait_for(take)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


@contextmanager
def _foreign_keys_off(connection: Connection) -> Iterator[None]:
    """Batch mode rebuilds a SQLite table as a copy, drops the old one and renames the copy;
    with foreign keys on, that DROP deletes every row referring to the table (ON DELETE
    CASCADE): downgrading 0006 rebuilt `subscriber` and emptied the ledger. SQLite changes the
    pragma only outside a transaction, so it goes off before the first migration's and back on
    after the last (`_refuse_dangling_rows` then checks what the migrations did)."""
    connection.exec_driver_sql("PRAGMA foreign_keys=OFF")  # no BEGIN yet: the driver's
    connection.commit()  # autocommit for pragmas, before our listener opens transactions
    try:
        yield
    finally:
        connection.rollback()
        connection.exec_driver_sql("PRAGMA foreign_keys=ON")
        connection.commit()


@contextmanager
def _each_migration_in_a_write_transaction(connection: Connection) -> Iterator[None]:
    """Open each of Alembic's transactions with BEGIN IMMEDIATE: the sqlite3 driver would run
    DDL unwrapped, each statement committed by itself, so a failed migration left the schema
    half-way; IMMEDIATE takes the write lock up front, waiting (the busy timeout) for the
    application's writers. Not inside a migration's autocommit block, which asks for no
    transaction (a pragma there would be ignored inside one)."""

    def begin_immediate(conn: Connection) -> None:
        if conn.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    event.listen(connection, "begin", begin_immediate)
    try:
        yield
    finally:
        event.remove(connection, "begin", begin_immediate)


def _refuse_dangling_rows(connection: Connection) -> None:
    """After migrations ran with SQLite's foreign keys off: fail loudly if one left a row whose
    parent is gone (a scan of every table, so only when the revision moved)."""
    dangling = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    connection.commit()
    if dangling:
        raise RuntimeError(f"the migration left rows whose parent is gone: {dangling[:5]}")


def run_migrations_online() -> None:
    url = context.config.get_main_option("sqlalchemy.url")
    assert url, "sqlalchemy.url must be set"
    engine = get_engine(url)
    with engine.connect() as connection, one_migrator_at_a_time(connection):
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",  # SQLite can't ALTER much
            compare_type=True,
        )
        sqlite = connection.dialect.name == "sqlite"
        migration = context.get_context()
        before = migration.get_current_heads() if sqlite else ()
        with context.begin_transaction():
            context.run_migrations()
        if sqlite and migration.get_current_heads() != before:
            _refuse_dangling_rows(connection)


run_migrations_online()
