"""A migrated database for every test without running Alembic in every test.

Migrating a fresh SQLite file to head takes about 0.7 s (SQLite's batch mode rebuilds
tables), a fresh PostgreSQL schema about 0.4 s. Once per session (per xdist worker) the suite
migrates one of each; a test then gets a copy: the SQLite file copied, or the PostgreSQL
schema's `pg_dump` replayed into the test's own schema. A copy is the same database: the same
tables, types, sequences, indexes, constraints and `alembic_version` row. The `migrated` and
`web` fixtures use it; tests about migrating (`digest db upgrade`, upgrade paths) still run
Alembic themselves.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from core.db import get_engine
from core.settings import Settings


def sqlite_path(settings: Settings) -> Path | None:
    """The SQLite file these settings use, or None for any other database."""
    url = make_url(settings.sqlalchemy_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database)


def migrate_template(var_dir: Path) -> Path:
    """A SQLite file under `var_dir` migrated to head, all connections closed: a template."""
    from workers.migrate import upgrade

    settings = Settings(_env_file=None, var_dir=var_dir, database_url="")  # type: ignore[call-arg]
    upgrade(settings)
    get_engine(settings.sqlalchemy_url).dispose()  # the last close checkpoints the WAL
    path = sqlite_path(settings)
    assert path is not None and path.exists()
    return path


def upgrade_from_template(settings: Settings, template: Path) -> None:
    """`workers.migrate.upgrade(settings)` for a SQLite file not created yet: copy `template`
    there. Any other database (PostgreSQL, an existing file) is migrated by Alembic."""
    path = sqlite_path(settings)
    if path is None or path.exists() or Path(f"{path}-wal").exists():
        from workers.migrate import upgrade

        upgrade(settings)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal"):  # a WAL left behind belongs with its file
        if Path(f"{template}{suffix}").exists():
            shutil.copyfile(f"{template}{suffix}", f"{path}{suffix}")


def postgres_schema_sql(base_url: str) -> str | None:
    """Migrate a new schema of the database at `base_url` to head and return its dump as SQL
    whose schema name is SCHEMA_TOKEN; None without `pg_dump` (tests then run Alembic)."""
    from workers.migrate import upgrade

    pg_dump = shutil.which("pg_dump")
    if pg_dump is None:
        return None
    schema = f"template_{uuid.uuid4().hex[:10]}"
    engine = create_engine(base_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = f"{base_url}?options=-csearch_path%3D{schema}"
    upgrade(Settings(_env_file=None, database_url=url))  # type: ignore[call-arg]
    get_engine(url).dispose()
    parsed = make_url(base_url)
    command = [pg_dump, "--no-owner", "--no-privileges", "--inserts", "--schema", schema,
               "--host", parsed.host or "127.0.0.1", "--port", str(parsed.port or 5432),
               "--username", parsed.username or "postgres", parsed.database or "postgres"]
    dumped = subprocess.run(command, capture_output=True, text=True, timeout=60,
                            env=os.environ | {"PGPASSWORD": parsed.password or ""})
    with engine.connect() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    engine.dispose()
    if dumped.returncode != 0:  # a client older than the server, say: Alembic it is
        return None
    lines = [line for line in dumped.stdout.splitlines()
             # psql meta-commands (\restrict) and the schema itself: the test made its own
             if not line.startswith("\\") and line != f"CREATE SCHEMA {schema};"]
    assert "alembic_version" in dumped.stdout, "the dump has the migrated tables"
    return "\n".join(lines).replace(schema, SCHEMA_TOKEN)


SCHEMA_TOKEN = "__digest_test_schema__"


def upgrade_postgres_from_sql(settings: Settings, sql: str | None) -> None:
    """`workers.migrate.upgrade(settings)` for a test's new, empty PostgreSQL schema (the
    first of its search_path): replay the session's migrated schema (`postgres_schema_sql`),
    or run Alembic without one."""
    from workers.migrate import upgrade

    engine = create_engine(settings.sqlalchemy_url)
    with engine.begin() as conn:
        schema = conn.execute(text("SELECT current_schema()")).scalar_one()
        empty = not conn.execute(
            text("SELECT 1 FROM pg_catalog.pg_tables WHERE schemaname = :s"), {"s": schema}
        ).first()
        if sql is not None and empty:
            conn.exec_driver_sql(sql.replace(SCHEMA_TOKEN, schema))
    engine.dispose()
    if sql is None or not empty:
        upgrade(settings)
