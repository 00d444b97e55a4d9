"""The shape of the code: one-way dependencies, migrations that match the models, and test
modules that share helpers through tests/support rather than through each other."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

import workers.models  # noqa: F401  (every table on the metadata)
from core.db import get_engine
from core.settings import Settings
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


def _test_modules_imported_by(path: Path) -> set[str]:
    """Every tests/test_*.py module `path` imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level and path.parent.name == "tests":  # from .test_x / from . import x
                base = ".".join(["tests", *filter(None, [node.module])])
            else:
                base = node.module or ""
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if len(parts) >= 2 and parts[0] == "tests" and parts[1].startswith("test_"):
                found.add(".".join(parts[:2]))
    return found


def test_test_modules_never_import_each_other() -> None:
    """Shared helpers and fixtures live in tests/support (or tests/conftest.py): a test module,
    or a benchmark, that imports another test module runs that module's import-time code and
    ties the two together. Nothing may import a tests/test_*.py module."""
    modules = sorted((ROOT / "tests").glob("test_*.py")) + sorted((ROOT / "bench").glob("*.py"))
    assert len(modules) > 50, "the suite's files are where this test looks for them"
    offenders = {
        str(path.relative_to(ROOT)): sorted(imported)
        for path in modules
        if (imported := _test_modules_imported_by(path))
    }
    assert offenders == {}, "move what they share into tests/support/"
