"""Import clips from a browser bookmarks export, a CSV file or a plain list of urls.

The format is sniffed from the content (and the file name). Each row is saved in its own
savepoint: a bad row is reported with its line number and skipped, and nothing else is lost.
"""

from __future__ import annotations

import csv
import io
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html.parser import HTMLParser

from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlmodel import Session

from core.db import database_reason, is_postgres
from digest.clippings.models import Clip
from digest.clippings.store import add_clip, check_month

MAX_ROWS = 20_000
# Pause after each committed batch on SQLite, longer than its busy handler's longest sleep.
SQLITE_WRITER_GAP = 0.15


@dataclass
class Row:
    """One link to import, with the line it came from."""

    line: int
    url: str
    title: str = ""
    note: str = ""
    tags: list[str] = field(default_factory=list)
    highlight: bool = False
    saved_at: datetime | None = None
    month: str = ""  # a CSV's month column
    section: str = ""  # a CSV's section column: the editor's choice, kept as an override
    error: str = ""  # set when the row could not even be read


@dataclass
class ImportReport:
    """What an import did: clips added, merged into existing ones, and the rows skipped."""

    format: str
    added: int = 0
    merged: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)  # (line, reason)
    clips: list[Clip] = field(default_factory=list)  # every clip touched, in file order
    lost: int = 0  # readable rows the database refused (also in errors): the import failed
    committed: int = 0  # rows made permanent so far (added or merged), when it commits as
    committed_line: int = 0  # it goes; and the file's line the last commit reached

    @property
    def total(self) -> int:
        return self.added + self.merged


class ImportStopped(Exception):
    """The database stopped an import part-way (locked past the busy timeout, connection
    lost, a commit refused); `report.committed` says how many rows were saved before it."""

    def __init__(self, report: ImportReport, error: SQLAlchemyError) -> None:
        self.report = report
        self.reason = database_reason(error)
        super().__init__(self.reason)


class _BookmarkParser(HTMLParser):
    """Netscape bookmark HTML: <DT><A HREF ADD_DATE TAGS>title</A> then an optional <DD>note."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: list[Row] = []
        self._in_anchor = False
        self._in_note = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name.lower(): value or "" for name, value in attrs}
        self._in_note = False
        if tag == "a":
            line = self.getpos()[0]
            href = values.get("href", "").strip()
            row = Row(line=line, url=href)
            if not href:
                row.error = "bookmark without an HREF"
            row.tags = [t.strip() for t in values.get("tags", "").split(",") if t.strip()]
            added = values.get("add_date", "").strip()
            if added:
                try:
                    seconds = int(added)
                    # Some exports write microseconds (Chrome's internal clock), not seconds.
                    while seconds > 10**11:
                        seconds //= 1000
                    row.saved_at = datetime.fromtimestamp(seconds, UTC)
                except (ValueError, OverflowError, OSError):
                    row.saved_at = None  # an unreadable date is not worth losing the link
            self.rows.append(row)
            self._in_anchor = True
        elif tag == "dd" and self.rows:
            self._in_note = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "a":
            self._in_anchor = False
        elif tag in ("dl", "dd"):
            self._in_note = False

    def handle_data(self, data: str) -> None:
        if self._in_anchor and self.rows:
            self.rows[-1].title += data
        elif self._in_note and self.rows:
            self.rows[-1].note += data


def sniff_format(text: str, filename: str = "") -> str:
    """'bookmarks', 'csv' or 'urls', from the content first, then the file name."""
    head = text[:4096].lstrip("\ufeff").lstrip()
    lowered = head.lower()
    if "netscape-bookmark-file" in lowered or re.search(r"<dt>\s*<a\s", lowered):
        return "bookmarks"
    first = head.splitlines()[0] if head else ""
    if filename.lower().endswith(".csv") or re.match(r'^"?url"?\s*[,;\t]', first, re.I) or (
        "," in first and re.search(r'(^|,)\s*"?url"?\s*(,|$)', first, re.I)
    ):
        return "csv"
    if filename.lower().endswith((".html", ".htm")):
        return "bookmarks"
    return "urls"


def parse_bookmarks(text: str) -> list[Row]:
    """Rows of a Netscape bookmark file (Firefox, Chrome, Safari, Edge exports); folders ignored."""
    parser = _BookmarkParser()
    parser.feed(text)
    parser.close()
    for row in parser.rows:
        row.title = " ".join(row.title.split())
        row.note = " ".join(row.note.split())
    return parser.rows


def _truthy(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "y", "x", "highlight")


def parse_csv(text: str) -> list[Row]:
    """Rows of a CSV with a header naming a url column (title, note, tags, highlight, month,
    section optional)."""
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(text[:4096], ",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")), dialect)
    header = next(reader, None)
    if header is None:
        return []
    columns = {name.strip().lower(): number for number, name in enumerate(header)}
    if "url" not in columns:
        return [Row(line=1, url="", error="the CSV header has no 'url' column")]
    rows: list[Row] = []

    def cell(record: list[str], name: str) -> str:
        number = columns.get(name)
        return record[number].strip() if number is not None and number < len(record) else ""

    line = reader.line_num
    for record in reader:
        start, line = line + 1, reader.line_num
        if not any(part.strip() for part in record):
            continue
        row = Row(
            line=start,
            url=cell(record, "url"),
            title=cell(record, "title"),
            note=cell(record, "note") or cell(record, "notes"),
            tags=[t.strip() for t in re.split(r"[,;|]", cell(record, "tags")) if t.strip()],
            highlight=_truthy(cell(record, "highlight")) or cell(record, "kind") == "highlight",
            month=cell(record, "month"),
            section=cell(record, "section")[:80],
        )
        if len(record) > len(header):
            row.error = f"{len(record)} fields, the header has {len(header)}"
        rows.append(row)
    return rows


def parse_url_list(text: str) -> list[Row]:
    """One url per line, optionally followed by a title; blank lines and # comments skipped."""
    rows = []
    for number, raw in enumerate(text.lstrip("\ufeff").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        url, _, title = line.partition(" ")
        rows.append(Row(line=number, url=url, title=title.strip()))
    return rows


def _rows(text: str, kind: str) -> Iterator[Row]:
    parse = {"bookmarks": parse_bookmarks, "csv": parse_csv, "urls": parse_url_list}[kind]
    yield from parse(text)


def import_clips(
    *,
    session: Session,
    text: str,
    filename: str = "",
    source: str = "import",
    month: str | None = None,
    commit_every: int | None = None,
) -> ImportReport:
    """Save every readable row as a clip; bad rows are reported by line and skipped.

    Without a month, a bookmark goes to the month it was saved in (ADD_DATE), else this month.
    With `commit_every`, the session commits after that many rows: on SQLite a long import
    then holds the write lock for moments at a time, not for the whole file, so the web app's
    saves wait a little instead of past their busy timeout. A failure that stops the import
    raises ImportStopped with the rows saved so far; importing the file again adds the rest
    and merges, without doubling, the ones already saved. Committing (and, when stopped,
    rolling back) is done on the caller's session: its other work goes with it, and the
    report's clips stay readable only because core.db's sessions do not expire on commit.
    """
    if month is not None:
        month = check_month(month)
    kind = sniff_format(text, filename)
    report = ImportReport(format=kind)
    try:
        _import_rows(session, _rows(text, kind), report, month, source, commit_every)
    except SQLAlchemyError as error:  # a row's own refusal is caught below: this is the import
        session.rollback()
        raise ImportStopped(report, error) from error
    return report


def _import_rows(
    session: Session,
    rows: Iterator[Row],
    report: ImportReport,
    month: str | None,
    source: str,
    commit_every: int | None,
) -> None:
    for count, row in enumerate(rows):
        if count >= MAX_ROWS:
            report.errors.append((row.line, f"more than {MAX_ROWS} rows; the rest skipped"))
            break
        if row.error:
            report.errors.append((row.line, row.error))
            continue
        row_month = month or row.month or (
            row.saved_at.strftime("%Y-%m") if row.saved_at else None
        )
        savepoint = session.begin_nested()
        try:
            result = add_clip(
                session=session, url=row.url, note=row.note, tags=row.tags or None,
                highlight=row.highlight, source=source, month=row_month,
                title=row.title or None, saved_at=row.saved_at,
            )
            if row.section and result.clip.section is None:
                result.clip.section = row.section
                session.add(result.clip)
            savepoint.commit()
        except ValueError as error:
            savepoint.rollback()
            report.errors.append((row.line, str(error)))
            continue
        except OperationalError:
            raise  # locked past the busy timeout, connection gone: not this row, the import
        except SQLAlchemyError as error:
            savepoint.rollback()
            reason = database_reason(error)
            report.errors.append((row.line, f"database error: {reason[:200]}"))
            report.lost += 1
            continue
        if result.created:
            report.added += 1
        else:
            report.merged += 1
        if all(clip is not result.clip for clip in report.clips):
            report.clips.append(result.clip)
        if commit_every and report.total - report.committed >= commit_every:
            session.commit()
            report.committed, report.committed_line = report.total, row.line
            if not is_postgres(session):
                # SQLite's lock is not fair: a writer waiting on it (the server saving a
                # clip) retries on a timer, up to 100 ms apart, and the next batch would take
                # the lock back at once, for the whole import. This gap lets it in.
                time.sleep(SQLITE_WRITER_GAP)
    if commit_every:
        session.commit()
        report.committed = report.total
