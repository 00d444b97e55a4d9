"""What every `digest` command module shares: one-line errors, migrated settings, JSON out."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from sqlalchemy.exc import SQLAlchemyError

from digest.settings import Settings, get_settings
from digest.sources.arxiv_feed import FeedError
from digest.sources.fetch import FetchError
from digest.sources.trending import TrendingError
from subscribers.service import InvalidInput
from workers import migrate

F = TypeVar("F", bound=Callable[..., Any])
EXPECTED_ERRORS = (FeedError, FetchError, TrendingError, InvalidInput, ValueError, OSError)


def command_errors(func: F) -> F:
    """Turn expected failures into one line on stderr and exit code 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except EXPECTED_ERRORS as error:
            typer.echo(f"error: {error}", err=True)
            raise typer.Exit(1) from None
        except SQLAlchemyError as error:
            reason = str(getattr(error, "orig", None) or error).splitlines()[0]
            typer.echo(f"database error: {reason}", err=True)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def ready() -> Settings:
    """Settings, with the schema migrated (every command starts here)."""
    settings = get_settings()
    migrate.upgrade(settings)
    return settings


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str, ensure_ascii=False) + "\n")
