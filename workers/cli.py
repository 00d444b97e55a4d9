"""The `digest` command: what an operator (or `make demo`) runs.

Every command migrates the database first, prints one clear line on bad input and exits
non-zero, never a traceback. Commands import what they need when they run: importing the
database, ranking and email layers up front cost every command (and `--help`) seconds.
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from workers.cli_admin import admin_app
from workers.cli_choices import DeliveryStatus, Status
from workers.cli_clips import clip_app
from workers.cli_monthly import app as monthly_app
from workers.cli_support import command_errors, emit_json, parse_day, ready

if TYPE_CHECKING:
    from digest.settings import Settings
    from subscribers.models import Frequency
else:
    # The light copy for the option's choices; SubscriberCreate turns it into the model's.
    from workers.cli_choices import Frequency

app = typer.Typer(
    help="Personalised arXiv paper digests by email.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
subscribers_app = typer.Typer(help="Who gets mail.", no_args_is_help=True)
send_app = typer.Typer(help="Plan and send digests.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(subscribers_app, name="subscribers")
app.add_typer(send_app, name="send")
app.add_typer(clip_app, name="clip")
app.add_typer(admin_app, name="admin")
app.add_typer(monthly_app, name="monthly")

console = Console()
errors = Console(stderr=True)


@db_app.command("upgrade")
@command_errors
def db_upgrade() -> None:
    """Migrate the database to the newest schema.

    Example: DIGEST_DATABASE_URL=postgresql+psycopg://localhost/digest digest db upgrade
    """
    from workers import migrate

    settings = ready()
    console.print(f"database at revision {migrate.current(settings)}")


@app.command()
@command_errors
def ingest(
    location: Annotated[
        str, typer.Argument(help="Path or URL of an arXiv RSS or Atom document.")
    ] = "",
    sample: Annotated[bool, typer.Option(help="Ingest the bundled sample corpus.")] = False,
    listings: Annotated[
        bool, typer.Option(help="Fetch today's RSS listings of DIGEST_ARXIV_CATEGORIES.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Store the papers of an arXiv RSS listing or API (Atom) document.

    Example: digest ingest https://rss.arxiv.org/rss/cs.SD  |  digest ingest --sample
    """
    from subscribers.service import InvalidInput
    from workers import jobs
    from workers.demo import sample_corpus_path

    settings = ready()
    if listings:
        report = jobs.ingest_listings(settings=settings)
    elif sample or location:
        target = str(sample_corpus_path()) if sample else location
        report = jobs.ingest_document(
            settings=settings, location=target, source="sample" if sample else ""
        )
    else:
        raise InvalidInput("give a PATH_OR_URL, --sample or --listings")
    if as_json:
        emit_json(report.__dict__)
    elif report.seen == 0:
        console.print(
            f"{report.location}: valid {report.kind} feed with no new papers; nothing changed"
        )
    else:
        skipped = ", ".join(f"{n} {why}" for why, n in report.skipped.items()) or "none"
        console.print(
            f"{report.location}: {report.added} added, {report.updated} updated, "
            f"{report.unchanged} unchanged (skipped: {skipped})"
        )


@app.command()
@command_errors
def trending(
    day: Annotated[
        str | None,
        typer.Option("--date", metavar="YYYY-MM-DD", help="Day YYYY-MM-DD (default: today, UTC)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Store a day's trending papers and upvotes from DIGEST_TRENDING_URL.

    Example: digest trending --date 2026-01-29
    """
    from workers import jobs

    target = parse_day(day) if day else datetime.now(UTC).date()
    settings = ready()
    report = jobs.ingest_trending(settings=settings, day=target)
    if as_json:
        emit_json(report.__dict__)
        return
    console.print(
        f"{target}: {report.total} trending papers ({report.papers_added} new to the "
        f"store, {report.scores_added} new scores, {report.scores_updated} updated)"
    )


@app.command()
@command_errors
def backfill(
    query: Annotated[str, typer.Argument(help="arXiv API search query.")],
    max_results: Annotated[int, typer.Option(min=1, max=2000)] = 50,
) -> None:
    """Search the arXiv API (one request per 3 s) and store the results.

    Example: digest backfill 'abs:"speech tokenizer"' --max-results 100
    """
    from workers import jobs

    settings = ready()
    # A spinner on stderr: the API allows one request per 3 s, so a large search takes a while.
    with errors.status(f"searching arXiv for up to {max_results} papers "
                       "(one request per 3 s)..."):
        report = jobs.backfill(settings=settings, query=query, max_results=max_results)
    console.print(
        f"{report.location}: {report.added} added, {report.updated} updated, "
        f"{report.unchanged} unchanged"
    )


@app.command()
@command_errors
def rank(
    keywords: Annotated[str, typer.Option(help="Comma-separated keywords and phrases.")],
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 20,
    since: Annotated[
        str | None,
        typer.Option(metavar="YYYY-MM-DD", help="Only papers announced on or after YYYY-MM-DD."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Rank stored papers for a keyword profile, best first, with what matched.

    Example: digest rank --keywords "speech tokenizer, audio codec" --limit 5 --json
    """
    from digest.analysis import Lexicon
    from digest.db import session_scope
    from digest.papers import papers_since
    from digest.ranking import PaperIndex, rank_keywords
    from digest.semantic import index_options
    from emails.render import matched_line
    from subscribers.service import InvalidInput, parse_keywords

    first_day = parse_day(since, "--since") if since else None
    settings = ready()
    profile = parse_keywords(keywords)
    if not profile:
        raise InvalidInput("give at least one keyword")
    with session_scope(settings.sqlalchemy_url) as session:
        papers = papers_since(session=session, since=first_day)
    titles = {paper.arxiv_id: paper.title for paper in papers}
    lexicon = Lexicon.shipped(settings.synonyms_file)
    meaning = index_options(settings.semantic, settings.sqlalchemy_url) if papers else {}
    index = PaperIndex(papers, lexicon=lexicon, **meaning) if papers else None
    matches = (rank_keywords(index, profile, limit=limit, floor=settings.relevance_floor)
               if index else [])
    rows = [
        {
            "arxiv_id": m.arxiv_id,
            "title": titles[m.arxiv_id],
            "score": round(m.score, 4),
            "matched": [k for k in m.matched if k not in m.close_to],
            "close_to": list(m.close_to),
        }
        for m in matches
    ]
    if as_json:
        emit_json(rows)
        return
    table = Table("score", "arXiv", "title", "why")
    for m in matches:
        by_words = [k for k in m.matched if k not in m.close_to]
        table.add_row(f"{m.score:.2f}", m.arxiv_id, titles[m.arxiv_id][:70],
                      matched_line(by_words, m.close_to))
    console.print(table if rows else "no paper matches these keywords")


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
    from digest.db import session_scope
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
    from digest.db import session_scope
    from subscribers.models import Status as StoredStatus
    from subscribers.service import list_subscribers

    settings = ready()
    wanted = StoredStatus(status.value) if status else None
    with session_scope(settings.sqlalchemy_url) as session:
        rows = [s.model_dump(mode="json") for s in list_subscribers(session=session, status=wanted)]
    if as_json:
        emit_json(rows)
        return
    table = Table("id", "email", "status", "frequency", "keywords")
    for row in rows:
        table.add_row(
            str(row["id"]),
            row["email"],
            row["status"],
            row["frequency"],
            ", ".join(row["keywords"]),
        )
    console.print(table)


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
    summary = {
        "day": target.isoformat(),
        "dry_run": dry_run,
        "due": plan.due,
        "planned": plan.planned,
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
    console.print(
        f"{target}: {plan.due} subscribers due, {verb} {len(plan.previews)} digests "
        f"({plan.already_planned} already planned, {plan.nothing_relevant} with nothing "
        f"relevant); sent {sent.sent}, retrying {sent.retried}, failed {sent.failed}, "
        f"skipped {sent.skipped}"
    )
    if sent.paused:
        errors.print(f"warning: {sent.paused}", highlight=False)


def _titles(settings: Settings, papers: dict[str, list[str]]) -> dict[str, str]:
    """The title of every paper some digest would carry."""
    from digest.db import session_scope
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

    from digest.db import session_scope
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
    from digest.db import session_scope
    from digest.papers import latest_announcement
    from subscribers.service import InvalidInput

    with session_scope(settings.sqlalchemy_url) as session:
        newest = latest_announcement(session=session)
    if newest is None:
        raise InvalidInput("no papers stored yet: run `digest ingest` first")
    return newest


@app.command()
@command_errors
def demo(
    serve: Annotated[bool, typer.Option(help="Then serve the web app on localhost:8000.")] = False,
) -> None:
    """Run the whole daily flow offline on the bundled corpus and three sample subscribers.

    Example: digest demo --serve   (then open var/outbox/index.html and http://localhost:8000)
    """
    from workers.demo import run_demo

    settings = ready()
    run_demo(settings, console)
    if serve:
        _serve(settings, "127.0.0.1", 8000, web_only=False)


@app.command()
@command_errors
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
    web_only: Annotated[
        bool,
        typer.Option(help="Only the web app: Celery workers and beat do the sending and planning."),
    ] = False,
    forwarded_allow_ips: Annotated[
        str | None,
        typer.Option(envvar="FORWARDED_ALLOW_IPS", show_default="127.0.0.1,::1",
                     help="Comma-separated addresses or networks of the reverse proxies whose "
                          "X-Forwarded-For and X-Forwarded-Proto to believe ('*': any). "
                          "Behind a proxy not listed here, every reader shares the proxy's "
                          "rate-limit bucket."),
    ] = None,
) -> None:
    """Serve the web app; on the embedded default it also sends and plans in the background.

    Example: digest serve --port 8000   |   digest serve --host 0.0.0.0 --web-only
    --forwarded-allow-ips 10.0.0.5
    """
    _serve(ready(), host, port, web_only=web_only, forwarded_allow_ips=forwarded_allow_ips)


def _serve(settings: Settings, host: str, port: int, *, web_only: bool,
           forwarded_allow_ips: str | None = None) -> None:
    from workers.serve import run_server

    console.print(
        f"serving on http://{'localhost' if host == '127.0.0.1' else host}:{port} "
        f"({'web only' if web_only else 'web + sender + planner'}); Ctrl-C stops"
    )
    run_server(settings, host=host, port=port, background=not web_only,
               forwarded_allow_ips=forwarded_allow_ips)


@app.command()
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

    from digest.db import session_scope
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


@app.command("retry-failed")
@command_errors
def retry_failed(
    dry_run: Annotated[bool, typer.Option(help="Count them, change nothing.")] = False,
) -> None:
    """Put permanently failed deliveries back in the queue (after fixing their cause).

    Example: digest retry-failed --dry-run
    """
    from digest.db import session_scope
    from subscribers import ledger

    settings = ready()
    with session_scope(settings.sqlalchemy_url) as session:
        count = ledger.requeue_failed(session=session, dry_run=dry_run)
    verb = "would be requeued" if dry_run else "requeued"
    console.print(f"{count} failed deliveries {verb}")


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
@command_errors
def worker(ctx: typer.Context) -> None:
    """Run a Celery worker (extra options go to `celery worker`).

    Example: digest worker -Q plan,send --concurrency 4
    """
    from workers.celery_app import app as celery
    from workers.celery_app import check_broker

    ready()
    check_broker(celery)
    # `start`, not `worker_main`: the latter drops the worker's exit status.
    raise typer.Exit(celery.start(["worker", "--loglevel=INFO", *ctx.args]) or 0)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
@command_errors
def beat(ctx: typer.Context) -> None:
    """Run Celery beat, the scheduler (one is enough; a second one is harmless).

    Example: digest beat
    """
    from workers.celery_app import app as celery
    from workers.celery_app import check_broker

    settings = ready()
    check_broker(celery)
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    schedule = str(settings.var_dir / "celerybeat-schedule")
    raise typer.Exit(
        celery.start(["beat", "--loglevel=INFO", f"--schedule={schedule}", *ctx.args]) or 0
    )
