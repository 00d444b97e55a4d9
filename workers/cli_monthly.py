"""`digest monthly ...`: the editor's issue from the command line (draft, preview, approve, send).

Every command migrates first, prints one clear line on bad input and exits 1. The issue and
database modules are imported inside the commands, so `digest --help` stays instant.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from workers.cli_support import command_errors, parse_month, ready

if TYPE_CHECKING:
    from sqlmodel import Session

    from core.settings import Settings
    from digest.clippings.models import MonthlyIssue

app = typer.Typer(help="The monthly clippings issue.", no_args_is_help=True)
F = TypeVar("F", bound=Callable[..., Any])
Month = Annotated[str, typer.Option("--month", metavar="YYYY-MM",
                                    help="The issue's month, YYYY-MM.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]
GMAIL_CLIPS_AT = 100_000  # bytes of HTML; Gmail hides the rest of a message past ~102 KB


def _ready(month: str | None = None) -> Settings:
    if month is not None:
        parse_month(month)  # before touching the database
    return ready()


def _summary(issue: MonthlyIssue) -> dict[str, Any]:
    content = issue.content or {}
    return {
        "month": issue.month,
        "slug": issue.slug,
        "title": issue.title,
        "status": issue.status.value,
        "highlights": len(content.get("highlights", [])),
        "papers": sum(len(s["papers"]) for s in content.get("sections", [])),
        "links": sum(len(g["links"]) for g in content.get("also", [])),
        "approved_at": issue.approved_at,
        "sent_at": issue.sent_at,
    }


def _emit(data: Any, as_json: bool, line: str) -> None:
    if as_json:
        sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    else:
        typer.echo(line)


def _line(item: dict[str, Any]) -> str:
    return (
        f"{item['month']} {item['status']:<8} {item['title']}: {item['highlights']} highlights, "
        f"{item['papers']} papers, {item['links']} links"
    )


@app.command("draft")
@command_errors
def draft(
    month: Month,
    intro: Annotated[str | None, typer.Option(help="The editor's intro.")] = None,
    intro_file: Annotated[Path | None, typer.Option(help="Read the intro from a file.")] = None,
    title: Annotated[str | None, typer.Option(help="Replace 'Clippings - <Month> <Year>'.")] = None,
    as_json: AsJson = False,
) -> None:
    """Create or refresh the month's draft from its clips (the intro and title are kept).

    Example: digest monthly draft --month 2026-04 --intro-file intro.md
    """
    if intro is not None and intro_file is not None:
        raise ValueError("give --intro or --intro-file, not both")
    text = intro_file.read_text(encoding="utf-8") if intro_file else intro
    from core.db import session_scope
    from digest.clippings.issue import draft_issue

    settings = _ready(month)
    with session_scope(settings.sqlalchemy_url) as session:
        summary = _summary(draft_issue(session=session, month=month, intro=text, title=title))
    _emit(summary, as_json, "draft " + _line(summary))


@app.command("preview")
@command_errors
def preview(
    month: Month,
    out: Annotated[Path, typer.Option(help="Folder for the preview files.")] = Path("var/preview"),
    as_json: AsJson = False,
) -> None:
    """Write the issue as the email (HTML and text) and print the paths; changes nothing.

    A draft shows the clips as they are now; an approved or sent issue its frozen content.
    Example: digest monthly preview --month 2026-04 --out /tmp/preview
    """
    from core.db import session_scope
    from digest.clippings.issue import get_issue
    from subscribers.monthly import preview_email

    settings = _ready(month)
    with session_scope(settings.sqlalchemy_url) as session:
        issue = get_issue(session=session, month=month)
        if issue is None:
            raise ValueError(f"no issue for {month}: run `digest monthly draft --month {month}`")
        message = preview_email(settings=settings, session=session, issue=issue)
    out.mkdir(parents=True, exist_ok=True)
    html, text = out / f"monthly-{month}.html", out / f"monthly-{month}.txt"
    html.write_text(message.html, encoding="utf-8")
    text.write_text(message.text, encoding="utf-8")
    size = len(message.html.encode())
    data = {"html": str(html), "text": str(text), "html_bytes": size, "subject": message.subject}
    _emit(data, as_json, f"{html}\n{text}\n({size / 1024:.1f} KB of HTML)")
    if size >= GMAIL_CLIPS_AT:
        typer.echo(
            f"warning: {size} bytes of HTML: Gmail clips it; shorten some write-ups", err=True
        )


@app.command("approve")
@command_errors
def approve(month: Month, as_json: AsJson = False) -> None:
    """Freeze the issue's content as it is now, ready to send (an empty issue is refused).

    Example: digest monthly approve --month 2026-04
    """
    from core.db import session_scope
    from digest.clippings.issue import approve_issue

    settings = _ready(month)
    with session_scope(settings.sqlalchemy_url) as session:
        summary = _summary(approve_issue(session=session, month=month))
    _emit(summary, as_json, "approved " + _line(summary))


@app.command("reopen")
@command_errors
def reopen(month: Month, as_json: AsJson = False) -> None:
    """Approved back to draft, to edit again (a sent issue stays as it went out).

    Example: digest monthly reopen --month 2026-04
    """
    from core.db import session_scope
    from digest.clippings.issue import reopen_issue

    settings = _ready(month)
    with session_scope(settings.sqlalchemy_url) as session:
        summary = _summary(reopen_issue(session=session, month=month))
    _emit(summary, as_json, "reopened " + _line(summary))


@app.command("send")
@command_errors
def send(
    month: Month,
    dry_run: Annotated[bool, typer.Option(help="Count the recipients, change nothing.")] = False,
    wait: Annotated[bool, typer.Option(help="Also send now (or wait for the workers).")] = False,
    as_json: AsJson = False,
) -> None:
    """Plan one delivery per subscriber who opted in (once per issue), then send them.

    Without --wait the rows wait for `digest serve` or the Celery workers.
    Example: digest monthly send --month 2026-04 --dry-run
    """
    from core.db import session_scope
    from digest.clippings.issue import get_issue
    from digest.clippings.models import IssueStatus
    from subscribers import ledger
    from subscribers.monthly import KIND, eligible_subscriber_ids, plan_monthly

    settings = _ready(month)
    with session_scope(settings.sqlalchemy_url) as session:
        issue = get_issue(session=session, month=month)
        if issue is None:
            raise ValueError(f"no issue for {month}: run `digest monthly draft --month {month}`")
        if issue.status == IssueStatus.draft:
            raise ValueError(f"the {month} issue is a draft: `digest monthly approve` it first")
        recipients = len(eligible_subscriber_ids(session=session, today=date.today()))
        planned = 0 if dry_run else plan_monthly(session=session, issue=issue)
    result: dict[str, Any] = {"month": month, "dry_run": dry_run, "eligible": recipients,
                              "planned": planned}  # fmt: skip
    if not dry_run and wait:
        result.update(_deliver(settings, month))
    with session_scope(settings.sqlalchemy_url) as session:
        result["waiting"] = ledger.count_open(session=session, kind=KIND, period=month)
    planned_text = f"would go to {recipients}" if dry_run else f"{planned} deliveries planned"
    line = f"{month}: {recipients} subscribers opted in; {planned_text}"
    extra = "".join(f", {k} {result[k]}" for k in ("sent", "retried", "failed", "skipped")
                    if k in result)  # fmt: skip
    _emit(result, as_json, f"{line}{extra}; {result['waiting']} still to send")


def _deliver(settings: Settings, month: str) -> dict[str, Any]:
    """Send inline on the embedded default; with a broker, start the workers and wait."""
    from core.db import session_scope
    from emails.transports import make_transport
    from emails.transports.outbox import write_index
    from workers import sending

    if not settings.broker_url:
        report = sending.send_due(settings=settings, transport=make_transport(settings))
        if settings.mail_backend == "outbox":
            write_index(settings.outbox_path)
        if report.paused:
            typer.echo(f"warning: {report.paused}", err=True)
        return {k: getattr(report, k) for k in ("sent", "retried", "failed", "skipped")}
    from workers.celery_app import app as celery

    for _ in range(4):
        celery.send_task("digest.send_due")
    while True:  # until nothing is due now (a retry scheduled for later is not waited for)
        with session_scope(settings.sqlalchemy_url) as session:
            if not _due_now(session, month):
                return {}
        time.sleep(1)


def _due_now(session: Session, month: str) -> int:
    """The month's rows being sent, or waiting and due now."""
    from subscribers import ledger
    from subscribers.models import utcnow
    from subscribers.monthly import KIND

    return ledger.count_open(session=session, kind=KIND, period=month, due_by=utcnow())


@app.command("list")
@command_errors
def list_command(as_json: AsJson = False) -> None:
    """Every issue, newest month first, with its status and size.

    Example: digest monthly list --json
    """
    from core.db import session_scope
    from digest.clippings.issue import list_issues

    settings = _ready()
    with session_scope(settings.sqlalchemy_url) as session:
        items = [_summary(issue) for issue in list_issues(session=session)]
    _emit(items, as_json, "\n".join(_line(i) for i in items) or "no issues yet")
