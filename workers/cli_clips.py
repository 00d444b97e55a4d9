"""`digest clip ...`: the editor saves, imports, lists and re-sorts the month's links.

The clippings and database modules are imported inside the commands: `digest --help` and
every other command must not pay for them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from workers.cli_support import command_errors, emit_json, parse_month, progress_bar, ready

if TYPE_CHECKING:
    from core.settings import Settings
    from digest.clippings.enrich import EnrichReport
    from digest.clippings.imports import ImportReport
    from digest.clippings.models import Clip
    from digest.clippings.sorting import Suggestion

clip_app = typer.Typer(help="The editor's clippings: links saved through the month.",
                       no_args_is_help=True)
console = Console()
F = TypeVar("F", bound=Callable[..., Any])
MAX_FILE = 20 * 1024 * 1024
# An import commits every IMPORT_BATCH links, so a server saving clips beside it on SQLite
# waits for one batch, not for the whole file.
IMPORT_BATCH = 200


def clip_with_reasons(clip: Clip, suggestion: Suggestion | None = None) -> dict[str, Any]:
    """A clip as JSON, with why it was sorted where it was when the suggestion is at hand."""
    from digest.clippings.store import clip_json

    data = clip_json(clip)
    if suggestion is not None:
        data["why"] = {
            "section_scores": suggestion.section_scores,
            "section_keywords": list(suggestion.section_reasons),
            "highlight": suggestion.highlight_reasons,
        }
    return data


def _print_clip(clip: Clip, created: bool, report: EnrichReport | None) -> None:
    verb = "saved" if created else "merged into"
    console.print(f"{verb} clip {clip.id} ({clip.kind.value}, {clip.month}): "
                  f"{escape(clip.title or clip.url)}")
    override = " (editor's)" if clip.section is not None else ""
    console.print(f"  section: {escape(clip.effective_section)}{override}; "
                  f"tags: {escape(', '.join(clip.effective_tags) or '-')}")
    if clip.links:
        console.print("  links: " + escape(", ".join(f"{k} {v}" for k, v in clip.links.items())))
    if report and clip.id in report.errors:
        console.print(f"  autofill failed: {escape(report.errors[clip.id])}")


@clip_app.command("add")
@command_errors
def add(
    url: Annotated[str, typer.Argument(help="The link: arXiv, OpenReview, GitHub, HF, any page.")],
    note: Annotated[str, typer.Option(help="Your note about it.")] = "",
    tags: Annotated[str, typer.Option(help="Comma-separated tags (your override).")] = "",
    highlight: Annotated[bool, typer.Option(help="Mark it as one of the highlights.")] = False,
    month: Annotated[str | None, typer.Option(metavar="YYYY-MM",
                                              help="Issue month YYYY-MM (default: now).")] = None,
    fetch: Annotated[bool, typer.Option(help="Fetch titles and abstracts (--no-fetch: offline).")]
    = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the clip as JSON.")] = False,
) -> None:
    """Save a link to this month's clippings, autofilled and sorted.

    Example: digest clip add https://arxiv.org/pdf/2604.01234v2 --note "strong baseline" --tags TTS
    """
    from core.db import session_scope
    from digest.clippings.store import add_clip, enrich_clips

    if month is not None:
        parse_month(month)
    settings = ready()
    with session_scope(settings.sqlalchemy_url) as session:
        result = add_clip(session=session, url=url, note=note, tags=tags or None,
                          highlight=highlight, month=month, source="cli")
    clip = result.clip
    # Fetched after the clip is committed: a writer waiting on the network would hold up
    # the server's writes on SQLite.
    with session_scope(settings.sqlalchemy_url) as session:
        session.add(clip)
        report = enrich_clips(session=session, settings=settings, clips=[clip], fetch=fetch)
        if as_json:
            emit_json({"created": result.created, "clip": clip_with_reasons(
                clip, report.suggestions.get(clip.id or -1))})
        else:
            _print_clip(clip, result.created, report)


@clip_app.command("import")
@command_errors
def import_file(
    file: Annotated[Path, typer.Argument(help="Bookmarks HTML export, CSV with a url column, "
                                         "or one url per line.")],
    month: Annotated[str | None, typer.Option(
        metavar="YYYY-MM",
        help="Put every link in this month YYYY-MM (default: each bookmark's own month).")] = None,
    fetch: Annotated[bool, typer.Option(help="Fetch titles and abstracts (--no-fetch: offline).")]
    = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Import links from a browser bookmarks export, a CSV file or a list of urls.

    Example: digest clip import ~/bookmarks.html --month 2026-04
    """
    if month is not None:
        parse_month(month)
    text = _read_import_file(file)
    settings = ready()
    report = _save_imported_links(settings, text, file.name, month)
    # Titles are fetched after the import is committed: a writer waiting on the network
    # would hold up the server's writes on SQLite.
    enriched = _autofill_imported(settings, report, fetch)
    _print_import(file, report, enriched, as_json)
    if report.lost:  # a bad line is the file's problem; a refused row is a failed import
        typer.echo(f"error: {report.lost} links lost to database errors (lines listed above); "
                   "import the file again to add them", err=True)
        raise typer.Exit(1)


def _read_import_file(file: Path) -> str:
    """The file's text (a BOM dropped, undecodable bytes replaced); a file that cannot be
    read, or is over MAX_FILE, is a ValueError naming it."""
    try:
        if file.stat().st_size > MAX_FILE:
            raise ValueError(f"{file}: larger than {MAX_FILE // 2**20} MB")
        return file.read_bytes().decode("utf-8-sig", errors="replace")
    except FileNotFoundError:
        raise ValueError(f"{file}: no such file") from None
    except IsADirectoryError:
        raise ValueError(f"{file}: is a directory, not a file") from None
    except OSError as error:
        raise ValueError(f"{file}: {error.strerror or error}") from None


def _save_imported_links(
    settings: Settings, text: str, filename: str, month: str | None
) -> ImportReport:
    """Save the file's links, committed every IMPORT_BATCH; when the database stops the
    import, say how much was saved and exit 1."""
    from core.db import session_scope
    from digest.clippings.imports import ImportStopped, import_clips

    try:
        with session_scope(settings.sqlalchemy_url) as session:
            return import_clips(session=session, text=text, filename=filename, month=month,
                                commit_every=IMPORT_BATCH)
    except ImportStopped as stopped:  # e.g. another writer held the database past the timeout
        report = stopped.report
        typer.echo(f"database error: {stopped.reason}; " + (
            f"{report.committed} links up to line {report.committed_line} were saved: import "
            "the file again to add the rest (links already saved are merged, not doubled)"
            if report.committed else "nothing was saved"), err=True)
        raise typer.Exit(1) from None


def _autofill_imported(settings: Settings, report: ImportReport, fetch: bool) -> EnrichReport:
    """Fill in and sort the imported clips, with a progress bar; the links are saved already,
    so a database error here says so and exits 1."""
    from sqlalchemy.exc import SQLAlchemyError

    from core.db import database_reason, session_scope
    from digest.clippings.store import enrich_clips

    try:
        with session_scope(settings.sqlalchemy_url) as session, progress_bar(
            "autofilling" if fetch else "filling in offline", len(report.clips)
        ) as advance:
            for clip in report.clips:
                session.add(clip)
            return enrich_clips(session=session, settings=settings, clips=report.clips,
                                fetch=fetch, progress=advance)
    except SQLAlchemyError as error:
        typer.echo(f"database error: {database_reason(error)}; the {report.total} links are "
                   "saved but not filled in: import the file again to fill them in", err=True)
        raise typer.Exit(1) from None


def _print_import(file: Path, report: ImportReport, enriched: EnrichReport,
                  as_json: bool) -> None:
    """What the import added, merged and skipped, and which clips autofill failed for."""
    failed = sorted(enriched.errors.items())
    if as_json:
        emit_json({"format": report.format, "added": report.added, "merged": report.merged,
                   "lost": report.lost,
                   "errors": [{"line": line, "reason": why} for line, why in report.errors],
                   "autofill_failed": [{"id": i, "reason": why} for i, why in failed],
                   "clips": [clip.id for clip in report.clips]})
        return
    console.print(f"{escape(str(file))} ({report.format}): {report.added} added, "
                  f"{report.merged} merged, {len(report.errors)} skipped")
    for line, why in report.errors:
        console.print(f"  line {line}: {escape(why)}")
    if failed:
        console.print(f"autofill failed for {len(failed)} (the url stands in for the title):")
        for clip_id, why in failed:
            console.print(f"  clip {clip_id}: {escape(why)}")


@clip_app.command("list")
@command_errors
def list_command(
    month: Annotated[str | None, typer.Option(metavar="YYYY-MM",
                                              help="Issue month YYYY-MM (default: now).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """A month's clips by section, with suggestions beside your overrides.

    Example: digest clip list --month 2026-04 --json
    """
    from core.db import session_scope
    from digest.clippings.store import clip_json, current_month, list_clips

    if month is not None:
        parse_month(month)
    settings = ready()
    with session_scope(settings.sqlalchemy_url) as session:
        clips = list_clips(session=session, month=month or current_month())
    if as_json:
        emit_json([clip_json(clip) for clip in clips])
        return
    table = Table("id", "section (suggested)", "kind", "title", "tags (suggested)", "hl")
    for clip in clips:
        section = escape(clip.effective_section or "-")
        if clip.topic:
            section += f" / {escape(clip.topic)}"  # the group within "Also worth a look"
        if clip.section is not None and clip.section != clip.suggested_section:
            section += f" ({escape(clip.suggested_section or '-')})"
        tags = escape(", ".join(clip.effective_tags) or "-")
        if clip.tags is not None and clip.tags != clip.suggested_tags:
            tags += f" ({escape(', '.join(clip.suggested_tags) or '-')})"
        table.add_row(str(clip.id), section, clip.kind.value, escape(clip.title[:70] or clip.url),
                      tags, "*" if clip.suggested_highlight else "")
    console.print(table)
    console.print(f"{len(clips)} clips in {month or current_month()}")


@clip_app.command("suggest")
@command_errors
def suggest_command(
    month: Annotated[str, typer.Option(metavar="YYYY-MM", help="Issue month YYYY-MM.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Re-run section, tag and highlight suggestions for a month (your overrides stay).

    Example: digest clip suggest --month 2026-04
    """
    from core.db import session_scope
    from digest.clippings.enrich import suggest_month
    from digest.clippings.store import list_clips

    month = parse_month(month)
    settings = ready()
    with session_scope(settings.sqlalchemy_url) as session:
        suggestions = suggest_month(session=session, settings=settings, month=month)
        clips = list_clips(session=session, month=month)
    if as_json:
        emit_json([clip_with_reasons(clip, suggestions.get(clip.id or -1)) for clip in clips])
        return
    for clip in clips:
        suggestion = suggestions.get(clip.id or -1)
        why = ", ".join(suggestion.section_reasons[:4]) if suggestion else ""
        console.print(f"{clip.id}: {escape(clip.suggested_section)} [{escape(why)}] "
                      f"tags {escape(', '.join(clip.suggested_tags) or '-')}"
                      f"{' highlight?' if clip.suggested_highlight else ''}"
                      f" - {escape(clip.title[:60])}")
    console.print(f"{len(clips)} clips re-sorted in {month}")
