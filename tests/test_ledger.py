"""The delivery ledger: one row per (subscriber, kind, period), leases, and sent history."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import select

from digest.db import session_scope
from digest.settings import Settings
from subscribers import ledger
from subscribers.models import SubscriberCreate
from subscribers.service import add_subscriber


def _subscriber(settings: Settings, email: str = "ada@example.org") -> int:
    with session_scope(settings.sqlalchemy_url) as session:
        create = SubscriberCreate(email=email, keywords=["tts"])
        return add_subscriber(session=session, subscriber_create=create, confirmed=True).id or 0


def _plan(settings: Settings, subscriber_id: int, papers: tuple[str, ...]) -> int:
    with session_scope(settings.sqlalchemy_url) as session:
        return ledger.plan_deliveries(
            session=session,
            planned=[
                ledger.PlannedDelivery(
                    subscriber_id=subscriber_id,
                    kind="daily",
                    period="2026-01-29",
                    payload={"day": "2026-01-29"},
                    paper_ids=papers,
                )
            ],
        )


def test_planning_twice_writes_one_row_and_keeps_the_first_papers(migrated: Settings) -> None:
    sid = _subscriber(migrated)
    assert _plan(migrated, sid, ("2601.00001", "2601.00002")) == 1
    assert _plan(migrated, sid, ("2601.00003",)) == 0
    with session_scope(migrated.sqlalchemy_url) as session:
        rows = list(session.exec(select(ledger.Delivery)))
        sent = ledger.sent_paper_ids(session=session, subscriber_ids=[sid])
    assert len(rows) == 1
    assert sent == {sid: {"2601.00001", "2601.00002"}}


def test_claim_leases_rows_and_an_expired_lease_comes_back(migrated: Settings) -> None:
    sid = _subscriber(migrated)
    _plan(migrated, sid, ("2601.00001",))
    with session_scope(migrated.sqlalchemy_url) as session:
        first = ledger.claim_batch(session=session, limit=10, lease=timedelta(minutes=5))
    assert [row.attempts for row in first] == [1]
    with session_scope(migrated.sqlalchemy_url) as session:
        assert ledger.claim_batch(session=session, limit=10, lease=timedelta(minutes=5)) == []
    # A worker that died holding the row: its lease runs out and another worker takes over.
    with session_scope(migrated.sqlalchemy_url) as session:
        row = session.get(ledger.Delivery, first[0].id)
        assert row is not None
        row.lease_until = row.lease_until - timedelta(hours=1)  # type: ignore[operator]
        session.add(row)
    with session_scope(migrated.sqlalchemy_url) as session:
        again = ledger.claim_batch(session=session, limit=10, lease=timedelta(minutes=5))
        assert [row.attempts for row in again] == [2]
        ledger.mark_sent(session=session, delivery=again[0], provider_message_id="<m@x>")
    with session_scope(migrated.sqlalchemy_url) as session:
        assert ledger.claim_batch(session=session, limit=10, lease=timedelta(minutes=5)) == []
        done = session.get(ledger.Delivery, first[0].id)
        assert done is not None and done.status == ledger.DeliveryStatus.sent


def test_a_retry_waits_for_its_time(migrated: Settings) -> None:
    sid = _subscriber(migrated)
    _plan(migrated, sid, ("2601.00001",))
    with session_scope(migrated.sqlalchemy_url) as session:
        row = ledger.claim_batch(session=session, limit=1, lease=timedelta(minutes=5))[0]
        ledger.mark_retry(session=session, delivery=row, error="503", delay=timedelta(minutes=5))
    with session_scope(migrated.sqlalchemy_url) as session:
        assert ledger.claim_batch(session=session, limit=1, lease=timedelta(minutes=5)) == []
        row = session.exec(select(ledger.Delivery)).one()
        assert row.status == ledger.DeliveryStatus.planned and row.last_error == "503"


def test_erasing_a_subscriber_takes_their_ledger_rows_with_them(migrated: Settings) -> None:
    sid = _subscriber(migrated)
    _plan(migrated, sid, ("2601.00001",))
    from subscribers.models import Subscriber

    with session_scope(migrated.sqlalchemy_url) as session:
        session.delete(session.get(Subscriber, sid))
    with session_scope(migrated.sqlalchemy_url) as session:
        assert list(session.exec(select(ledger.Delivery))) == []
        assert list(session.exec(select(ledger.SentPaper))) == []
