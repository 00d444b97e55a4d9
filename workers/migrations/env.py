"""Alembic environment: runs migrations on the engine `digest.db` makes for the URL."""

from alembic import context
from sqlmodel import SQLModel

import workers.models  # noqa: F401  (registers every table on SQLModel.metadata)
from core.db import get_engine

target_metadata = SQLModel.metadata


def run_migrations_online() -> None:
    url = context.config.get_main_option("sqlalchemy.url")
    assert url, "sqlalchemy.url must be set"
    engine = get_engine(url)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",  # SQLite can't ALTER much
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()


run_migrations_online()
