"""Subscribers as CSV: export everything an operator may see, import with per-line errors.

An import adds each good row as an active subscriber with an `imported` consent record on
channel `admin` (the operator vouches for consent); a bad row is reported with its line
number and skipped, and never stops the rows after it.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass, field

from pydantic import ValidationError
from sqlmodel import Session

from subscribers.models import Frequency, Subscriber, SubscriberCreate
from subscribers.service import InvalidInput, add_subscriber, parse_keywords, validate_timezone

EXPORT_COLUMNS = ("email", "status", "keywords", "frequency", "monthly", "timezone",
                  "send_hour", "created_at", "confirmed_at", "unsubscribed_at")
REQUIRED = ("email", "keywords")
OPTIONAL = ("frequency", "monthly", "timezone", "send_hour")
MAX_ROWS = 5000
TRUE, FALSE = {"1", "true", "yes", "y"}, {"0", "false", "no", "n", ""}


def _cell(value: object) -> str:
    """A cell a spreadsheet will not run as a formula (CSV injection)."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def export_csv(subscribers: Iterable[Subscriber]) -> str:
    """One row per subscriber; keywords joined with '; '."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(EXPORT_COLUMNS)
    for s in subscribers:
        writer.writerow([_cell(v) for v in (
            s.email, s.status.value, "; ".join(s.keywords), s.frequency.value,
            "yes" if s.monthly else "no", s.timezone, s.send_hour,
            s.created_at.isoformat() if s.created_at else "",
            s.confirmed_at.isoformat() if s.confirmed_at else "",
            s.unsubscribed_at.isoformat() if s.unsubscribed_at else "")])
    return out.getvalue()


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
    monthly = (row.get("monthly") or "yes").strip().lower()
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


def import_csv(*, session: Session, text: str) -> ImportReport:
    """Add the good rows (each in its own savepoint), report the bad ones by line."""
    report = ImportReport()
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    header = [name.strip().lower() for name in (reader.fieldnames or [])]
    missing = [name for name in REQUIRED if name not in header]
    if missing:
        report.errors.append((1, f"the header needs columns {', '.join(REQUIRED)} "
                                 f"(missing {', '.join(missing)}); optional: "
                                 f"{', '.join(OPTIONAL)}"))
        return report
    reader.fieldnames = header
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
            with session.begin_nested():
                added = add_subscriber(session=session, subscriber_create=create,
                                       confirmed=True, channel="admin")
        except InvalidInput as error:
            report.errors.append((line, str(error)))
            continue
        report.added.append(added.email)
    return report
