"""`digest subscribers`: add and list who gets mail. Imports happen inside the commands, as
everywhere in the CLI: listing pays for neither the ranking and the email layer nor SQLAlchemy
(it reads with plain SQL, subscribers/listing.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from workers.cli_choices import Status
from workers.cli_support import command_errors, emit_json, ready, schema_is_current

if TYPE_CHECKING:
    from subscribers.models import Frequency
else:
    # The light copy for the option's choices; SubscriberCreate turns it into the model's.
    from workers.cli_choices import Frequency

subscribers_app = typer.Typer(help="Who gets mail.", no_args_is_help=True)
console = Console()


@subscribers_app.command("add")
@command_errors
def subscribers_add(
    email: Annotated[str, typer.Argument(help="The subscriber's address.")],
    keywords: Annotated[str, typer.Option(help="Comma-separated keywords.")] = "",
    frequency: Annotated[Frequency, typer.Option()] = Frequency.daily,
    timezone: Annotated[str, typer.Option()] = "UTC",
    send_hour: Annotated[int, typer.Option(min=0, max=23)] = 7,
    trending_only: Annotated[
        bool, typer.Option("--trending-only", help="The day's top trending papers, no keywords.")
    ] = False,
    monthly: Annotated[
        bool,
        typer.Option(
            "--monthly/--no-monthly",
            help="Whether they agreed to the monthly clippings too (default: not; say "
            "--monthly only if they asked for it).",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Add a confirmed subscriber (an operator's import; the web signup asks for consent).

    The consent record says "cli" and the lists: the digest, plus the monthly clippings only
    with --monthly.

    Example: digest subscribers add ada@example.org --keywords "TTS, speech tokenizer"
    Example: digest subscribers add alan@example.org --trending-only --monthly
    """
    from core.db import session_scope
    from subscribers.models import SubscriberCreate
    from subscribers.service import add_subscriber, parse_keywords

    settings = ready()
    create = SubscriberCreate(
        email=email,
        keywords=parse_keywords(keywords) if keywords.strip() else [],
        frequency=frequency,
        timezone=timezone,
        send_hour=send_hour,
        trending_only=trending_only,
        monthly=monthly,
    )
    with session_scope(settings.sqlalchemy_url) as session:
        subscriber = add_subscriber(session=session, subscriber_create=create, confirmed=True,
                                    channel="cli")
        data = subscriber.model_dump(mode="json")
    if as_json:
        emit_json(data)
    else:
        console.print(f"added subscriber {data['id']}: {data['email']}")


@subscribers_app.command("list")
@command_errors
def subscribers_list(
    status: Annotated[Status | None, typer.Option(help="Only this status.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List subscribers.

    Example: digest subscribers list --status active --json
    """
    # Plain SQL over the driver's connection (subscribers/listing.py): no SQLAlchemy, SQLModel
    # or table models to import for a read of one table.
    from core.db import ReadError, read_connection
    from core.settings import get_settings
    from subscribers.listing import subscriber_rows

    wanted = status.value if status else None
    try:
        rows = _rows_if_current(get_settings().sqlalchemy_url, wanted)
    except ReadError:
        rows = None  # ready() migrates, or says in one line why the database can't be read
    if rows is None:
        url = ready().sqlalchemy_url
        try:
            with read_connection(url) as connection:
                rows = subscriber_rows(connection, wanted)
        except ReadError as error:
            typer.echo(f"database error: {error}", err=True)
            raise typer.Exit(1) from None
    if as_json:
        emit_json(rows)
        return
    table = Table("id", "email", "status", "frequency", "keywords")
    for row in rows:
        # Readers type their keywords: "[/x]", "[red]" and ":smile:" are text to show as typed,
        # not console markup or emoji codes (as plain strings, "[/x]" stopped the listing with
        # a MarkupError). Other text prints the same either way.
        table.add_row(
            str(row["id"]),
            Text(row["email"]),
            row["status"],
            row["frequency"],
            Text(", ".join(row["keywords"])),
        )
    console.print(table)


def _rows_if_current(url: str, status: str | None) -> list[dict[str, Any]] | None:
    """The listing's rows when the database is at the newest revision (what ready() makes
    sure of before any command); None when it is not, or when that can't be told."""
    from core.db import read_connection
    from subscribers.listing import subscriber_rows

    with read_connection(url) as connection:
        if not schema_is_current(connection):
            return None
        return subscriber_rows(connection, status)
