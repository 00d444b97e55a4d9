"""The subscribers as `digest subscribers list` shows them, read with plain SQL.

Listing who gets mail is a read of one table: it goes through core.db.read_connection (the
driver's own connection) instead of SQLModel, whose import with SQLAlchemy and the table models
cost the listing most of a second. Each row is what `Subscriber.model_dump(mode="json")` gives
for it, keys in the model's field order; tests/test_subscriber_listing.py holds the two equal on
SQLite and PostgreSQL, and fails when the model gains a field that COLUMNS does not list.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

from core.db import ReadConnection

# subscribers.models.Subscriber's fields, in its field order (the JSON's key order).
COLUMNS = ("email", "keywords", "frequency", "monthly", "timezone", "send_hour",
           "trending_only", "id", "status", "paused_until", "created_at", "confirmed_at",
           "unsubscribed_at", "links_valid_from", "digest", "feed_generation")
_FLAGS = frozenset({"monthly", "trending_only", "digest"})
_MOMENTS = frozenset({"created_at", "confirmed_at", "unsubscribed_at", "links_valid_from"})
_DAYS = frozenset({"paused_until"})
_LISTS = frozenset({"keywords"})


def subscriber_rows(connection: ReadConnection, status: str | None = None) -> list[dict[str, Any]]:
    """All subscribers, oldest first (by id), optionally of one status, as JSON-ready dicts."""
    sql = "SELECT " + ", ".join(f'"{name}"' for name in COLUMNS) + " FROM subscriber"
    parameters: tuple[str, ...] = ()
    if status is not None:
        sql += f" WHERE status = {connection.placeholder}"
        parameters = (status,)
    sql += " ORDER BY id"
    return [_as_json(dict(zip(COLUMNS, row, strict=True)))
            for row in connection.rows(sql, parameters)]


def _as_json(row: dict[str, Any]) -> dict[str, Any]:
    """A row's values as the model's JSON dump writes them: flags as booleans (SQLite stores
    0/1), keywords as a list (SQLite stores JSON text), moments in UTC ending in Z, days as
    YYYY-MM-DD, enums as their values (stored as such)."""
    for name, value in row.items():
        if value is None:
            continue
        if name in _FLAGS:
            row[name] = bool(value)
        elif name in _LISTS and isinstance(value, str | bytes):
            row[name] = json.loads(value)
        elif name in _MOMENTS:
            row[name] = _utc_text(value)
        elif name in _DAYS:
            row[name] = (value if isinstance(value, date) else date.fromisoformat(value)
                         ).isoformat()
    return row


def _utc_text(value: datetime | str) -> str:
    """sqlmodel's UTCDateTime (naive means UTC), then pydantic's JSON form of a UTC moment."""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    moment = moment.replace(tzinfo=UTC) if moment.utcoffset() is None else moment.astimezone(UTC)
    return moment.isoformat().removesuffix("+00:00") + "Z"
