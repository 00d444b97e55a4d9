"""Alembic environment: runs migrations on the engine `digest.db` makes for the URL."""

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

from alembic import context
from sqlalchemy import event, text
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

import workers.models  # noqa: F401  (registers every table on SQLModel.metadata)
from core.db import get_engine

target_metadata = SQLModel.metadata
# PostgreSQL advisory lock key held while migrating: any constant the application uses for
# nothing else ("digest m" in ASCII).
MIGRATION_LOCK = 0x64696765737420_6D
LOCK_POLL_SECONDS = 0.2
log = logging.getLogger("digest.migrate")


@contextmanager
def one_migrator_at_a_time(connection: Connection) -> Iterator[None]:
    """Migrate alone: every `digest` command upgrades an old schema as it starts, so a new
    release's processes (web, workers, a cron job) all try at once. Unserialised, all but one
    failed on a table or type another had just made.

    PostgreSQL: a session advisory lock, taken before Alembic's transaction (0015 commits
    mid-way for CREATE INDEX CONCURRENTLY; the lock outlives that) and released however the
    upgrade ends, before the connection goes back to the pool. SQLite: Alembic's
    transaction starts with BEGIN IMMEDIATE, which waits for the write lock (the busy timeout)
    and makes the upgrade one transaction: the sqlite3 driver would run DDL unwrapped, each
    statement committed by itself, so a failed upgrade left a schema half-way.
    Either way, the later migrators find the schema current and do nothing.
    """
    if connection.dialect.name == "postgresql":
        _take_migration_lock(connection)
        try:
            yield
        finally:
            connection.rollback()  # a failed upgrade's transaction, if any
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK})
            connection.commit()
    elif connection.dialect.name == "sqlite":

        def begin_immediate(conn: Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        event.listen(connection, "begin", begin_immediate)
        try:
            yield
        finally:
            event.remove(connection, "begin", begin_immediate)
    else:
        yield


def _take_migration_lock(connection: Connection) -> None:
    """Poll for the advisory lock between transactions rather than wait in pg_advisory_lock:
    a statement waiting holds a snapshot, which 0015's CREATE INDEX CONCURRENTLY in the lock
    holder waits for (PostgreSQL reports the deadlock and fails one of them)."""
    told = False
    while True:
        taken = connection.execute(text("SELECT pg_try_advisory_lock(:key)"),
                                   {"key": MIGRATION_LOCK}).scalar()
        connection.commit()  # idle between tries: no transaction, no snapshot
        if taken:
            return
        if not told:
            log.info("another process is migrating this database; waiting for it")
            told = True
        time.sleep(LOCK_POLL_SECONDS)


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
        with context.begin_transaction():
            context.run_migrations()


run_migrations_online()
