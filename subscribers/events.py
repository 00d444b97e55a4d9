"""Provider events (SendGrid's Event Webhook) applied to subscribers, each exactly once.

SendGrid retries a batch until it gets a 2xx and may deliver events out of order, so every
effect is idempotent: events are recorded under their `sg_event_id`, suppression is terminal
(a late "delivered" never revives a bounced address), and statistics are counts of records.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, TypeVar

from sqlalchemy import func
from sqlalchemy import select as sa_select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Field, Session, SQLModel, col, select

from core.db import is_postgres
from emails.events import Effect, ProviderEvent, classify
from subscribers.ledger import Delivery
from subscribers.models import Status, Subscriber, utcnow

T = TypeVar("T")
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
    rejected: int = 0  # recorded but not applied (unreadable, impossible timestamp)


MAX_DB_INT = 2**31 - 1  # delivery ids are 32-bit integer columns
REJECTED = "rejected"  # the effect recorded for an event that cannot be applied
CHUNK = 500  # rows per IN list or multi-row INSERT (well under every bind-parameter limit)


def _delivery_id(event: ProviderEvent) -> int | None:
    raw = event.delivery_id or ""
    # isascii: "²".isdigit() is true too; and a number past the column would fail the batch.
    if raw.isascii() and raw.isdigit() and int(raw) <= MAX_DB_INT:
        return int(raw)
    return None


def _chunks(values: Sequence[T]) -> Iterator[Sequence[T]]:
    for start in range(0, len(values), CHUNK):
        yield values[start:start + CHUNK]


def _subscribers_for(session: Session, events: Sequence[ProviderEvent]
                     ) -> dict[str, Subscriber]:
    """sg_event_id -> subscriber: through our delivery id when the provider echoes it, else
    by address; a few queries for the whole batch, not two per event."""
    delivery_ids = sorted({d for e in events if (d := _delivery_id(e)) is not None})
    owner: dict[int, int] = {}
    for chunk in _chunks(delivery_ids):
        query = sa_select(col(Delivery.id), col(Delivery.subscriber_id)).where(
            col(Delivery.id).in_(chunk))
        owner.update({delivery_id: subscriber_id
                      for delivery_id, subscriber_id in session.execute(query)})
    wanted = sorted(set(owner.values()))
    by_id = {s.id: s for chunk in _chunks(wanted)
             for s in session.exec(select(Subscriber).where(col(Subscriber.id).in_(chunk)))}
    emails = sorted({e.email.strip().lower() for e in events
                     if owner.get(_delivery_id(e) or 0) not in by_id})
    by_email = {s.email: s for chunk in _chunks(emails)
                for s in session.exec(select(Subscriber).where(col(Subscriber.email).in_(chunk)))}
    found: dict[str, Subscriber] = {}
    for event in events:
        subscriber = by_id.get(owner.get(_delivery_id(event) or 0, 0))
        subscriber = subscriber or by_email.get(event.email.strip().lower())
        if subscriber is not None:
            found[event.sg_event_id] = subscriber
    return found


def _suppress(session: Session, subscriber: Subscriber, status: Status) -> bool:
    if subscriber.status not in (Status.active, Status.pending):
        return False  # already out (or unsubscribed earlier): the first reason stands
    subscriber.status = status
    if status == Status.unsubscribed:
        subscriber.unsubscribed_at = utcnow()
    session.add(subscriber)
    return True


def _soft_bounces(session: Session, subscriber_ids: Sequence[int]) -> Counter[int]:
    """Soft bounces recorded so far, per subscriber."""
    counts: Counter[int] = Counter()
    subscriber_column = col(ProviderEventRecord.subscriber_id)
    for chunk in _chunks(sorted(set(subscriber_ids))):
        query = (sa_select(subscriber_column, func.count())
                 .where(subscriber_column.in_(chunk),
                        col(ProviderEventRecord.effect) == Effect.SOFT_BOUNCE.value)
                 .group_by(subscriber_column))
        counts.update({sid: int(count) for sid, count in session.execute(query)})
    return counts


def _record(event: ProviderEvent, subscriber: Subscriber | None) -> dict[str, Any]:
    """The provider_event row of one event (a rejected one keeps why, dated on arrival)."""
    received = utcnow()
    effect = REJECTED if event.rejected else classify(event).value
    occurred = received if event.rejected else datetime.fromtimestamp(event.timestamp, UTC)
    return {
        "sg_event_id": event.sg_event_id, "event": event.event[:40], "effect": effect,
        "day": occurred.date(), "occurred_at": occurred, "received_at": received,
        "delivery_id": None if event.rejected else _delivery_id(event),
        "subscriber_id": subscriber.id if subscriber and not event.rejected else None,
        "reason": (event.rejected or event.reason or "")[:500] or None,
    }


def apply_events(*, session: Session, events: Sequence[ProviderEvent]) -> EventReport:
    """Record new events and apply their effects; repeats of known events change nothing.

    A batch of a thousand events is a handful of statements: who they concern is looked up
    in bulk, and their records go in as multi-row inserts.
    """
    report = EventReport(received=len(events))
    fresh: list[ProviderEvent] = []
    seen: set[str] = set()
    for event in events:
        if event.sg_event_id not in seen:
            seen.add(event.sg_event_id)
            fresh.append(event)
    known: set[str] = set()
    for ids in _chunks([event.sg_event_id for event in fresh]):
        known.update(session.exec(select(ProviderEventRecord.sg_event_id).where(
            col(ProviderEventRecord.sg_event_id).in_(ids))))
    fresh = [event for event in fresh if event.sg_event_id not in known]
    subscribers = _subscribers_for(session, [e for e in fresh if not e.rejected])
    soft = _soft_bounces(session, [s.id for s in subscribers.values() if s.id is not None])
    insert = pg_insert if is_postgres(session) else sqlite_insert
    inserted: set[str] = set()
    for chunk in _chunks(fresh):
        rows = [_record(event, subscribers.get(event.sg_event_id)) for event in chunk]
        # A concurrent delivery of the same batch may insert first: then those are repeats.
        inserted.update(session.execute(
            insert(ProviderEventRecord).values(rows).on_conflict_do_nothing()
            .returning(col(ProviderEventRecord.sg_event_id))).scalars())
    report.duplicates = len(events) - len(inserted)
    for event in fresh:  # in the batch's order, so the first suppressing reason still stands
        if event.sg_event_id not in inserted:
            continue
        report.new += 1
        subscriber = subscribers.get(event.sg_event_id)
        if event.rejected:
            report.rejected += 1
            continue
        if subscriber is None or subscriber.id is None:
            report.unmatched += 1
            continue
        effect = classify(event)
        if effect == Effect.SUPPRESS:
            status = SUPPRESSED_AS.get(event.event, Status.bounced)
            report.suppressed += _suppress(session, subscriber, status)
        elif effect == Effect.SOFT_BOUNCE:
            soft[subscriber.id] += 1
            if soft[subscriber.id] >= SOFT_BOUNCES_BEFORE_SUPPRESSION:
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
