"""The delivery ledger (outbox pattern): one row per (subscriber, kind, period).

It lives beside the subscribers because the web app writes rows too (confirmation emails),
and the web app must not import the workers.

No row, no email. The unique key means re-planning never mails anyone twice; a send claims
rows under a lease, so a crashed worker's rows come back after the lease expires.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, NamedTuple

from sqlalchemy import (
    JSON,
    ColumnElement,
    Integer,
    String,
    Table,
    UniqueConstraint,
    any_,
    bindparam,
    func,
    or_,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Field, Session, SQLModel, col, select
from sqlmodel.sql.expression import SelectOfScalar

from digest.db import is_postgres
from subscribers.models import utcnow

log = logging.getLogger("digest.ledger")
# Claims a row gets: a transient failure on the last one is final, and a row whose last claim
# ran out without an outcome this many times is quarantined (see quarantine_stuck).
MAX_ATTEMPTS = 8
SUSPECT_AFTER = 2  # a lapsed row claimed this often goes out alone (see claim_suspect)
QUARANTINED = (
    f"quarantined: claimed {MAX_ATTEMPTS} times without an outcome (its sender kept dying "
    "on it); `digest retry-failed` sends it again"
)


class DeliveryStatus(StrEnum):
    planned = "planned"  # waiting for a worker (first try or a scheduled retry)
    sending = "sending"  # claimed under a lease
    sent = "sent"  # accepted by the transport
    failed = "failed"  # permanently refused; never retried automatically
    skipped = "skipped"  # the subscriber left or paused before it went out


class Delivery(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("subscriber_id", "kind", "period", name="uq_delivery"),)

    id: int | None = Field(default=None, primary_key=True)
    subscriber_id: int = Field(foreign_key="subscriber.id", index=True, ondelete="CASCADE")
    kind: str = Field(max_length=20)  # daily, weekly, monthly, confirm ...
    period: str = Field(max_length=20)  # 2026-01-29, 2026-W05, 2026-04 ...
    status: DeliveryStatus = Field(default=DeliveryStatus.planned, index=True)
    payload: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)  # what to render
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow, index=True)
    lease_until: datetime | None = None
    provider_message_id: str | None = None
    last_error: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    sent_at: datetime | None = None


class SentPaper(SQLModel, table=True):
    """A paper promised to a subscriber: it will never be picked for them again."""

    subscriber_id: int = Field(foreign_key="subscriber.id", primary_key=True, ondelete="CASCADE")
    arxiv_id: str = Field(primary_key=True, max_length=40)
    delivery_id: int = Field(foreign_key="delivery.id", index=True, ondelete="CASCADE")


@dataclass(frozen=True)
class PlannedDelivery:
    subscriber_id: int
    kind: str
    period: str
    payload: dict[str, Any]
    paper_ids: tuple[str, ...] = ()


def _insert_ignoring_duplicates(
    session: Session, model: type[SQLModel], rows: list[dict[str, Any]]
) -> None:
    if not rows:
        return
    insert = pg_insert if is_postgres(session) else sqlite_insert
    session.execute(insert(model).values(rows).on_conflict_do_nothing())


def plan_deliveries(*, session: Session, planned: Sequence[PlannedDelivery]) -> int:
    """Write ledger rows in bulk; rows that already exist are left alone. Returns rows added."""
    now = utcnow()
    added = 0
    for start in range(0, len(planned), 1000):
        chunk = planned[start : start + 1000]
        keys = {(p.subscriber_id, p.kind, p.period) for p in chunk}
        before = _existing_keys(session, keys)
        rows = [
            {
                "subscriber_id": p.subscriber_id,
                "kind": p.kind,
                "period": p.period,
                "status": DeliveryStatus.planned,
                "payload": p.payload,
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
            }
            for p in chunk
            if (p.subscriber_id, p.kind, p.period) not in before
        ]
        # Only the rows this call really inserted: a planner racing us may have written some
        # of the same keys after `before` was read, and its rows carry its own papers.
        ids = _insert_returning_keys(session, rows)
        sent_rows = [
            {
                "subscriber_id": p.subscriber_id,
                "arxiv_id": arxiv_id,
                "delivery_id": ids[(p.subscriber_id, p.kind, p.period)],
            }
            for p in chunk
            if (p.subscriber_id, p.kind, p.period) in ids
            for arxiv_id in p.paper_ids
        ]
        _insert_sent_papers(session, sent_rows)
        added += len(ids)
    session.flush()
    return added


def _insert_sent_papers(session: Session, rows: list[dict[str, Any]]) -> None:
    """The planning hot spot (ten rows per digest): COPY on PostgreSQL, multi-row elsewhere.

    COPY cannot skip conflicts, so it fills a temporary table that one INSERT ... ON CONFLICT
    DO NOTHING moves over (a racing planner may have promised the same paper).
    """
    if not rows or not is_postgres(session):
        _insert_ignoring_duplicates(session, SentPaper, rows)
        return
    connection = session.connection().connection.driver_connection
    with connection.cursor() as cursor:  # type: ignore[union-attr]
        cursor.execute(
            "CREATE TEMP TABLE IF NOT EXISTS sentpaper_load "
            "(subscriber_id integer, arxiv_id varchar(40), delivery_id integer) "
            "ON COMMIT DELETE ROWS"
        )
        columns = "subscriber_id, arxiv_id, delivery_id"
        with cursor.copy(f"COPY sentpaper_load ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row((row["subscriber_id"], row["arxiv_id"], row["delivery_id"]))
        cursor.execute(
            f"INSERT INTO sentpaper ({columns}) SELECT {columns} FROM sentpaper_load "
            "ON CONFLICT DO NOTHING"
        )
        cursor.execute("DELETE FROM sentpaper_load")


def _insert_returning_keys(
    session: Session, rows: list[dict[str, Any]]
) -> dict[tuple[int, str, str], int]:
    """Insert ledger rows, skipping existing keys; the keys and ids of the rows inserted."""
    if not rows:
        return {}
    if is_postgres(session):
        return _copy_returning_keys(session, rows)
    statement = (
        sqlite_insert(Delivery)
        .values(rows)
        .on_conflict_do_nothing()
        .returning(
            col(Delivery.id), col(Delivery.subscriber_id), col(Delivery.kind), col(Delivery.period)
        )
    )
    return {(sid, kind, period): did for did, sid, kind, period in session.execute(statement)}


_DELIVERY_COLUMNS = (
    "subscriber_id", "kind", "period", "status", "payload", "attempts", "next_attempt_at",
    "created_at",
)  # fmt: skip


def _copy_returning_keys(
    session: Session, rows: list[dict[str, Any]]
) -> dict[tuple[int, str, str], int]:
    """PostgreSQL: COPY the rows into a temporary table and move them over in one INSERT.

    A 1,000-row multi-VALUES insert spent most of its time compiling and binding parameters
    (about 0.4 s per 1,000 rows); COPY streams them.
    """
    columns = ", ".join(_DELIVERY_COLUMNS)
    connection = session.connection().connection.driver_connection
    with connection.cursor() as cursor:  # type: ignore[union-attr]
        cursor.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS delivery_load ON COMMIT DELETE ROWS AS "
            f"SELECT {columns} FROM delivery WITH NO DATA"
        )
        with cursor.copy(f"COPY delivery_load ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(
                    [json.dumps(row[c]) if c == "payload" else row[c] for c in _DELIVERY_COLUMNS]
                )
        cursor.execute(
            f"INSERT INTO delivery ({columns}) SELECT {columns} FROM delivery_load "
            # The planner's order: equal digests side by side (their ids next to each other).
            "ORDER BY payload->>'share', subscriber_id ON CONFLICT DO NOTHING "
            "RETURNING id, subscriber_id, kind, period"
        )
        inserted = cursor.fetchall()
        cursor.execute("DELETE FROM delivery_load")
    return {(sid, kind, period): did for did, sid, kind, period in inserted}


def _existing_keys(session: Session, keys: set[tuple[int, str, str]]) -> set[tuple[int, str, str]]:
    subscriber_ids = {key[0] for key in keys}
    query = select(Delivery.subscriber_id, Delivery.kind, Delivery.period).where(
        col(Delivery.subscriber_id).in_(subscriber_ids)
    )
    return {(sid, kind, period) for sid, kind, period in session.exec(query)} & keys


def planned_subscriber_ids(
    *, session: Session, kind: str, period: str, among: Sequence[int] | None = None
) -> set[int]:
    """Subscribers who already have a row for this kind and period (of `among`, when given)."""
    query = select(Delivery.subscriber_id).where(Delivery.kind == kind, Delivery.period == period)
    if among is None:
        return set(session.exec(query))
    found: set[int] = set()
    for start in range(0, len(among), 5000):
        chunk = among[start : start + 5000]
        found.update(session.exec(query.where(col(Delivery.subscriber_id).in_(chunk))))
    return found


def sent_paper_ids(*, session: Session, subscriber_ids: Iterable[int]) -> dict[int, set[str]]:
    """Papers already promised to each subscriber."""
    wanted = list(subscriber_ids)
    sent: dict[int, set[str]] = {sid: set() for sid in wanted}
    for start in range(0, len(wanted), 1000):
        query = select(SentPaper.subscriber_id, SentPaper.arxiv_id).where(
            col(SentPaper.subscriber_id).in_(wanted[start : start + 1000])
        )
        for sid, arxiv_id in session.exec(query):
            sent[sid].add(arxiv_id)
    return sent


def papers_promised_since(
    *, session: Session, subscriber_ids: Iterable[int], since: datetime
) -> dict[int, int]:
    """How many papers each subscriber's digests planned since then brought (0 for none)."""
    wanted = list(subscriber_ids)
    counts = dict.fromkeys(wanted, 0)
    for start in range(0, len(wanted), 1000):
        query = (
            select(SentPaper.subscriber_id, func.count())
            .join(Delivery, col(Delivery.id) == SentPaper.delivery_id)
            .where(col(SentPaper.subscriber_id).in_(wanted[start : start + 1000]),
                   col(Delivery.created_at) >= since)
            .group_by(col(SentPaper.subscriber_id))
        )
        for sid, count in session.exec(query):
            counts[sid] = int(count)
    return counts


def _lapsed(now: datetime) -> ColumnElement[bool]:
    """Claimed rows whose lease ran out with no outcome: their sender died holding them."""
    return (col(Delivery.status) == DeliveryStatus.sending) & (col(Delivery.lease_until) < now)


def _suspect(now: datetime) -> ColumnElement[bool]:
    """Rows whose claim lapsed again: they may be what kills their senders."""
    return _lapsed(now) & (col(Delivery.attempts) >= SUSPECT_AFTER)


def _due(now: datetime, *, suspects: bool = True) -> ColumnElement[bool]:
    """Rows a sender should take: planned and their time has come, or their lease ran out
    (suspects left out when `suspects` is false: `claim_suspect` takes those one by one)."""
    lapsed = _lapsed(now)
    if not suspects:
        lapsed = lapsed & (col(Delivery.attempts) < SUSPECT_AFTER)
    # The status IN (...) is implied by the OR, but without it PostgreSQL walks the primary
    # key past every row already sent (31 ms per claim at 80,000 sent of 100,000; 5 ms with
    # the status index).
    return col(Delivery.status).in_([DeliveryStatus.planned, DeliveryStatus.sending]) & or_(
        (col(Delivery.status) == DeliveryStatus.planned) & (col(Delivery.next_attempt_at) <= now),
        lapsed,
    )


def count_due(*, session: Session, now: datetime) -> int:
    """How many rows a sender would take now (the sweeper's question)."""
    query = select(func.count()).select_from(Delivery).where(_due(now))
    return int(session.exec(query).one())


def quarantine_stuck(*, session: Session, now: datetime) -> int:
    """Fail rows claimed MAX_ATTEMPTS times whose last claim ran out with no outcome.

    A row that keeps killing its sender (a message that crashes the process) would otherwise
    be claimed again forever. Rows still locked by a live sender are left alone. Returns how
    many were quarantined.
    """
    stuck = select(Delivery.id).where(_lapsed(now), col(Delivery.attempts) >= MAX_ATTEMPTS)
    if is_postgres(session):
        stuck = stuck.with_for_update(skip_locked=True)
    result = session.execute(
        update(Delivery)
        .where(col(Delivery.id).in_(stuck.scalar_subquery()))
        .values(status=DeliveryStatus.failed, lease_until=None, last_error=QUARANTINED)
    )
    count = int(getattr(result, "rowcount", 0) or 0)
    if count:
        log.warning("quarantined %d deliveries: %s", count, QUARANTINED)
    return count


def claim_batch(
    *, session: Session, limit: int, lease: timedelta, kind: str | None = None
) -> list[Delivery]:
    """Take up to `limit` due rows (of one kind, when given) under a lease; SKIP LOCKED keeps
    workers off each other (the monthly sender takes its rows 1,000 at a time)."""
    now = utcnow()
    query = select(Delivery).where(_due(now, suspects=False))
    if kind is not None:
        query = query.where(col(Delivery.kind) == kind)
    query = query.order_by(col(Delivery.id)).limit(limit)
    if is_postgres(session):
        query = query.with_for_update(skip_locked=True)
    rows = list(session.exec(query))
    for row in rows:
        row.status = DeliveryStatus.sending
        row.lease_until = now + lease
        row.attempts += 1
        session.add(row)
    session.flush()
    return rows


def claim(
    *, session: Session, limit: int, lease: timedelta, kind: str | None = None
) -> list[tuple[int, int]]:
    """Take up to `limit` due rows (of one kind, when given) under a lease in one statement;
    (id, attempt) per row. Suspects are left to `claim_suspect`.

    The same rows `claim_batch` would take, without loading them: senders re-read each row
    under a lock when they send it (`lock_claimed`, `hold_claimed`).
    """
    now = utcnow()
    due = select(Delivery.id).where(_due(now, suspects=False))
    if kind is not None:
        due = due.where(col(Delivery.kind) == kind)
    return _take(session, due.order_by(col(Delivery.id)).limit(limit), now + lease)


def claim_suspect(*, session: Session, lease: timedelta) -> tuple[int, int] | None:
    """Take one row whose claim lapsed again (the least tried first), as (id, attempt),
    after quarantining those that lapsed MAX_ATTEMPTS times.

    Its sender sends it alone, with nothing else in flight: if it kills the process again,
    the crash counts against it and not against rows sent beside it, so it alone reaches
    the quarantine, and rows that crashed beside it before go out first.
    """
    now = utcnow()
    quarantine_stuck(session=session, now=now)
    order = (col(Delivery.attempts), col(Delivery.id))
    suspect = select(Delivery.id).where(_suspect(now)).order_by(*order).limit(1)
    taken = _take(session, suspect, now + lease)
    return taken[0] if taken else None


def _take(
    session: Session, due: SelectOfScalar[Any], lease_until: datetime
) -> list[tuple[int, int]]:
    """Claim the rows `due` selects (SKIP LOCKED on PostgreSQL): (id, attempt) per row."""
    if is_postgres(session):
        due = due.with_for_update(skip_locked=True)
    statement = (
        update(Delivery)
        .where(col(Delivery.id).in_(due.scalar_subquery()))
        .values(
            status=DeliveryStatus.sending,
            lease_until=lease_until,
            attempts=col(Delivery.attempts) + 1,
        )
        .returning(col(Delivery.id), col(Delivery.attempts))
    )
    return sorted((int(did), int(attempt)) for did, attempt in session.execute(statement))


def share_keys(*, session: Session, ids: Sequence[int]) -> dict[int, str]:
    """The planner's share key of each of these rows that has one (digests rendered alike
    share it): what lets a sender put equal digests in one request."""
    if not ids:
        return {}
    share = col(Delivery.payload)["share"].as_string()
    query = select(col(Delivery.id), share).where(one_of(session, Delivery.id, ids))
    return {int(did): key for did, key in session.execute(query) if key}


def lock_claimed(*, session: Session, claims: Sequence[tuple[int, int]]) -> dict[int, Delivery]:
    """Lock claimed rows for sending; only those still held by these claims, in claim order.

    A row whose lease ran out and that another sender claimed since (its attempt moved on)
    belongs to that sender now. Locks are taken in id order, so two senders never deadlock.
    """
    attempts = dict(claims)
    query = select(Delivery).where(col(Delivery.id).in_(attempts)).order_by(col(Delivery.id))
    if is_postgres(session):
        query = query.with_for_update()
    rows = {row.id or 0: row for row in session.exec(query)}
    return {
        did: rows[did]
        for did, attempt in claims
        if did in rows
        and rows[did].status == DeliveryStatus.sending
        and rows[did].attempts == attempt
    }


def one_of(session: Session, column: Any, values: Collection[int] | Collection[str]) -> Any:
    """`column IN (...)`; on PostgreSQL `column = ANY(:array)`: one parameter instead of a
    thousand, which SQLAlchemy and psycopg would otherwise expand and convert per statement."""
    if not is_postgres(session):
        return col(column).in_(list(values))
    kind = String if values and isinstance(next(iter(values)), str) else Integer
    return col(column) == any_(bindparam(None, list(values), type_=ARRAY(kind)))


class HeldRow(NamedTuple):
    """A claimed row still ours, as `hold_claimed` reads it (no ORM object)."""

    id: int
    subscriber_id: int
    attempts: int
    payload: dict[str, Any]


def hold_claimed(*, session: Session, claims: Sequence[tuple[int, int]]) -> list[HeldRow]:
    """`lock_claimed` in one core statement, for thousands of rows: in id order, only those
    still held by these claims (status sending, same attempt), locked on PostgreSQL."""
    attempts = dict(claims)
    query = (
        select(Delivery.id, Delivery.subscriber_id, Delivery.attempts, Delivery.payload)
        .where(one_of(session, Delivery.id, attempts), Delivery.status == DeliveryStatus.sending)
        .order_by(col(Delivery.id))
    )
    if is_postgres(session):
        query = query.with_for_update()
    return [
        HeldRow(did, sid, attempt, payload or {})
        for did, sid, attempt, payload in session.execute(query)
        if attempts.get(did) == attempt
    ]


def set_outcome(
    *,
    session: Session,
    ids: Sequence[int],
    status: DeliveryStatus,
    provider_message_id: str | None = None,
    error: str | None = None,
    retry_in: timedelta | None = None,
) -> None:
    """One UPDATE for many rows: what `mark_sent`, `mark_retry`, `mark_failed` and
    `mark_skipped` do to one ORM row each."""
    if not ids:
        return
    values: dict[str, Any] = {"status": status, "lease_until": None}
    if status == DeliveryStatus.sent:
        values.update(provider_message_id=provider_message_id, sent_at=utcnow(), last_error=None)
    else:
        values["last_error"] = (error or "")[:1000]
    if status == DeliveryStatus.planned:
        values["next_attempt_at"] = utcnow() + (retry_in or timedelta())
    for start in range(0, len(ids), 5000):
        chunk = list(ids[start : start + 5000])
        session.execute(
            update(Delivery).where(one_of(session, Delivery.id, chunk)).values(**values)
        )


def mark_sent(*, session: Session, delivery: Delivery, provider_message_id: str) -> None:
    delivery.status = DeliveryStatus.sent
    delivery.provider_message_id = provider_message_id
    delivery.sent_at = utcnow()
    delivery.lease_until = None
    delivery.last_error = None
    session.add(delivery)


def mark_all_sent(*, session: Session, sent: Sequence[tuple[int, str]]) -> None:
    """`mark_sent` for many rows, (id, provider message id) each: one executemany, which
    psycopg pipelines, instead of the ORM's unit of work per object (a fifth of a send's
    CPU). ORM objects of these rows in the session are stale until it commits."""
    if not sent:
        return
    table: Table = Delivery.__table__  # type: ignore[attr-defined]  # core, not the ORM
    statement = (
        update(table)
        .where(table.c.id == bindparam("row_id"))
        .values(
            status=DeliveryStatus.sent,
            provider_message_id=bindparam("message_id"),
            sent_at=utcnow(),
            lease_until=None,
            last_error=None,
        )
    )
    session.execute(statement, [{"row_id": did, "message_id": mid} for did, mid in sent])


def mark_retry(*, session: Session, delivery: Delivery, error: str, delay: timedelta) -> None:
    """Back to the queue; the retry time lives in the row, not in a countdown."""
    delivery.status = DeliveryStatus.planned
    delivery.next_attempt_at = utcnow() + delay
    delivery.lease_until = None
    delivery.last_error = error[:1000]
    session.add(delivery)


def mark_failed(*, session: Session, delivery: Delivery, error: str) -> None:
    delivery.status = DeliveryStatus.failed
    delivery.lease_until = None
    delivery.last_error = error[:1000]
    session.add(delivery)


def mark_skipped(*, session: Session, delivery: Delivery, reason: str) -> None:
    delivery.status = DeliveryStatus.skipped
    delivery.lease_until = None
    delivery.last_error = reason
    session.add(delivery)


def list_deliveries(
    *, session: Session, status: DeliveryStatus | None = None, limit: int = 1000
) -> list[Delivery]:
    """Newest deliveries first, optionally of one status."""
    query = select(Delivery).order_by(col(Delivery.id).desc()).limit(limit)
    if status is not None:
        query = query.where(Delivery.status == status)
    return list(session.exec(query))


def requeue_failed(*, session: Session, dry_run: bool = False) -> int:
    """Give permanently failed rows a fresh start; returns how many."""
    rows = list(session.exec(select(Delivery).where(Delivery.status == DeliveryStatus.failed)))
    if not dry_run:
        for row in rows:
            row.status = DeliveryStatus.planned
            row.attempts = 0
            row.next_attempt_at = utcnow()
            session.add(row)
    return len(rows)


def release(*, session: Session, claims: Sequence[tuple[int, int]], delay: timedelta) -> None:
    """Hand claimed rows back untried, due after `delay`.

    Only rows still held by these claims (id, attempt) are touched: a row whose lease ran out
    and that another sender claimed since belongs to that sender now.
    """
    for delivery_id, attempt in claims:
        session.execute(
            update(Delivery)
            .where(
                col(Delivery.id) == delivery_id,
                col(Delivery.status) == DeliveryStatus.sending,
                col(Delivery.attempts) == attempt,
            )
            .values(
                status=DeliveryStatus.planned, lease_until=None, next_attempt_at=utcnow() + delay
            )
        )


def count_open(*, session: Session, kind: str, period: str) -> int:
    """Rows of a kind and period that are still waiting or being sent."""
    query = (
        select(func.count())
        .select_from(Delivery)
        .where(
            Delivery.kind == kind,
            Delivery.period == period,
            col(Delivery.status).in_([DeliveryStatus.planned, DeliveryStatus.sending]),
        )
    )
    return int(session.exec(query).one())
