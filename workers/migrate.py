"""Alembic, driven from code: `digest db upgrade` and every command that starts migrate here."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from core.settings import Settings

MIGRATIONS = Path(__file__).parent / "migrations"


# PostgreSQL advisory lock key held while migrating (migrations/env.py): any constant the
# application uses for nothing else ("digest m" in ASCII).
MIGRATION_LOCK = 0x64696765737420_6D


def sqlite_lock_file(database: str) -> str:
    """The file a SQLite database's migrator holds an exclusive lock on (migrations/env.py)."""
    return f"{database}-migrate.lock"


def alembic_config(settings: Settings) -> Config:
    """An Alembic config pointing at our migrations and the configured database."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", settings.sqlalchemy_url.replace("%", "%%"))
    config.attributes["lock_wait_seconds"] = settings.migrate_wait_seconds  # read by env.py
    return config


def upgrade(settings: Settings, revision: str = "head") -> None:
    """Bring the schema to `revision` (idempotent)."""
    command.upgrade(alembic_config(settings), revision)


def current(settings: Settings) -> str | None:
    """The revision the database is at, or None when it was never migrated."""
    from alembic.runtime.migration import MigrationContext

    from core.db import get_engine

    with get_engine(settings.sqlalchemy_url).connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
