"""The delivery ledger (outbox pattern): one row per (subscriber, kind, period).

It lives beside the subscribers because the web app writes rows too (confirmation emails),
and the web app must not import the workers.

No row, no email. The unique key means re-planning never mails anyone twice; a send claims
rows under a lease, so a crashed worker's rows come back after the lease expires.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from functools import cache
from typing import Any, NamedTuple

import orjson
from sqlalchemy import (
    JSON,
    ColumnElement,
    Connection,
    Index,
    Integer,
    Select,
    Table,
    Text,
    UniqueConstraint,
    bindparam,
    cast,
    event,
    func,
    or_,
    text,
    update,
)
from sqlalchemy import select as core_select
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.sql import Executable
from sqlmodel import Field, Session, SQLModel, col, select

from core.db import is_postgres, one_of, one_of_param
from core.errors import first_line
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


# The rows a sender may still take, by id: claims walk it in id order. Without it PostgreSQL
# walked the primary key past every row ever sent before the first open one (the status
# index does not give id order): each claim slower than the last, a day's and history's.
_OPEN = "status IN ('planned', 'sending')"


class Delivery(SQLModel, table=True):
    __table_args__ = (
        UniqueConstraint("subscriber_id", "kind", "period", name="uq_delivery"),
        Index("ix_delivery_open", "id", postgresql_where=text(_OPEN), sqlite_where=text(_OPEN)),
    )

    id: int | None = Field(default=None, primary_key=True)
    # Looked up by subscriber through uq_delivery, which starts with this column: an index of
    # its own would be one more entry to write at every claim and outcome (migration 0016).
    subscriber_id: int = Field(foreign_key="subscriber.id", ondelete="CASCADE")
    kind: str = Field(max_length=20)  # daily, weekly, monthly, confirm ...
    period: str = Field(max_length=20)  # 2026-01-29, 2026-W05, 2026-04 ...
    status: DeliveryStatus = Field(default=DeliveryStatus.planned, index=True)
    payload: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)  # subscribers.payloads
    # Rows with the same share key render alike (equal digests, one monthly issue): a sender
    # renders them once and hands them over in one request. Written by the planners.
    share: str | None = Field(default=None, max_length=40)
    # The papers a digest promised: never picked for this reader again (`sent_paper_ids`).
    picks: list[str] | None = Field(default=None, sa_type=JSON(none_as_null=True))
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow)  # claims go by ix_delivery_open
    lease_until: datetime | None = None
    provider_message_id: str | None = None
    last_error: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    sent_at: datetime | None = None


@dataclass(frozen=True)
class PlannedDelivery:
    subscriber_id: int
    kind: str
    period: str
    payload: dict[str, Any]
    paper_ids: tuple[str, ...] = ()
    share: str | None = None
    # The payload as JSON text when the planner encoded it already (a digest's share key
    # hashes it): PostgreSQL's COPY writes it as it is instead of encoding it again.
    payload_json: str = ""


ANALYZE_AFTER_ROWS = 1000  # rows one planning call adds before the ledger's statistics renew


def plan_deliveries(*, session: Session, planned: Sequence[PlannedDelivery]) -> int:
    """Write ledger rows in bulk; rows that already exist are left alone. Returns rows added."""
    now = utcnow()
    added = 0
    postgres = is_postgres(session)  # COPY takes JSON as text; SQLite's insert encodes it
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
                "payload": (p.payload_json or json.dumps(p.payload)) if postgres else p.payload,
                "share": p.share,
                "picks": list(p.paper_ids) if p.paper_ids else None,
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
            }
            for p in chunk
            if (p.subscriber_id, p.kind, p.period) not in before
        ]
        # Only the rows this call inserted count: a planner racing us may have written some
        # of the same keys after `before` was read, and its rows carry its own papers.
        ids = _insert_returning_keys(session, rows)
        added += len(ids)
    session.flush()
    if postgres and added >= ANALYZE_AFTER_ROWS and not session.in_nested_transaction():
        # PostgreSQL plans a claim from the table's statistics. Taken before these rows, they
        # say almost nothing is open: it then reads every open row and sorts them for each
        # claim (a day's send run quadratic in its size) instead of walking ix_delivery_open
        # in id order. Autovacuum comes too late, or never on a large ledger (a day's rows
        # are far below its 10% threshold).
        event.listen(session, "after_commit", _renew_statistics, once=True)
    return added


def _renew_statistics(session: Session) -> None:
    """ANALYZE the ledger once the plan has committed, on a connection of its own: inside the
    plan's transaction its lock would be held to the commit, and make planners running
    beside it (and autovacuum) wait. It samples at most 30,000 rows. Only a speed-up: a
    failure is logged, and the committed plan stands (an error escaping a commit's hook
    would fail the plan's caller after its rows were committed)."""
    bind = session.get_bind(Delivery)
    if isinstance(bind, Connection):  # a transaction of the caller's: not committed yet
        return
    try:
        with bind.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("SET lock_timeout = '10s'"))  # not behind a long VACUUM
            connection.execute(text("ANALYZE delivery"))
    except Exception as error:
        log.warning("the ledger's statistics were not renewed: %s", first_line(error))


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
    "subscriber_id", "kind", "period", "status", "payload", "share", "picks", "attempts",
    "next_attempt_at", "created_at",
)
_JSON_COLUMNS = ("picks",)  # the payload comes encoded (plan_deliveries)


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
                    [json.dumps(row[c]) if c in _JSON_COLUMNS and row[c] is not None
                     else row[c] for c in _DELIVERY_COLUMNS]
                )
        cursor.execute(
            f"INSERT INTO delivery ({columns}) SELECT {columns} FROM delivery_load "
            # The planner's order: equal digests side by side (their ids next to each other).
            "ORDER BY share, subscriber_id ON CONFLICT DO NOTHING "
            "RETURNING id, subscriber_id, kind, period"
        )
        inserted = cursor.fetchall()
        cursor.execute("DELETE FROM delivery_load")
    return {(sid, kind, period): did for did, sid, kind, period in inserted}


def _existing_keys(session: Session, keys: set[tuple[int, str, str]]) -> set[tuple[int, str, str]]:
    subscriber_ids = {key[0] for key in keys}
    query = select(Delivery.subscriber_id, Delivery.kind, Delivery.period).where(
        one_of(session, Delivery.subscriber_id, subscriber_ids)
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
        found.update(session.exec(query.where(one_of(session, Delivery.subscriber_id, chunk))))
    return found


def _picks_since(
    session: Session, subscriber_ids: Iterable[int], since: datetime | None
) -> Iterator[tuple[int, list[str]]]:
    """(subscriber, picks) of each digest planned for these subscribers since then."""
    wanted = list(subscriber_ids)
    for start in range(0, len(wanted), 5000):
        query = select(Delivery.subscriber_id, Delivery.picks).where(
            one_of(session, Delivery.subscriber_id, wanted[start : start + 5000]),
            col(Delivery.picks).is_not(None),
        )
        if since is not None:
            query = query.where(col(Delivery.created_at) >= since)
        for sid, picks in session.exec(query):
            yield sid, list(picks or [])


def sent_paper_ids(
    *, session: Session, subscriber_ids: Iterable[int], since: datetime | None = None
) -> dict[int, set[str]]:
    """Papers already promised to each subscriber (in digests planned since `since`).

    The planner asks only about its ranking window: a paper announced before it can never be
    picked again anyway, so the digests planned before it need not be read.
    """
    wanted = list(subscriber_ids)
    sent: dict[int, set[str]] = {sid: set() for sid in wanted}
    for sid, picks in _picks_since(session, wanted, since):
        sent[sid].update(picks)
    return sent


def papers_promised_since(
    *, session: Session, subscriber_ids: Iterable[int], since: datetime
) -> dict[int, int]:
    """How many papers each subscriber's digests planned since then brought (0 for none)."""
    wanted = list(subscriber_ids)
    counts = dict.fromkeys(wanted, 0)
    for sid, picks in _picks_since(session, wanted, since):
        counts[sid] += len(picks)
    return counts


def _lapsed(now: datetime | ColumnElement[datetime]) -> ColumnElement[bool]:
    """Claimed rows whose lease ran out with no outcome: their sender died holding them."""
    return (col(Delivery.status) == DeliveryStatus.sending) & (col(Delivery.lease_until) < now)


def _suspect(now: datetime | ColumnElement[datetime]) -> ColumnElement[bool]:
    """Rows whose claim lapsed again: they may be what kills their senders."""
    return _lapsed(now) & (col(Delivery.attempts) >= SUSPECT_AFTER)


def _due(
    now: datetime | ColumnElement[datetime], *, suspects: bool = True
) -> ColumnElement[bool]:
    """Rows a sender should take: planned and their time has come, or their lease ran out
    (suspects left out when `suspects` is false: `claim_suspect` takes those one by one)."""
    lapsed = _lapsed(now)
    if not suspects:
        lapsed = lapsed & (col(Delivery.attempts) < SUSPECT_AFTER)
    # The status IN (...) is implied by the OR; it states ix_delivery_open's predicate as
    # written, so PostgreSQL matches the claim to that index (docs/performance.md).
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
    result = session.connection().execute(_quarantine_statement(is_postgres(session)),
                                          {"now": now})
    count = int(getattr(result, "rowcount", 0) or 0)
    if count:
        log.warning("quarantined %d deliveries: %s", count, QUARANTINED)
    return count


# A sender runs the statements below before every batch it claims: each is built once per
# dialect, with its values as parameters (`_NOW`, "lease_end", "limit"), so SQLAlchemy keeps
# its compiled form; built per claim, they cost more CPU than the claim itself. No parameter
# is named after a column: an UPDATE would SET that column from it.
_TABLE: Table = Delivery.__table__  # type: ignore[attr-defined]  # core: no ORM objects
_NOW = bindparam("now", type_=_TABLE.c.next_attempt_at.type)


@cache
def _quarantine_statement(postgres: bool) -> Executable:
    stuck = select(Delivery.id).where(_lapsed(_NOW), col(Delivery.attempts) >= MAX_ATTEMPTS)
    if postgres:
        stuck = stuck.with_for_update(skip_locked=True)
    return (update(_TABLE)
            .where(col(Delivery.id).in_(stuck.scalar_subquery()))
            .values(status=DeliveryStatus.failed, lease_until=None, last_error=QUARANTINED))


@cache
def _claim_statement(postgres: bool, *, suspect: bool) -> Executable:
    """Claim the rows due now (or the one suspect, the least tried first) under a lease."""
    if suspect:
        order = (col(Delivery.attempts), col(Delivery.id))
        due = select(Delivery.id).where(_suspect(_NOW)).order_by(*order).limit(1)
    else:
        due = select(Delivery.id).where(_due(_NOW, suspects=False))
        due = due.order_by(col(Delivery.id)).limit(bindparam("limit", type_=Integer))
    if postgres:
        due = due.with_for_update(skip_locked=True)
    return (
        update(_TABLE)
        .where(col(Delivery.id).in_(due.scalar_subquery()))
        .values(status=DeliveryStatus.sending, lease_until=bindparam("lease_end"),
                attempts=col(Delivery.attempts) + 1)
        .returning(col(Delivery.id), col(Delivery.attempts), col(Delivery.share))
    )


class Claim(NamedTuple):
    """A row taken under a lease: which attempt this is, and its share key."""

    id: int
    attempt: int
    share: str | None = None


def claim(*, session: Session, limit: int, lease: timedelta) -> list[Claim]:
    """Take up to `limit` due rows under a lease in one statement, in id order. Suspects are
    left to `claim_suspect`.

    Rows are not loaded here: the sender re-reads them under a lock (`hold_claimed`).
    """
    now = utcnow()
    statement = _claim_statement(is_postgres(session), suspect=False)
    return _take(session, statement, {"now": now, "lease_end": now + lease, "limit": limit})


def claim_suspect(*, session: Session, lease: timedelta) -> Claim | None:
    """Take one row whose claim lapsed again (the least tried first), after quarantining
    those that lapsed MAX_ATTEMPTS times.

    Its sender sends it alone, with nothing else in flight: if it kills the process again,
    the crash counts against it and not against rows sent beside it, so it alone reaches
    the quarantine, and rows that crashed beside it before go out first.
    """
    now = utcnow()
    quarantine_stuck(session=session, now=now)
    statement = _claim_statement(is_postgres(session), suspect=True)
    taken = _take(session, statement, {"now": now, "lease_end": now + lease})
    return taken[0] if taken else None


def _take(session: Session, statement: Executable, values: dict[str, Any]) -> list[Claim]:
    """Run a claim statement (SKIP LOCKED on PostgreSQL): the rows taken, in id order."""
    return sorted(Claim(int(did), int(attempt), share)
                  for did, attempt, share in session.connection().execute(statement, values))


class HeldRow(NamedTuple):
    """A claimed row still ours, as `hold_claimed` reads it (no ORM object). The payload
    comes as the database's JSON text and is decoded where it is read: rows that share a
    render need theirs decoded once, and rows whose render a sender remembers, never."""

    id: int
    subscriber_id: int
    kind: str
    attempts: int
    payload_text: str
    share: str | None
    created_at: datetime

    @property
    def payload(self) -> dict[str, Any]:
        return (orjson.loads(self.payload_text) if self.payload_text else None) or {}

    @staticmethod
    def columns() -> Select[int | None, int, str, int, str, str | None, datetime]:
        """The columns a HeldRow is read from, the payload as JSON text (seven columns: more
        than sqlmodel's typed select takes)."""
        return core_select(
            col(Delivery.id), col(Delivery.subscriber_id), col(Delivery.kind),
            col(Delivery.attempts), cast(col(Delivery.payload), Text), col(Delivery.share),
            col(Delivery.created_at),
        )


def hold_claimed(*, session: Session, claims: Sequence[Claim]) -> list[HeldRow]:
    """Lock claimed rows for sending, in one statement: in id order, only those still held by
    these claims (status sending, same attempt), locked on PostgreSQL until the commit.

    A row whose lease ran out and that another sender claimed since (its attempt moved on)
    belongs to that sender now. Locks are taken in id order, so two senders never deadlock.
    """
    attempts = {c.id: c.attempt for c in claims}
    query = _hold_statement(is_postgres(session))
    return [
        HeldRow(did, sid, kind, attempt, payload or "", share, created)
        for did, sid, kind, attempt, payload, share, created
        in session.connection().execute(query, {"ids": list(attempts)})
        if attempts.get(did) == attempt
    ]


@cache
def _hold_statement(postgres: bool) -> Executable:
    """hold_claimed's statement, built once per dialect (`one_of_param`: once per wave it
    cost more CPU than running it)."""
    query = (
        HeldRow.columns()
        .where(one_of_param(Delivery.id, "ids", postgres=postgres),
               col(Delivery.status) == DeliveryStatus.sending)
        .order_by(col(Delivery.id))
    )
    return query.with_for_update() if postgres else query


def set_outcome(
    *,
    session: Session,
    ids: Sequence[int],
    status: DeliveryStatus,
    provider_message_id: str | None = None,
    error: str | None = None,
    retry_in: timedelta | None = None,
) -> None:
    """One UPDATE for many rows (5,000 per statement): their outcome, or, for `planned`, a
    retry after `retry_in`. Sent rows that each carry their own message id: `mark_sent`."""
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


_MARK_SENT_ON_POSTGRES = text(
    "UPDATE delivery SET status = CAST(:status AS deliverystatus), "
    "provider_message_id = v.mid, sent_at = :now, lease_until = NULL, last_error = NULL "
    "FROM unnest(CAST(:ids AS integer[]), CAST(:mids AS varchar[])) AS v(id, mid) "
    "WHERE delivery.id = v.id"
)


def mark_sent(*, session: Session, sent: Sequence[tuple[int, str]]) -> None:
    """Rows the provider accepted, (id, provider message id) each, in one statement: on
    PostgreSQL an UPDATE joined to the two arrays, elsewhere an executemany. ORM objects of
    these rows in the session are stale until it commits."""
    if not sent:
        return
    values = {"status": DeliveryStatus.sent.value, "now": utcnow()}
    if is_postgres(session):
        session.connection().execute(
            _MARK_SENT_ON_POSTGRES,
            {**values, "ids": [did for did, _ in sent], "mids": [mid for _, mid in sent]},
        )
        return
    statement = (
        update(_TABLE)
        .where(_TABLE.c.id == bindparam("row_id"))
        .values(
            status=DeliveryStatus.sent,
            provider_message_id=bindparam("message_id"),
            sent_at=values["now"],
            lease_until=None,
            last_error=None,
        )
    )
    session.execute(statement, [{"row_id": did, "message_id": mid} for did, mid in sent])


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


def release(*, session: Session, claims: Sequence[Claim], delay: timedelta) -> None:
    """Hand claimed rows back untried, due after `delay`; their claim is not counted as an
    attempt (attempts decide when a retried row is given up and when a lapsed one is suspect).

    Only rows still held by these claims (id, attempt) are touched: a row whose lease ran out
    and that another sender claimed since belongs to that sender now.
    """
    by_attempt: dict[int, list[int]] = {}
    for delivery_id, attempt, _ in claims:
        by_attempt.setdefault(attempt, []).append(delivery_id)
    for attempt, ids in by_attempt.items():  # a statement per attempt, not per row
        session.execute(
            update(Delivery)
            .where(
                one_of(session, Delivery.id, ids),
                col(Delivery.status) == DeliveryStatus.sending,
                col(Delivery.attempts) == attempt,
            )
            .values(
                status=DeliveryStatus.planned, lease_until=None, next_attempt_at=utcnow() + delay,
                attempts=col(Delivery.attempts) - 1,
            )
        )


def count_open(
    *, session: Session, kind: str, period: str, due_by: datetime | None = None
) -> int:
    """Rows of a kind and period that are still waiting or being sent; given `due_by`, only
    the waiting ones due by then count beside those being sent."""
    waiting = col(Delivery.status) == DeliveryStatus.planned
    if due_by is not None:
        waiting = waiting & (col(Delivery.next_attempt_at) <= due_by)
    query = (
        select(func.count())
        .select_from(Delivery)
        .where(
            Delivery.kind == kind,
            Delivery.period == period,
            or_(col(Delivery.status) == DeliveryStatus.sending, waiting),
        )
    )
    return int(session.exec(query).one())
