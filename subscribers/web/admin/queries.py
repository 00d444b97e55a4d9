"""What the admin pages read: subscriber search, deliveries per day, recent provider events."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import func
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from subscribers.events import ProviderEventRecord, daily_stats
from subscribers.ledger import Delivery, DeliveryStatus
from subscribers.models import ConsentAction, ConsentEvent, Status, Subscriber
from subscribers.payloads import FEED_KIND

DAY_COLUMNS = ("sent", "failed", "bounced", "complained", "unsubscribed")
BOUNCES = ("bounce", "dropped")
UNSUBSCRIBES = ("unsubscribe", "group_unsubscribe")


def search_subscribers(*, session: Session, query: str = "", status: Status | None = None,
                       limit: int = 200) -> tuple[list[Subscriber], int]:
    """Subscribers whose address or a keyword contains `query` (case-insensitive), newest first.

    Keywords are a JSON list, stored escaped differently by each database, so they are matched
    here in Python; the list is read in id order without the JSON decoding cost being a problem
    at the sizes one admin page shows. Returns the first `limit` and the total that matched.
    """
    statement = select(Subscriber).order_by(col(Subscriber.id).desc())
    if status is not None:
        statement = statement.where(Subscriber.status == status)
    needle = query.strip().casefold()
    matched: list[Subscriber] = []
    total = 0
    for subscriber in session.exec(statement):
        if needle and needle not in subscriber.email.casefold() and not any(
                needle in keyword.casefold() for keyword in subscriber.keywords):
            continue
        total += 1
        if len(matched) < limit:
            matched.append(subscriber)
    return matched, total


def status_counts(*, session: Session) -> dict[str, int]:
    rows = session.execute(sa_select(col(Subscriber.status), func.count())
                           .group_by(col(Subscriber.status)))
    counts = {status.value: 0 for status in Status}
    for status, count in rows:
        counts[Status(status).value] = int(count)
    return counts


def _as_date(value: Any) -> date:
    """func.date() gives a date on PostgreSQL and 'YYYY-MM-DD' text on SQLite."""
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def _per_day(session: Session, day_column: Any, *conditions: Any) -> dict[date, int]:
    day = func.date(day_column)
    rows = session.execute(sa_select(day, func.count()).where(*conditions).group_by(day))
    return {_as_date(d): int(n) for d, n in rows if d is not None}


@dataclass(frozen=True)
class DayRow:
    day: date
    sent: int
    failed: int
    bounced: int
    complained: int
    unsubscribed: int


def deliveries_per_day(*, session: Session, days: int = 30,
                       today: date | None = None) -> list[DayRow]:
    """Newest day first: sent and failed from the ledger, the rest from provider events
    and the consent trail (an unsubscribe by link or by provider report both count)."""
    today = today or datetime.now(UTC).date()
    since = today - timedelta(days=days - 1)
    start = datetime.combine(since, datetime.min.time(), tzinfo=UTC)
    # Feed-only rows are recorded as sent but no email left: they are not counted.
    sent = _per_day(session, col(Delivery.sent_at), col(Delivery.sent_at) >= start,
                    Delivery.status == DeliveryStatus.sent, Delivery.kind != FEED_KIND)
    # A failed row has no failure time of its own: it counts on the day it was planned.
    failed = _per_day(session, col(Delivery.created_at), col(Delivery.created_at) >= start,
                      Delivery.status == DeliveryStatus.failed)
    left = _per_day(session, col(ConsentEvent.created_at), col(ConsentEvent.created_at) >= start,
                    ConsentEvent.action == ConsentAction.unsubscribe)
    events = daily_stats(session=session, since=since)
    rows = []
    for offset in range(days):
        day = today - timedelta(days=offset)
        counts = events.get(day, {})
        rows.append(DayRow(
            day=day, sent=sent.get(day, 0), failed=failed.get(day, 0),
            bounced=sum(counts.get(name, 0) for name in BOUNCES),
            complained=counts.get("spamreport", 0),
            unsubscribed=left.get(day, 0) + sum(counts.get(name, 0) for name in UNSUBSCRIBES)))
    return rows


def recent_events(*, session: Session, limit: int = 100) -> list[dict[str, Any]]:
    """The newest provider events with the address they were about (if still on file)."""
    statement = (
        sa_select(ProviderEventRecord, col(Subscriber.email))
        .join(Subscriber, col(ProviderEventRecord.subscriber_id) == col(Subscriber.id),
              isouter=True)
        .order_by(col(ProviderEventRecord.received_at).desc())
        .limit(limit)
    )
    return [{"event": record, "email": email or ""}
            for record, email in session.execute(statement)]
