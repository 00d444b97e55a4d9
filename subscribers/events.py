"""Provider events (SendGrid's Event Webhook) applied to subscribers, each exactly once.

SendGrid retries a batch until it gets a 2xx and may deliver events out of order, so every
effect is idempotent: events are recorded under their `sg_event_id`, suppression is terminal
(a late "delivered" never revives a bounced address), and statistics are counts of records.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

from sqlalchemy import func
from sqlalchemy import select as sa_select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Field, Session, SQLModel, col, select

from digest.db import is_postgres
from emails.events import Effect, ProviderEvent, classify
from subscribers.ledger import Delivery
from subscribers.models import Status, Subscriber, utcnow

SOFT_BOUNCES_BEFORE_SUPPRESSION = 3
# What a suppressing event does to the subscriber's status.
SUPPRESSED_AS = {
    "bounce": Status.bounced,
    "dropped": Status.bounced,
    "spamreport": Status.complained,
    "unsubscribe": Status.unsubscribed,
    "group_unsubscribe": Status.unsubscribed,
}


class ProviderEventRecord(SQLModel, table=True):
    """One provider event, kept once; no email address is stored, only who it was about."""

    __tablename__ = "provider_event"

    sg_event_id: str = Field(primary_key=True, max_length=120)
    event: str = Field(max_length=40)
    effect: str = Field(max_length=20)
    day: date = Field(index=True)
    occurred_at: datetime
    received_at: datetime = Field(default_factory=utcnow)
    delivery_id: int | None = Field(default=None, index=True)
    subscriber_id: int | None = Field(
        default=None, foreign_key="subscriber.id", index=True, ondelete="SET NULL"
    )
    reason: str | None = Field(default=None, max_length=500)


@dataclass
class EventReport:
    received: int = 0
    new: int = 0
    duplicates: int = 0
    suppressed: int = 0
    unmatched: int = 0


def _delivery_id(event: ProviderEvent) -> int | None:
    raw = event.delivery_id or ""
    return int(raw) if raw.isdigit() else None


def _subscriber_for(session: Session, event: ProviderEvent) -> Subscriber | None:
    """Through our delivery id when the provider echoes it, else by address."""
    delivery_id = _delivery_id(event)
    if delivery_id is not None:
        delivery = session.get(Delivery, delivery_id)
        if delivery is not None:
            return session.get(Subscriber, delivery.subscriber_id)
    email = event.email.strip().lower()
    return session.exec(select(Subscriber).where(Subscriber.email == email)).first()


def _suppress(session: Session, subscriber: Subscriber, status: Status) -> bool:
    if subscriber.status not in (Status.active, Status.pending):
        return False  # already out (or unsubscribed earlier): the first reason stands
    subscriber.status = status
    if status == Status.unsubscribed:
        subscriber.unsubscribed_at = utcnow()
    session.add(subscriber)
    return True


def _soft_bounces(session: Session, subscriber_id: int) -> int:
    query = select(func.count()).where(
        ProviderEventRecord.subscriber_id == subscriber_id,
        ProviderEventRecord.effect == Effect.SOFT_BOUNCE.value,
    )
    return int(session.exec(query).one())


def apply_events(*, session: Session, events: Sequence[ProviderEvent]) -> EventReport:
    """Record new events and apply their effects; repeats of known events change nothing."""
    report = EventReport(received=len(events))
    ids = [event.sg_event_id for event in events]
    known = set(session.exec(select(ProviderEventRecord.sg_event_id).where(
        col(ProviderEventRecord.sg_event_id).in_(ids))))
    insert = pg_insert if is_postgres(session) else sqlite_insert
    for event in events:
        if event.sg_event_id in known:
            report.duplicates += 1
            continue
        known.add(event.sg_event_id)
        subscriber = _subscriber_for(session, event)
        effect = classify(event)
        occurred = datetime.fromtimestamp(event.timestamp, UTC)
        row = {
            "sg_event_id": event.sg_event_id, "event": event.event, "effect": effect.value,
            "day": occurred.date(), "occurred_at": occurred, "received_at": utcnow(),
            "delivery_id": _delivery_id(event),
            "subscriber_id": subscriber.id if subscriber else None,
            "reason": (event.reason or "")[:500] or None,
        }
        # A concurrent delivery of the same batch may insert first: then this one is a repeat.
        inserted = session.execute(
            insert(ProviderEventRecord).values(row).on_conflict_do_nothing()
            .returning(col(ProviderEventRecord.sg_event_id))
        ).first()
        if inserted is None:
            report.duplicates += 1
            continue
        report.new += 1
        if subscriber is None:
            report.unmatched += 1
            continue
        if effect == Effect.SUPPRESS:
            status = SUPPRESSED_AS.get(event.event, Status.bounced)
            report.suppressed += _suppress(session, subscriber, status)
        elif effect == Effect.SOFT_BOUNCE and subscriber.id is not None:
            session.flush()
            if _soft_bounces(session, subscriber.id) >= SOFT_BOUNCES_BEFORE_SUPPRESSION:
                report.suppressed += _suppress(session, subscriber, Status.bounced)
    session.flush()
    return report


def daily_stats(*, session: Session, since: date) -> dict[date, dict[str, int]]:
    """Counts of events per day and type (delivered, open, click, bounce...)."""
    day_column, event_column = col(ProviderEventRecord.day), col(ProviderEventRecord.event)
    query = (
        sa_select(day_column, event_column, func.count())
        .where(day_column >= since)
        .group_by(day_column, event_column)
    )
    stats: dict[date, dict[str, int]] = defaultdict(dict)
    for day, event, count in session.execute(query):
        stats[day][event] = int(count)
    return dict(stats)
