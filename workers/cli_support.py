"""What every `digest` command module shares: one-line errors, migrated settings, JSON out,
and the checks that turn a bad --date or --month into one line naming the option and format.

Nothing heavy is imported here at module level: `digest --help` must answer at once, so the
database, settings and feed modules load only when a command runs (see workers/cli.py).
"""

from __future__ import annotations

import functools
import json
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import typer

if TYPE_CHECKING:
    from core.db import ReadConnection
    from core.settings import Settings

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")
# Failures a command turns into one line. ValueError and OSError cover InvalidInput, FeedError
# and TrendingError; the rest are looked up only if their module was imported (an error of a
# module never imported cannot have been raised).
EXPECTED_BASES: tuple[type[BaseException], ...] = (ValueError, OSError)
EXPECTED_LAZY = (("digest.sources.fetch", "FetchError"),)
MIGRATIONS = Path(__file__).parent / "migrations" / "versions"
_REVISION = re.compile(r"^revision\b[^=\n]*=\s*['\"](\w+)['\"]", re.MULTILINE)
_DOWN_REVISION = re.compile(r"^down_revision\b[^=\n]*=(.*)$", re.MULTILINE)
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


def _loaded_class(module: str, name: str) -> type[BaseException] | None:
    found = getattr(sys.modules.get(module), name, None)
    return found if isinstance(found, type) and issubclass(found, BaseException) else None


def _expected(error: BaseException) -> bool:
    lazy = tuple(c for c in (_loaded_class(m, n) for m, n in EXPECTED_LAZY) if c)
    return isinstance(error, EXPECTED_BASES + lazy)


def command_errors(func: F) -> F:
    """Turn expected failures into one line on stderr and exit code 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except Exception as error:
            if _expected(error):
                typer.echo(f"error: {error}", err=True)
                raise typer.Exit(1) from None
            database_error = _loaded_class("sqlalchemy.exc", "SQLAlchemyError")
            if database_error is not None and isinstance(error, database_error):
                from core.db import database_reason

                typer.echo(f"database error: {database_reason(error)}", err=True)
                raise typer.Exit(1) from None
            raise

    return wrapper  # type: ignore[return-value]


def ready() -> Settings:
    """Settings, with the schema migrated (every command starts here). A database already at
    the newest revision skips Alembic, whose environment imports every table (and with them
    the ranking's numpy and scipy): most commands run against a current schema."""
    from core.settings import get_settings

    settings = get_settings()
    if not _schema_is_current(settings):
        from workers import migrate

        migrate.upgrade(settings)
    return settings


def migration_heads(versions: Path = MIGRATIONS) -> set[str]:
    """The newest revision(s) of workers/migrations, read from the files, not imported."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in versions.glob("*.py"):
        text = path.read_text(encoding="utf-8")
        if found := _REVISION.search(text):
            revisions.add(found.group(1))
        if found := _DOWN_REVISION.search(text):
            parents.update(re.findall(r"['\"](\w+)['\"]", found.group(1)))
    return revisions - parents


def _schema_is_current(settings: Settings) -> bool:
    """ready()'s question, on a connection of its own; a URL or database it cannot read
    says no (then Alembic, which says why in its own words)."""
    from core.db import ReadError, read_connection

    try:
        with read_connection(settings.sqlalchemy_url) as connection:
            return schema_is_current(connection)
    except (ReadError, ValueError):
        return False


def schema_is_current(connection: ReadConnection) -> bool:
    """The database's Alembic revision is the one head; any doubt says no (then Alembic)."""
    from core.db import ReadError

    heads = migration_heads()
    if len(heads) != 1:
        return False
    try:
        found = connection.rows("SELECT version_num FROM alembic_version")
    except ReadError:
        return False
    return [row[0] for row in found] == list(heads)


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str, ensure_ascii=False) + "\n")


def parse_day(value: str, option: str = "--date") -> date:
    """A YYYY-MM-DD option value; a bad one is a ValueError naming the option and the format
    (one line from command_errors), never Python's own 'month must be in 1..12'."""
    text = (value or "").strip()
    if not _DAY.match(text):
        raise ValueError(f"{option}: {value!r} is not a day: use YYYY-MM-DD, e.g. 2026-01-29")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{option}: {value!r} is not a day of the calendar: use YYYY-MM-DD, e.g. 2026-01-29"
        ) from None


def parse_month(value: str, option: str = "--month") -> str:
    """A YYYY-MM option value (an issue's month); a bad one names the option and the format."""
    text = (value or "").strip()
    if not _MONTH.match(text):
        raise ValueError(f"{option}: {value!r} is not a month: use YYYY-MM, e.g. 2026-04")
    return text


@contextmanager
def progress_bar(description: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr for long work (only on a terminal); yields `advance(n)`."""
    from rich.console import Console
    from rich.progress import Progress

    errors = Console(stderr=True)
    if not errors.is_terminal:
        yield lambda _n: None
        return
    with Progress(console=errors, transient=True) as progress:
        task = progress.add_task(description, total=total)
        yield lambda n: progress.advance(task, n)


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """Consecutive slices of `items`, `size` long (the last may be shorter)."""
    for start in range(0, len(items), size):
        yield items[start:start + size]
