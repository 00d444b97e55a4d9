"""The delivery ledger: one row per (subscriber, kind, period), leases, and sent history."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlmodel import select

from core.db import session_scope
from core.settings import Settings
from subscribers import ledger
from subscribers.models import Subscriber, SubscriberCreate
from subscribers.service import add_subscriber
from tests.support.celery_stack import add_subscribers


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
    lease = timedelta(minutes=5)
    with session_scope(migrated.sqlalchemy_url) as session:
        first = ledger.claim(session=session, limit=10, lease=lease)
    assert [claim.attempt for claim in first] == [1]
    with session_scope(migrated.sqlalchemy_url) as session:
        assert ledger.claim(session=session, limit=10, lease=lease) == []
    # A worker that died holding the row: its lease runs out and another worker takes over.
    with session_scope(migrated.sqlalchemy_url) as session:
        row = session.get(ledger.Delivery, first[0].id)
        assert row is not None
        row.lease_until = row.lease_until - timedelta(hours=1)  # type: ignore[operator]
        session.add(row)
    with session_scope(migrated.sqlalchemy_url) as session:
        again = ledger.claim(session=session, limit=10, lease=lease)
        assert [claim.attempt for claim in again] == [2]
        # The first claim is no longer held: only the second one may lock the row.
        assert ledger.hold_claimed(session=session, claims=first) == []
        assert [r.id for r in ledger.hold_claimed(session=session, claims=again)] == [again[0].id]
        ledger.mark_sent(session=session, sent=[(again[0].id, "<m@x>")])
    with session_scope(migrated.sqlalchemy_url) as session:
        assert ledger.claim(session=session, limit=10, lease=lease) == []
        done = session.get(ledger.Delivery, first[0].id)
        assert done is not None and done.status == ledger.DeliveryStatus.sent
        assert done.provider_message_id == "<m@x>" and done.lease_until is None


def test_a_retry_waits_for_its_time(migrated: Settings) -> None:
    sid = _subscriber(migrated)
    _plan(migrated, sid, ("2601.00001",))
    lease = timedelta(minutes=5)
    with session_scope(migrated.sqlalchemy_url) as session:
        claim = ledger.claim(session=session, limit=1, lease=lease)[0]
        ledger.set_outcome(session=session, ids=[claim.id], status=ledger.DeliveryStatus.planned,
                           error="503", retry_in=timedelta(minutes=5))
    with session_scope(migrated.sqlalchemy_url) as session:
        assert ledger.claim(session=session, limit=1, lease=lease) == []
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


def test_upgrading_keeps_each_digests_papers_and_share_key_and_downgrading_restores_them(
    db_settings: Settings,
) -> None:
    """0011/0012 move the share key and the promised papers into the ledger row itself."""
    from alembic import command
    from sqlalchemy import text

    from workers.migrate import alembic_config, upgrade

    upgrade(db_settings)
    sid = _subscriber(db_settings)  # through today's models, then back to the old schema
    command.downgrade(alembic_config(db_settings), "0010")
    with session_scope(db_settings.sqlalchemy_url) as session:
        did = session.execute(text(
            "INSERT INTO delivery (subscriber_id, kind, period, status, payload, attempts, "
            "next_attempt_at, created_at) VALUES (:sid, 'daily', '2026-01-29', 'planned', "
            "'{\"day\": \"2026-01-29\", \"share\": \"abc\"}', 0, CURRENT_TIMESTAMP, "
            "CURRENT_TIMESTAMP) RETURNING id"), {"sid": sid}).scalar_one()
        for paper in ("2601.00002", "2601.00001"):
            session.execute(text("INSERT INTO sentpaper (subscriber_id, arxiv_id, delivery_id) "
                                 "VALUES (:sid, :paper, :did)"),
                            {"sid": sid, "paper": paper, "did": did})
    upgrade(db_settings)
    with session_scope(db_settings.sqlalchemy_url) as session:
        row = session.get(ledger.Delivery, did)
        assert row is not None and row.share == "abc"
        assert sorted(row.picks or []) == ["2601.00001", "2601.00002"]
        assert ledger.sent_paper_ids(session=session, subscriber_ids=[sid]) == {
            sid: {"2601.00001", "2601.00002"}}
    command.downgrade(alembic_config(db_settings), "0010")
    with session_scope(db_settings.sqlalchemy_url) as session:
        kept = session.execute(text("SELECT arxiv_id FROM sentpaper ORDER BY arxiv_id"))
        assert [paper for (paper,) in kept] == ["2601.00001", "2601.00002"]


def test_upgrading_from_the_first_schema_and_back_keeps_every_ledger_row(
    db_settings: Settings,
) -> None:
    """SQLite's batch mode rebuilds a table by dropping it, and with foreign keys on the DROP
    cascades into the rows referring to it. Two ways that emptied the ledger: the migration
    lock's transaction kept 0002 from turning foreign keys off (upgrade), and 0006 rebuilt
    `subscriber` with them on (downgrade)."""
    from alembic import command

    from workers.migrate import alembic_config, upgrade

    upgrade(db_settings, "0001")
    with session_scope(db_settings.sqlalchemy_url) as session:
        sid = session.execute(text(
            "INSERT INTO subscriber (email, keywords, frequency, monthly, timezone, send_hour, "
            "status, created_at) VALUES ('ada@example.org', '[\"tts\"]', 'daily', true, 'UTC', "
            "7, 'active', CURRENT_TIMESTAMP) RETURNING id")).scalar_one()
        did = session.execute(text(
            "INSERT INTO delivery (subscriber_id, kind, period, status, payload, attempts, "
            "next_attempt_at, created_at) VALUES (:sid, 'daily', '2026-01-29', 'sent', "
            "'{\"day\": \"2026-01-29\"}', 1, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP) "
            "RETURNING id"), {"sid": sid}).scalar_one()
        session.execute(text("INSERT INTO sentpaper (subscriber_id, arxiv_id, delivery_id) "
                             "VALUES (:sid, '2601.00001', :did)"), {"sid": sid, "did": did})

    def rows(*tables: str) -> list[int]:
        with session_scope(db_settings.sqlalchemy_url) as session:
            return [session.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
                    for table in tables]

    upgrade(db_settings)
    assert rows("subscriber", "delivery") == [1, 1]
    if db_settings.sqlalchemy_url.startswith("sqlite"):  # the migrator's pooled connection
        with session_scope(db_settings.sqlalchemy_url) as session:
            assert session.execute(text("PRAGMA foreign_keys")).scalar_one() == 1
    with session_scope(db_settings.sqlalchemy_url) as session:  # sentpaper is the row's picks
        assert ledger.sent_paper_ids(session=session, subscriber_ids=[sid]) == {
            sid: {"2601.00001"}}
    command.downgrade(alembic_config(db_settings), "0001")
    assert rows("subscriber", "delivery", "sentpaper") == [1, 1, 1]


@pytest.mark.parametrize("db_settings", ["postgres"], indirect=True)  # statistics are PostgreSQL's
def test_a_large_plan_renews_the_ledgers_statistics_on_postgresql(migrated: Settings) -> None:
    """PostgreSQL plans each claim from the table's statistics; taken before a day was planned,
    they say nothing is open, and every claim then reads and sorts every open row. A plan of
    ANALYZE_AFTER_ROWS rows or more renews them (bench/deliver.py measures the effect), once
    it has committed: its ANALYZE holds no lock in the plan's transaction."""
    count = ledger.ANALYZE_AFTER_ROWS
    add_subscribers(migrated, count)
    with session_scope(migrated.sqlalchemy_url) as session:
        ids = list(session.exec(select(Subscriber.id)))
        estimate = "SELECT reltuples FROM pg_class WHERE oid = 'delivery'::regclass"
        assert session.execute(text(estimate)).scalar_one() < 1  # never analyzed: -1 (or 0)
        planned = [ledger.PlannedDelivery(subscriber_id=sid or 0, kind="daily",
                                          period="2026-01-29", payload={"day": "2026-01-29"})
                   for sid in ids]
        assert ledger.plan_deliveries(session=session, planned=planned) == count
        with session_scope(migrated.sqlalchemy_url) as beside:  # another planner, say
            beside.execute(text("SET lock_timeout = '2s'"))
            beside.execute(text("ANALYZE delivery"))  # not kept waiting for our commit
    with session_scope(migrated.sqlalchemy_url) as session:
        assert session.execute(text(estimate)).scalar_one() == count
