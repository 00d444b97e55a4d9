"""Planning by local send hour, and sending through a real (local) SendGrid-speaking server."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text, update
from sqlalchemy.exc import OperationalError
from sqlmodel import col, select

from core.db import get_engine, session_scope
from core.settings import Settings
from digest.papers import Paper, latest_announcement
from emails.transports.outbox import OutboxTransport
from emails.transports.sendgrid import SendGridTransport
from subscribers import ledger
from subscribers.models import AccountMail, Frequency, Status, Subscriber
from subscribers.service import plan_account_mail
from tests.support.delivery import plan_latest_day as _plan_latest_day
from tests.support.delivery import stock as _stock
from tests.support.fake_sendgrid import FakeSendGrid
from workers import planning, sending


def test_due_slot_follows_the_subscriber_clock() -> None:
    tokyo = Subscriber(email="a@example.org", timezone="Asia/Tokyo", send_hour=8)
    # 23:30 UTC on the 28th is 08:30 on the 29th in Tokyo: due, for the 29th.
    slot = planning.due_slot(tokyo, datetime(2026, 1, 28, 23, 30, tzinfo=UTC), 7)
    assert slot is not None and slot.period == "2026-01-29"
    assert planning.due_slot(tokyo, datetime(2026, 1, 28, 22, 30, tzinfo=UTC), 7) is None
    weekly = Subscriber(email="b@example.org", frequency=Frequency.weekly, send_hour=7)
    monday_early = datetime(2026, 1, 26, 6, 0, tzinfo=UTC)
    assert planning.due_slot(weekly, monday_early, 7) is None
    tuesday = planning.due_slot(weekly, monday_early + timedelta(days=1), 7)
    assert tuesday is not None and tuesday.period == "2026-W05"


def test_plan_due_waits_for_new_papers_and_the_send_hour(migrated: Settings) -> None:
    settings = migrated.model_copy(update={"lookback_days": 400})
    _stock(settings, ("ada@example.org", ["TTS"], "UTC", 7),
           ("late@example.org", ["TTS"], "UTC", 23))
    with session_scope(settings.sqlalchemy_url) as session:
        newest = latest_announcement(session=session)
    assert newest is not None
    # The papers arrived at 06:00 on their announcement day (fixed, so the test does not
    # depend on the hour it runs at).
    arrived = datetime.combine(newest, datetime.min.time(), UTC) + timedelta(hours=6)
    with session_scope(settings.sqlalchemy_url) as session:
        session.execute(update(Paper).values(first_seen_at=arrived))
    # Two days later nothing arrived in the 24 h before 08:00: a quiet day sends nothing.
    quiet = arrived + timedelta(days=2, hours=2)
    assert planning.plan_due(settings=settings, now=quiet).planned == 0
    now = arrived + timedelta(hours=2)  # 08:00 on the day they arrived
    report = planning.plan_due(settings=settings, now=now)
    assert (report.planned, report.due) == (1, 1)  # the 23:00 subscriber is not due yet
    assert planning.plan_due(settings=settings, now=now).planned == 0  # idempotent


def test_sending_records_the_provider_id_and_tags_the_delivery(
    migrated: Settings, fake_sendgrid: FakeSendGrid
) -> None:
    settings = migrated.model_copy(update={"lookback_days": 30})
    _stock(settings, ("ada@example.org", ["TTS", "speech synthesis"], "UTC", 7))
    assert _plan_latest_day(settings) == 1
    transport = SendGridTransport(fake_sendgrid.api_key, fake_sendgrid.url)
    report = sending.send_due(settings=settings, transport=transport)
    assert (report.sent, report.failed) == (1, 0)
    [personalization] = fake_sendgrid.personalizations()
    with session_scope(settings.sqlalchemy_url) as session:
        row = session.exec(select(ledger.Delivery)).one()
    assert personalization["custom_args"]["delivery_id"] == str(row.id)
    assert row.status == ledger.DeliveryStatus.sent and row.provider_message_id


def test_outages_retry_from_the_ledger_and_a_400_fails_once(
    migrated: Settings, fake_sendgrid: FakeSendGrid
) -> None:
    settings = migrated.model_copy(update={"lookback_days": 30})
    _stock(settings, ("ada@example.org", ["TTS"], "UTC", 7),
           ("alan@example.org", ["speech language model"], "UTC", 7))
    with session_scope(settings.sqlalchemy_url) as session:
        day = latest_announcement(session=session)
    assert day is not None
    planning.plan_daily(settings=settings, day=day)
    transport = SendGridTransport(fake_sendgrid.api_key, fake_sendgrid.url)
    fake_sendgrid.fail_next(500, 1)
    fake_sendgrid.fail_next(400, 1)
    first = sending.send_due(settings=settings, transport=transport)
    assert (first.sent, first.retried, first.failed) == (0, 1, 1)
    with session_scope(settings.sqlalchemy_url) as session:
        rows = {r.status: r for r in session.exec(select(ledger.Delivery))}
        retry = rows[ledger.DeliveryStatus.planned]
        assert "SendGrid 400" in (rows[ledger.DeliveryStatus.failed].last_error or "")
        retry.next_attempt_at = datetime.now(UTC)  # the retry time has come
        session.add(retry)
    second = sending.send_due(settings=settings, transport=transport)
    assert (second.sent, second.failed) == (1, 0)
    assert sending.send_due(settings=settings, transport=transport).handled == 0


def test_a_subscriber_who_leaves_before_the_send_gets_nothing(
    migrated: Settings, fake_sendgrid: FakeSendGrid
) -> None:
    settings = migrated.model_copy(update={"lookback_days": 30})
    [sid] = _stock(settings, ("ada@example.org", ["TTS"], "UTC", 7))
    with session_scope(settings.sqlalchemy_url) as session:
        day = latest_announcement(session=session)
    assert day is not None
    planning.plan_daily(settings=settings, day=day)
    with session_scope(settings.sqlalchemy_url) as session:
        subscriber = session.get(Subscriber, sid)
        assert subscriber is not None
        subscriber.status = Status.unsubscribed
        session.add(subscriber)
    transport = SendGridTransport(fake_sendgrid.api_key, fake_sendgrid.url)
    report = sending.send_due(settings=settings, transport=transport)
    assert (report.sent, report.skipped) == (0, 1)
    assert fake_sendgrid.accepted == []


def _a_run_that_pauses(
    settings: Settings, fake_sendgrid: FakeSendGrid, readers: int, batch_size: int
) -> list[ledger.Delivery]:
    """`readers` different digests (a keyword of their own each: one request apiece), every
    request refused: the ledger after the run, which paused."""
    settings = settings.model_copy(update={"lookback_days": 30})
    _stock(settings, *[(f"reader{n}@example.org", ["TTS", f"zyxq{n}"], "UTC", 7)
                       for n in range(readers)])
    assert _plan_latest_day(settings) == readers
    fake_sendgrid.fail_next(500, 1000)
    transport = SendGridTransport(fake_sendgrid.api_key, fake_sendgrid.url)
    report = sending.send_due(settings=settings, transport=transport, batch_size=batch_size)
    assert report.paused and "20 failed sends in a row" in report.paused
    assert (report.sent, report.retried) == (0, sending.PAUSE_AFTER_FAILURES_IN_A_ROW)
    with session_scope(settings.sqlalchemy_url) as session:
        rows = list(session.exec(select(ledger.Delivery)))
    assert {r.status for r in rows} == {ledger.DeliveryStatus.planned}  # none lost or claimed
    return rows


def test_a_run_pauses_itself_when_the_provider_keeps_failing(
    migrated: Settings, fake_sendgrid: FakeSendGrid
) -> None:
    rows = _a_run_that_pauses(migrated, fake_sendgrid, readers=24, batch_size=50)
    untried = [r for r in rows if r.last_error is None]  # claimed in the one claim of 24
    assert len(untried) == 4 and all(r.next_attempt_at > datetime.now(UTC) for r in untried)
    assert {r.attempts for r in untried} == {0}  # handed back untried: no attempt counted


def test_a_paused_run_hands_back_what_it_claimed_ahead_untried(
    migrated: Settings, fake_sendgrid: FakeSendGrid
) -> None:
    """Claims of two rows come back full, so on PostgreSQL the next is taken while the last
    is sent: when the run pauses, those rows go back too, no attempt counted; none is left
    claimed (rows the run never claimed are untried too, and due as they were)."""
    rows = _a_run_that_pauses(migrated, fake_sendgrid, readers=30, batch_size=2)
    untried = [r for r in rows if r.last_error is None]
    assert len(untried) == 30 - sending.PAUSE_AFTER_FAILURES_IN_A_ROW
    assert {r.attempts for r in untried} == {0}


def test_a_run_whose_last_requests_meet_the_pause_says_it_paused(
    migrated: Settings, fake_sendgrid: FakeSendGrid
) -> None:
    """Twenty readers and twenty failed requests: the run's queue is empty when it meets the
    twentieth failure, and it still reports its pause (before, it ended without a word)."""
    settings = migrated.model_copy(update={"lookback_days": 30})
    pause = sending.PAUSE_AFTER_FAILURES_IN_A_ROW
    _stock(settings, *[(f"reader{n}@example.org", ["TTS", f"zyxq{n}"], "UTC", 7)
                       for n in range(pause)])
    assert _plan_latest_day(settings) == pause
    fake_sendgrid.fail_next(500, 1000)
    transport = SendGridTransport(fake_sendgrid.api_key, fake_sendgrid.url)
    report = sending.send_due(settings=settings, transport=transport, batch_size=50)
    assert report.paused and f"paused after {pause} failed sends in a row" in report.paused
    assert (report.sent, report.retried, fake_sendgrid.requests) == (0, pause, pause)


def test_a_refused_shared_request_near_the_pause_tries_readers_only_up_to_it(
    migrated: Settings, fake_sendgrid: FakeSendGrid
) -> None:
    """Five failed requests, then a refused request for 24 equal digests: its readers are
    tried one by one only until the run's twentieth failure in a row. The rest go back
    untried as the run pauses, none failed for good on a refusal it never met."""
    settings = migrated.model_copy(update={"lookback_days": 30, "send_concurrency": 1})
    _stock(settings, *[(f"first{n}@example.org", ["TTS", f"zyxq{n}"], "UTC", 7)
                       for n in range(5)])
    assert _plan_latest_day(settings) == 5  # planned first: the first five requests
    with session_scope(settings.sqlalchemy_url) as session:
        for n in range(24):
            session.add(Subscriber(email=f"reader{n}@example.org", keywords=["TTS"],
                                   status=Status.active, confirmed_at=datetime.now(UTC)))
    assert _plan_latest_day(settings) == 24
    fake_sendgrid.fail_next(500, 5)
    fake_sendgrid.fail_next(400, 1000)
    transport = SendGridTransport(fake_sendgrid.api_key, fake_sendgrid.url)
    report = sending.send_due(settings=settings, transport=transport)
    pause = sending.PAUSE_AFTER_FAILURES_IN_A_ROW
    assert fake_sendgrid.requests == 5 + 1 + (pause - 5)  # the shared one, then one by one
    assert (report.sent, report.failed, report.retried) == (0, pause - 5, 5 + 24 - (pause - 5))
    with session_scope(settings.sqlalchemy_url) as session:
        rows = session.exec(select(ledger.Delivery).join(
            Subscriber, col(Subscriber.id) == col(ledger.Delivery.subscriber_id)
        ).where(col(Subscriber.email).startswith("reader"))).all()
    failed = [r for r in rows if r.status == ledger.DeliveryStatus.failed]
    untried = [r for r in rows if r.last_error == "not tried: the run paused"]
    assert (len(failed), len(untried)) == (pause - 5, 24 - (pause - 5))
    assert all(r.status == ledger.DeliveryStatus.planned
               and r.next_attempt_at > datetime.now(UTC) for r in untried)


def test_suspects_failing_one_by_one_reach_the_pause_too(
    migrated: Settings, fake_sendgrid: FakeSendGrid
) -> None:
    """Rows whose claims lapsed twice go out alone; in an outage they fail one by one, and
    twenty of them in a row pause the run as any twenty failed requests would."""
    settings = migrated.model_copy(update={"lookback_days": 30})
    _stock(settings, *[(f"reader{n}@example.org", ["TTS", f"zyxq{n}"], "UTC", 7)
                       for n in range(24)])
    assert _plan_latest_day(settings) == 24
    with session_scope(settings.sqlalchemy_url) as session:
        session.execute(update(ledger.Delivery).values(
            status=ledger.DeliveryStatus.sending, attempts=ledger.SUSPECT_AFTER,
            lease_until=datetime.now(UTC) - timedelta(minutes=1)))
    fake_sendgrid.fail_next(500, 1000)
    transport = SendGridTransport(fake_sendgrid.api_key, fake_sendgrid.url)
    report = sending.send_due(settings=settings, transport=transport)
    assert report.paused and "paused after 20 failed sends in a row" in report.paused
    assert (report.sent, report.retried) == (0, sending.PAUSE_AFTER_FAILURES_IN_A_ROW)
    assert fake_sendgrid.requests == sending.PAUSE_AFTER_FAILURES_IN_A_ROW


@pytest.mark.parametrize("db_settings", ["postgres"], indirect=True)  # two waves: PostgreSQL
def test_two_waves_on_the_wire_never_carry_the_run_past_the_pause(
    migrated: Settings, fake_sendgrid: FakeSendGrid
) -> None:
    """Once mail was accepted, a second wave goes out beside the first; if the provider then
    fails everything, both waves fail together. Two waves of 16 requests would be 32
    failures before the pause: overlapping waves must fit in it together."""
    width = 16
    settings = migrated.model_copy(update={"lookback_days": 30, "send_concurrency": width})
    _stock(settings, *[(f"reader{n}@example.org", ["TTS", f"zyxq{n}"], "UTC", 7)
                       for n in range(4 * width)])
    assert _plan_latest_day(settings) == 4 * width
    fake_sendgrid.fail_next(500, 1000, after=width)  # the first wave goes through
    transport = SendGridTransport(fake_sendgrid.api_key, fake_sendgrid.url)
    report = sending.send_due(settings=settings, transport=transport)
    pause = sending.PAUSE_AFTER_FAILURES_IN_A_ROW
    assert report.paused and f"paused after {pause} failed sends in a row" in report.paused
    # The first 16 answers may come back to requests of two waves: failures before the
    # last acceptance do not count towards the pause, so a few more rows may be retried.
    assert report.sent == width and pause <= report.retried < pause + width


@pytest.mark.parametrize("db_settings", ["postgres"], indirect=True)  # two waves: PostgreSQL
def test_after_failed_requests_one_wave_at_a_time_until_mail_is_accepted_again(
    migrated: Settings, fake_sendgrid: FakeSendGrid
) -> None:
    """A wave goes on the wire beside the one before it only while mail is being accepted:
    after a wave whose requests failed, the next goes out alone (what a crash repeats, and the
    failures the pause counts, stay one wave's), and two again once a request is accepted."""
    width = 4  # four requests a wave (one reader each), four pool threads
    settings = migrated.model_copy(update={"lookback_days": 30, "send_concurrency": width})
    readers = 8 * width
    _stock(settings, *[(f"reader{n}@example.org", ["TTS", f"zyxq{n}"], "UTC", 7)
                       for n in range(readers)])
    assert _plan_latest_day(settings) == readers
    # Half the answers are quick: their threads take up the next wave's requests at once if
    # it was launched beside, while the slow half of the wave before is still on the wire.
    fake_sendgrid.delay = (0.05, 0.8)
    fake_sendgrid.fail_next(500, 3 * width, after=2 * width)  # waves 3, 4 and 5 fail
    transport = SendGridTransport(fake_sendgrid.api_key, fake_sendgrid.url)
    report = sending.send_due(settings=settings, transport=transport, batch_size=readers)
    assert (report.sent, report.retried, report.paused) == (readers - 3 * width, 3 * width, None)
    arrivals = fake_sendgrid.in_flight_at_arrival
    assert len(arrivals) == readers
    # Each wave's first request: did it find the wire busy with the wave before?
    beside = [arrivals[first] > 0 for first in range(0, readers, width)]
    # 1 alone until mail was accepted; 2 alone (launched after 1 settled); 3 beside 2; 4
    # launched beside 3 before 3's failures were known; 5 and 6 alone after failures; 7
    # alone, launched once 6's acceptance settled; 8 beside 7 again.
    assert beside[:3] == [False, False, True]
    assert beside[4:8] == [False, False, False, True]


def test_one_failed_request_for_many_equal_digests_counts_as_one_failure(
    migrated: Settings, fake_sendgrid: FakeSendGrid
) -> None:
    settings = migrated.model_copy(update={"lookback_days": 30})
    _stock(settings, *[(f"reader{n}@example.org", ["TTS"], "UTC", 7) for n in range(24)])
    assert _plan_latest_day(settings) == 24
    fake_sendgrid.fail_next(500, 1)
    transport = SendGridTransport(fake_sendgrid.api_key, fake_sendgrid.url)
    report = sending.send_due(settings=settings, transport=transport)
    # The 24 equal digests travel in one request: its 500 retries them all, no pause.
    assert (report.retried, report.sent, report.paused) == (24, 0, None)
    assert fake_sendgrid.requests == 1
    with session_scope(settings.sqlalchemy_url) as session:  # the retry time has come
        session.execute(update(ledger.Delivery).values(next_attempt_at=datetime.now(UTC)))
    again = sending.send_due(settings=settings, transport=transport)
    assert (again.sent, again.failed) == (24, 0)
    assert sum(len(a.body["personalizations"]) for a in fake_sendgrid.accepted) == 24


def test_a_timed_run_sends_whole_batches_then_hands_over(
    migrated: Settings, fake_sendgrid: FakeSendGrid
) -> None:
    settings = migrated.model_copy(update={"lookback_days": 30})
    _stock(settings, *[(f"reader{n}@example.org", ["TTS"], "UTC", 7) for n in range(5)])
    assert _plan_latest_day(settings) == 5
    transport = SendGridTransport(fake_sendgrid.api_key, fake_sendgrid.url)
    first = sending.send_due(settings=settings, transport=transport, batch_size=2, run_for=0)
    assert (first.sent, first.more) == (2, True)  # one whole batch, then time is up
    with session_scope(settings.sqlalchemy_url) as session:
        rows = list(session.exec(select(ledger.Delivery)))
    # Nothing claimed and left behind: on PostgreSQL the next batch was claimed while the
    # first was sent, and it is handed back untried (no attempt counted), due now.
    waiting = [r for r in rows if r.status == ledger.DeliveryStatus.planned]
    assert len(waiting) == 3 and {r.attempts for r in waiting} == {0}
    assert all(r.next_attempt_at <= datetime.now(UTC) for r in waiting)
    rest = sending.send_due(settings=settings, transport=transport, batch_size=2)
    assert (rest.sent, rest.more) == (3, False)
    assert len(fake_sendgrid.personalizations()) == 5


def test_planning_in_small_chunks_plans_the_same_digests(migrated: Settings) -> None:
    settings = migrated.model_copy(update={"lookback_days": 30, "plan_chunk_size": 2})
    profiles = [["TTS"], ["speech synthesis", "prosody"], ["TTS"], ["audio codec"], ["ASR"]]
    _stock(settings, *[(f"r{n}@example.org", kw, "UTC", 7) for n, kw in enumerate(profiles)])
    with session_scope(settings.sqlalchemy_url) as session:
        day = latest_announcement(session=session)
    assert day is not None
    chunks: list[int] = []
    report = planning.plan_daily(
        settings=settings, day=day, on_chunk=lambda so_far: chunks.append(so_far.due)
    )
    assert chunks == [2, 4, 5]  # three committed chunks, each reported as it lands
    with session_scope(settings.sqlalchemy_url) as session:
        small = {r.subscriber_id: r.payload for r in session.exec(select(ledger.Delivery))}
    assert report.planned == len(small) >= 3
    # A large slot (the beat path) is split the same way: one subscriber at a time here.
    one_by_one = settings.model_copy(update={"plan_chunk_size": 1})
    slot = planning.Slot("daily", day.isoformat(), day, settings.lookback_days)
    with session_scope(settings.sqlalchemy_url) as session:
        subscribers = list(session.exec(select(Subscriber).order_by(col(Subscriber.id))))
        again = planning.plan_slot(
            session=session, settings=one_by_one, slot=slot, subscribers=subscribers
        )
    assert (again.due, again.planned, again.already_planned) == (5, 0, len(small))


@pytest.mark.postgres
@pytest.mark.parametrize("db_settings", ["postgres"], indirect=True)  # a lock timeout
def test_a_run_that_fails_mid_way_records_what_already_went_out(
    migrated: Settings, tmp_path: Path
) -> None:
    """The database refuses the second wave (its papers are locked past the lock timeout)
    while the first is on the wire: the run ends with the error, and the first wave's
    outcome is committed before it, so that mail is not sent again after its lease."""
    settings = migrated.model_copy(update={"lookback_days": 30, "send_concurrency": 1})
    [ada] = _stock(settings, ("ada@example.org", ["TTS"], "UTC", 7))
    with session_scope(settings.sqlalchemy_url) as session:  # planned first: the first wave
        plan_account_mail(session=session, subscriber_id=ada, kind=AccountMail.already)
    assert _plan_latest_day(settings) == 1  # her digest: the second wave, which reads papers
    impatient = settings.model_copy(
        update={"database_url": settings.database_url + "%20-clock_timeout%3D300"})
    locker = create_engine(settings.sqlalchemy_url)
    try:
        with locker.connect() as connection, connection.begin():
            connection.execute(text("LOCK TABLE paper IN ACCESS EXCLUSIVE MODE"))
            with pytest.raises(OperationalError, match="lock timeout"):
                sending.send_due(settings=impatient, transport=OutboxTransport(tmp_path))
    finally:
        locker.dispose()
        get_engine(impatient.sqlalchemy_url).dispose()
    with session_scope(settings.sqlalchemy_url) as session:
        rows = {row.kind: row for row in session.exec(select(ledger.Delivery))}
    assert rows[AccountMail.already].status == ledger.DeliveryStatus.sent
    assert rows["daily"].status == ledger.DeliveryStatus.sending  # back after its lease
    assert len(list(tmp_path.glob("*.eml"))) == 1


def test_a_refused_shared_request_that_reaches_the_pause_keeps_the_next_wave_off_the_wire(
    migrated: Settings, fake_sendgrid: FakeSendGrid
) -> None:
    """A refused request for 24 equal digests is tried again one reader at a time: twenty
    refusals in a row reach the pause while the next wave is already rendered. That wave
    must not go out into the same refusals: its rows are released, untried."""
    settings = migrated.model_copy(update={"lookback_days": 30, "send_concurrency": 1})
    _stock(settings, *[(f"reader{n}@example.org", ["TTS"], "UTC", 7) for n in range(24)])
    assert _plan_latest_day(settings) == 24  # equal digests: one shared request, first ids
    with session_scope(settings.sqlalchemy_url) as session:
        for n in range(3):  # planned after them: the waves that follow
            session.add(Subscriber(email=f"other{n}@example.org", keywords=["TTS", f"zyxq{n}"],
                                   status=Status.active, confirmed_at=datetime.now(UTC)))
    assert _plan_latest_day(settings) == 3
    fake_sendgrid.fail_next(400, 1000)
    transport = SendGridTransport(fake_sendgrid.api_key, fake_sendgrid.url)
    report = sending.send_due(settings=settings, transport=transport)
    assert report.paused and "failed sends in a row" in report.paused
    assert fake_sendgrid.requests == 1 + sending.PAUSE_AFTER_FAILURES_IN_A_ROW
    with session_scope(settings.sqlalchemy_url) as session:
        others = session.exec(select(ledger.Delivery).join(
            Subscriber, col(Subscriber.id) == col(ledger.Delivery.subscriber_id)
        ).where(col(Subscriber.email).startswith("other"))).all()
    assert len(others) == 3
    assert all(r.status == ledger.DeliveryStatus.planned and r.last_error is None
               and r.next_attempt_at > datetime.now(UTC) for r in others)


def test_a_wave_whose_share_key_split_into_more_requests_still_goes_out(
    migrated: Settings, fake_sendgrid: FakeSendGrid
) -> None:
    """A wave is sized by share keys; a reader who changed keywords after planning gets a
    render of their own, so a key can become two requests. A wave that full, with nothing
    failing, must still go out: held back, it would be taken and rendered again for ever."""
    width = sending.PAUSE_AFTER_FAILURES_IN_A_ROW
    settings = migrated.model_copy(update={"lookback_days": 30, "send_concurrency": width})
    _stock(settings, *[(f"pair{n}@example.org", ["TTS"], "UTC", 7) for n in range(2)],
           *[(f"reader{n}@example.org", ["TTS", f"zyxq{n}"], "UTC", 7)
             for n in range(width - 1)])
    assert _plan_latest_day(settings) == width + 1  # width share keys: the pair shares one
    with session_scope(settings.sqlalchemy_url) as session:
        session.execute(update(Subscriber).where(col(Subscriber.email) == "pair1@example.org")
                        .values(keywords=["TTS", "speech synthesis"]))
    transport = SendGridTransport(fake_sendgrid.api_key, fake_sendgrid.url)
    done: list[sending.SendReport] = []
    runner = threading.Thread(target=lambda: done.append(
        sending.send_due(settings=settings, transport=transport)), daemon=True)
    runner.start()
    runner.join(60)
    assert done, "the sender did not finish: the wave was held back again and again"
    assert done[0].sent == width + 1
    assert fake_sendgrid.requests == width + 1


def test_the_senders_rule_for_who_gets_the_digest_is_receives_mail(migrated: Settings) -> None:
    """The sender reads its readers with `receives_mail_where` (SQL) while the planner asks
    `Subscriber.receives_mail`: the two say the same of every kind of subscriber."""
    from subscribers.models import receives_mail_where

    today = datetime(2026, 1, 29, tzinfo=UTC).date()
    with session_scope(migrated.sqlalchemy_url) as session:
        for number, (status, paused, digest) in enumerate(
            (status, paused, digest)
            for status in Status
            for paused in (None, today - timedelta(days=1), today, today + timedelta(days=1))
            for digest in (True, False)
        ):
            session.add(Subscriber(email=f"s{number}@example.org", status=status,
                                   paused_until=paused, digest=digest, keywords=["TTS"]))
    with session_scope(migrated.sqlalchemy_url) as session:
        everyone = list(session.exec(select(Subscriber)))
        by_sql = set(session.exec(select(Subscriber.id).where(receives_mail_where(today))))
    assert len(everyone) == 8 * len(Status)
    assert by_sql == {s.id for s in everyone if s.receives_mail(today)}
    assert by_sql  # some do, and some do not
    assert len(by_sql) < len(everyone)
