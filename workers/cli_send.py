"""`digest send`, `digest deliveries` and `digest retry-failed`: the delivery ledger from the
command line. Imports happen inside the commands, as everywhere in the CLI."""

from __future__ import annotations

import time
from datetime import date
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from workers.cli_choices import DeliveryStatus
from workers.cli_support import command_errors, emit_json, parse_day, ready

if TYPE_CHECKING:
    from core.settings import Settings
    from workers.outcomes import SendReport
    from workers.planning import PlanReport

send_app = typer.Typer(help="Plan and send digests.", no_args_is_help=True)
console = Console()
errors = Console(stderr=True)


@send_app.command("daily")
@command_errors
def send_daily(
    day: Annotated[
        str | None,
        typer.Option(
            "--date", metavar="YYYY-MM-DD",
            help="Digest day YYYY-MM-DD (default: newest announcement day stored).",
        ),
    ] = None,
    dry_run: Annotated[bool, typer.Option(
        help="Rank and list who would get which papers; write and send nothing.")] = False,
    wait: Annotated[
        bool,
        typer.Option(
            help="With a broker: wait until the workers have handled every row of the day."
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Plan the day's digests in the delivery ledger, then send them: inline on the embedded
    default, or by enqueueing send tasks for the Celery workers when DIGEST_BROKER_URL is set.

    Example: digest send daily --date 2026-01-29 --dry-run
    """
    from rich.progress import Progress

    from emails.transports import make_transport
    from emails.transports.outbox import write_index
    from workers import planning, sending

    chosen = parse_day(day) if day else None
    settings = ready()
    target = chosen or _newest_day(settings)
    with_broker = not dry_run and bool(settings.broker_url)
    if with_broker:
        from workers.celery_app import app as celery
        from workers.celery_app import check_broker

        check_broker(celery)  # before planning: a broken broker is one line, not a traceback
    with errors.status(f"planning {target}: ranking the papers for each subscriber due..."):
        plan = planning.plan_daily(settings=settings, day=target, dry_run=dry_run)
    sent = sending.SendReport()
    if with_broker:
        _enqueue_senders(settings, target, wait=wait)
    elif not dry_run:
        with Progress(console=errors, transient=True) as progress:
            task = progress.add_task("sending", total=plan.planned or None)
            sent = sending.send_due(
                settings=settings,
                transport=make_transport(settings),
                progress=lambda n: progress.advance(task, n),
            )
        if settings.mail_backend == "outbox":
            write_index(settings.outbox_path)
    _summarise(settings, target, plan, sent, dry_run=dry_run, as_json=as_json)


def _summarise(settings: Settings, target: date, plan: PlanReport, sent: SendReport, *,
               dry_run: bool, as_json: bool) -> None:
    """What `send daily` did (or, dry, would do), as JSON or as lines for a person."""
    summary = {
        "day": target.isoformat(),
        "dry_run": dry_run,
        "due": plan.due,
        "planned": plan.planned,
        "feed_only": plan.feed_only,
        "already_planned": plan.already_planned,
        "nothing_relevant": plan.nothing_relevant,
        **sent.__dict__,
        "digests": [{"email": e, "papers": n} for e, n in plan.previews],
    }
    titles = _titles(settings, plan.papers) if dry_run else {}
    if dry_run:
        for digest in summary["digests"]:
            digest["items"] = [{"arxiv_id": arxiv_id, "title": titles.get(arxiv_id, "")}
                               for arxiv_id in plan.papers.get(digest["email"], [])]
    if as_json:
        emit_json(summary)
        return
    if dry_run:
        _print_would_send(plan.papers, titles)
    verb = "would send" if dry_run else "planned"
    feed_only = f", {plan.feed_only} of them to feeds only" if plan.feed_only else ""
    console.print(
        f"{target}: {plan.due} subscribers due, {verb} {len(plan.previews)} digests{feed_only} "
        f"({plan.already_planned} already planned, {plan.nothing_relevant} with nothing "
        f"relevant); sent {sent.sent}, retrying {sent.retried}, failed {sent.failed}, "
        f"skipped {sent.skipped}"
    )
    if sent.paused:
        errors.print(f"warning: {sent.paused}", highlight=False)


def _titles(settings: Settings, papers: dict[str, list[str]]) -> dict[str, str]:
    """The title of every paper some digest would carry."""
    from core.db import session_scope
    from digest.papers import papers_by_id

    ids = sorted({arxiv_id for ids in papers.values() for arxiv_id in ids})
    with session_scope(settings.sqlalchemy_url) as session:
        return {arxiv_id: p.title for arxiv_id, p in papers_by_id(session=session, ids=ids).items()}


def _print_would_send(papers: dict[str, list[str]], titles: dict[str, str]) -> None:
    """Who would get which papers, one block per subscriber (a dry run's answer)."""
    for email, ids in papers.items():
        console.print(f"{email} would get {len(ids)} paper{'' if len(ids) == 1 else 's'}:",
                      markup=False, highlight=False)
        for arxiv_id in ids:
            console.print(f"  {arxiv_id}  {titles.get(arxiv_id, '')[:90]}", markup=False,
                          highlight=False)


def _enqueue_senders(settings: Settings, day: date, *, wait: bool) -> None:
    """Start send tasks on the workers; with `wait`, poll the ledger until the day is done."""
    from rich.progress import Progress

    from core.db import session_scope
    from subscribers import ledger
    from workers.celery_app import app as celery

    for _ in range(4):
        celery.send_task("digest.send_due")
    errors.print("send tasks enqueued for the Celery workers")
    if not wait:
        return
    with Progress(console=errors, transient=True) as progress:
        task = progress.add_task("waiting for the workers", total=None)
        while True:
            with session_scope(settings.sqlalchemy_url) as session:
                open_rows = ledger.count_open(session=session, kind="daily", period=day.isoformat())
            if not open_rows:
                return
            progress.update(task, description=f"waiting: {open_rows} deliveries to go")
            time.sleep(1)


def _newest_day(settings: Settings) -> date:
    from core.db import session_scope
    from digest.papers import latest_announcement
    from subscribers.service import InvalidInput

    with session_scope(settings.sqlalchemy_url) as session:
        newest = latest_announcement(session=session)
    if newest is None:
        raise InvalidInput("no papers stored yet: run `digest ingest` first")
    return newest


@command_errors
def deliveries(
    status: Annotated[DeliveryStatus | None, typer.Option(help="Only this status.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=100_000)] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show the delivery ledger, newest first.

    Example: digest deliveries --status failed --json
    """
    from sqlmodel import col, select

    from core.db import session_scope
    from subscribers import ledger
    from subscribers.models import Subscriber

    settings = ready()
    wanted = ledger.DeliveryStatus(status.value) if status else None
    with session_scope(settings.sqlalchemy_url) as session:
        rows = [
            d.model_dump(mode="json", exclude={"payload"})
            for d in ledger.list_deliveries(session=session, status=wanted, limit=limit)
        ]
        ids = sorted({row["subscriber_id"] for row in rows})
        emails = dict(session.exec(
            select(Subscriber.id, Subscriber.email).where(col(Subscriber.id).in_(ids))
        ).all()) if ids else {}
    for row in rows:  # an erased subscriber's rows stay, without an address
        row["email"] = emails.get(row["subscriber_id"])
    if as_json:
        emit_json(rows)
        return
    table = Table("id", "to", "kind", "period", "status", "attempts", "last error")
    for row in rows:
        table.add_row(
            str(row["id"]),
            row["email"] or f"(erased #{row['subscriber_id']})",
            row["kind"],
            row["period"],
            row["status"],
            str(row["attempts"]),
            (row["last_error"] or "")[:60],
        )
    console.print(table)


@command_errors
def retry_failed(
    dry_run: Annotated[bool, typer.Option(help="Count them, change nothing.")] = False,
) -> None:
    """Put permanently failed deliveries back in the queue (after fixing their cause).

    Example: digest retry-failed --dry-run
    """
    from core.db import session_scope
    from subscribers import ledger

    settings = ready()
    with session_scope(settings.sqlalchemy_url) as session:
        count = ledger.requeue_failed(session=session, dry_run=dry_run)
    verb = "would be requeued" if dry_run else "requeued"
    console.print(f"{count} failed deliveries {verb}")
