"""Subscribers as CSV: export everything an operator may see, import with per-line errors.

An import adds each good row as an active subscriber with an `imported` consent record on
channel `admin` (the operator vouches for consent); a bad row is reported with its line
number and skipped, and never stops the rows around it.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass, field

from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from subscribers.models import Frequency, Subscriber, SubscriberCreate, Suppression, email_hash
from subscribers.service import (
    InvalidInput,
    add_subscriber,
    is_suppressed,
    normalize_email,
    parse_keywords,
    validate_timezone,
)
from subscribers.spreadsheets import csv_text

EXPORT_COLUMNS = ("email", "status", "keywords", "frequency", "monthly", "timezone",
                  "send_hour", "created_at", "confirmed_at", "unsubscribed_at")
REQUIRED = ("email", "keywords")
OPTIONAL = ("frequency", "monthly", "timezone", "send_hour")
MAX_ROWS = 5000
TRUE, FALSE = {"1", "true", "yes", "y"}, {"0", "false", "no", "n", ""}


def export_csv(subscribers: Iterable[Subscriber]) -> str:
    """One row per subscriber; keywords joined with '; '."""
    return csv_text(EXPORT_COLUMNS, (
        (s.email, s.status.value, "; ".join(s.keywords), s.frequency.value,
         "yes" if s.monthly else "no", s.timezone, s.send_hour,
         s.created_at.isoformat() if s.created_at else "",
         s.confirmed_at.isoformat() if s.confirmed_at else "",
         s.unsubscribed_at.isoformat() if s.unsubscribed_at else "")
        for s in subscribers
    ))


@dataclass
class ImportReport:
    added: list[str] = field(default_factory=list)
    errors: list[tuple[int, str]] = field(default_factory=list)  # (line number, why)


def _create(row: dict[str, str]) -> SubscriberCreate:
    """A row as a SubscriberCreate; InvalidInput says what is wrong with it."""
    keywords = parse_keywords(row.get("keywords", "") or "")
    if not keywords:
        raise InvalidInput("no keywords")
    frequency = (row.get("frequency") or "daily").strip().lower()
    if frequency not in {f.value for f in Frequency}:
        raise InvalidInput(f"frequency must be daily or weekly, got {frequency!r}")
    # Consent to the monthly issue is never assumed: an empty or missing column means no.
    monthly = (row.get("monthly") or "no").strip().lower()
    if monthly not in TRUE | FALSE:
        raise InvalidInput(f"monthly must be yes or no, got {monthly!r}")
    hour = (row.get("send_hour") or "7").strip()
    if not hour.isdigit() or not 0 <= int(hour) <= 23:
        raise InvalidInput(f"send_hour must be 0 to 23, got {hour!r}")
    zone = validate_timezone((row.get("timezone") or "UTC").strip())
    try:
        return SubscriberCreate(email=(row.get("email") or "").strip(), keywords=keywords,
                                frequency=Frequency(frequency), monthly=monthly in TRUE,
                                timezone=zone, send_hour=int(hour))
    except ValidationError as error:
        raise InvalidInput(error.errors()[0]["msg"]) from None


def _parse(text: str, report: ImportReport) -> list[tuple[int, SubscriberCreate]]:
    """The rows that are valid on their own, with their line numbers; the rest reported."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    header = [name.strip().lower() for name in (reader.fieldnames or [])]
    missing = [name for name in REQUIRED if name not in header]
    if missing:
        report.errors.append((1, f"the header needs columns {', '.join(REQUIRED)} "
                                 f"(missing {', '.join(missing)}); optional: "
                                 f"{', '.join(OPTIONAL)}"))
        return []
    reader.fieldnames = header
    rows: list[tuple[int, SubscriberCreate]] = []
    first_line: dict[str, int] = {}
    for count, raw in enumerate(reader, start=1):
        line = reader.line_num
        if count > MAX_ROWS:
            report.errors.append((line, f"only the first {MAX_ROWS} rows are read per import"))
            break
        row = {k: (v or "") for k, v in raw.items() if isinstance(k, str) and isinstance(v, str)}
        if None in raw:
            report.errors.append((line, "more cells than header columns"))
            continue
        if not any(value.strip() for value in row.values()):
            continue
        try:
            create = _create(row)
            email = normalize_email(create.email)
        except InvalidInput as error:
            report.errors.append((line, str(error)))
            continue
        if email in first_line:
            report.errors.append((line, f"{email} is already on line {first_line[email]}"))
            continue
        first_line[email] = line
        rows.append((line, create.model_copy(update={"email": email})))
    return rows


def _known(session: Session, emails: list[str]) -> set[str]:
    """Which of these addresses are on the list or were erased (one query per 500)."""
    known: set[str] = set()
    for start in range(0, len(emails), 500):
        chunk = emails[start:start + 500]
        known |= set(session.exec(select(Subscriber.email).where(
            col(Subscriber.email).in_(chunk))))
        hashes = {email_hash(email): email for email in chunk}
        erased = session.exec(select(Suppression.email_hash).where(
            col(Suppression.email_hash).in_(list(hashes))))
        known |= {hashes[h] for h in erased}
    return known


def _add_each(session: Session, rows: list[tuple[int, SubscriberCreate]],
              report: ImportReport) -> None:
    """One savepoint per row: the slow path, for when a row fails inside the database."""
    for line, create in rows:
        try:
            with session.begin_nested():
                added = add_subscriber(session=session, subscriber_create=create,
                                       confirmed=True, channel="admin")
        except (InvalidInput, IntegrityError) as error:
            message = str(error) if isinstance(error, InvalidInput) else "already on the list"
            report.errors.append((line, message))
            continue
        report.added.append(added.email)


def import_csv(*, session: Session, text: str) -> ImportReport:
    """Add the good rows, report the bad ones by line.

    Rows are checked first (format, duplicates in the file, addresses already on the list or
    erased, in bulk), then added in one savepoint; only if that fails in the database (a
    signup racing the import) are they retried one savepoint each, which is slower but
    finds the row that failed.
    """
    report = ImportReport()
    rows = _parse(text, report)
    known = _known(session, [create.email for _, create in rows])
    fresh = []
    for line, create in rows:
        if create.email not in known:
            fresh.append((line, create))
            continue
        why = (f"{create.email} is already on the list" if not is_suppressed(
            session=session, email=create.email) else f"{create.email} asked to be erased; "
            "only they can sign up again, on the web page")
        report.errors.append((line, why))
    try:
        with session.begin_nested():
            added = [add_subscriber(session=session, subscriber_create=create, confirmed=True,
                                    channel="admin").email for _, create in fresh]
    except (InvalidInput, IntegrityError):
        _add_each(session, fresh, report)
    else:
        report.added.extend(added)
    report.errors.sort()
    return report
