"""The shape of the code: one-way dependencies, and migrations that match the models."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

import workers.models  # noqa: F401  (every table on the metadata)
from digest.db import get_engine
from digest.settings import Settings
from workers.migrate import upgrade

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_dependencies_point_one_way() -> None:
    """digest <- emails <- subscribers <- workers, checked by import-linter."""
    lint_imports = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert lint_imports, "import-linter is a dev dependency"
    result = subprocess.run([lint_imports], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_migrations_match_the_models(migrated: Settings) -> None:
    """A model change without a migration fails here, on SQLite and PostgreSQL."""
    with get_engine(migrated.sqlalchemy_url).connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
    assert diff == []


def test_upgrade_is_idempotent(migrated: Settings) -> None:
    upgrade(migrated)
    upgrade(migrated)
