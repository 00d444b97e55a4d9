"""The `digest` command: what an operator (or `make demo`) runs.

Every command migrates the database first, prints one clear line on bad input and exits
non-zero, never a traceback. Commands import what they need when they run: importing the
database, ranking and email layers up front cost every command (and `--help`) seconds.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from workers.cli_admin import admin_app
from workers.cli_clips import clip_app
from workers.cli_monthly import app as monthly_app
from workers.cli_send import deliveries, retry_failed, send_app
from workers.cli_subscribers import subscribers_app
from workers.cli_support import command_errors, emit_json, parse_day, ready

if TYPE_CHECKING:
    from core.settings import Settings

app = typer.Typer(
    help="Personalised arXiv paper digests by email.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
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
    elif report.seen == 0 and not report.revised:
        console.print(
            f"{report.location}: valid {report.kind} feed with no new papers; nothing changed"
        )
    else:
        skipped = ", ".join(f"{n} {why}" for why, n in report.skipped.items()) or "none"
        console.print(
            f"{report.location}: {report.added} added, {report.updated} updated, "
            f"{report.unchanged} unchanged (skipped: {skipped})"
            + (f"; new versions of {report.revised} stored papers" if report.revised else "")
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
    from core.db import session_scope
    from digest.analysis import Lexicon
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


app.command()(deliveries)
app.command("retry-failed")(retry_failed)


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
