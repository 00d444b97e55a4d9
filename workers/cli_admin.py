"""`digest admin ...`: what an operator needs to switch the admin pages on."""

from __future__ import annotations

import getpass
import sys
from typing import Annotated

import typer

admin_app = typer.Typer(help="The admin pages (/admin).", no_args_is_help=True)


@admin_app.command("hash-password")
def hash_password_command(
    stdin: Annotated[bool, typer.Option("--stdin", help="Read the password from standard "
                                        "input instead of prompting.")] = False,
) -> None:
    """Print a scrypt hash for DIGEST_ADMIN_PASSWORD, so the plain password is stored nowhere.

    Example: digest admin hash-password   (then DIGEST_ADMIN_PASSWORD='scrypt$16384$8$1$...')
    Example: printf %s "$PW" | digest admin hash-password --stdin
    """
    from subscribers.web.admin.passwords import hash_password

    if stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("Admin password: ")
        if password != getpass.getpass("Again: "):
            typer.echo("error: the two passwords differ", err=True)
            raise typer.Exit(1)
    if len(password) < 12:
        typer.echo("error: use an admin password of at least 12 characters", err=True)
        raise typer.Exit(1)
    typer.echo(hash_password(password).encode())
