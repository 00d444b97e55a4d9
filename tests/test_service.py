"""Subscriber lifecycle in the service layer, on SQLite and PostgreSQL: signup with double
opt-in, the per-address mail limit, confirm, unsubscribe, profile edits, pause, address change,
export, erasure with suppression, pruning, and ids that never come back."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import update
from sqlmodel import Session, col, func, select

from core.db import session_scope
from core.settings import Settings
from subscribers import ledger
from subscribers.models import (
    AddressMail,
    ConsentAction,
    ConsentEvent,
    Frequency,
    PendingEmail,
    Status,
    Subscriber,
    SubscriberCreate,
    SubscriberUpdate,
    Suppression,
    utcnow,
)
from subscribers.privacy import (
    AddressTaken,
    confirm_email_change,
    erase,
    export_data,
    prune_unconfirmed,
    request_email_change,
    request_export,
)
from subscribers.service import (
    InvalidInput,
    SignupOutcome,
    add_subscriber,
    confirm,
    pause,
    resubscribe,
    subscribe,
    unsubscribe,
    update_profile,
)
from tests.support.web_app import free_period_slots

ADA = "ada@example.org"


def signup(settings: Settings, email: str = ADA, keywords: list[str] | None = None,
           **profile: object) -> SignupOutcome:
    create = SubscriberCreate(email=email, keywords=keywords or ["speech synthesis", "TTS"],
                              **profile)
    with session_scope(settings.sqlalchemy_url) as session:
        outcome = subscribe(session=session, subscriber_create=create)
    free_period_slots(settings)  # as if each signup came a while after the last
    return outcome


def subscriber(session: Session, email: str = ADA) -> Subscriber:
    return session.exec(select(Subscriber).where(Subscriber.email == email)).one()


def mails(session: Session, kind: str) -> list[ledger.Delivery]:
    return list(session.exec(select(ledger.Delivery).where(ledger.Delivery.kind == kind)))


def consent(session: Session, subscriber_id: int) -> list[tuple[str, str]]:
    events = session.exec(select(ConsentEvent).where(ConsentEvent.subscriber_id == subscriber_id)
                          .order_by(col(ConsentEvent.id)))
    return [(e.action.value, e.channel) for e in events]


def test_signup_is_pending_with_one_confirmation_planned(migrated: Settings) -> None:
    assert signup(migrated, email="Ada@Example.org", timezone="Europe/Paris",
                  send_hour=6) == SignupOutcome.created
    with session_scope(migrated.sqlalchemy_url) as session:
        ada = subscriber(session)
        assert (ada.status, ada.timezone, ada.send_hour) == (Status.pending, "Europe/Paris", 6)
        assert ada.confirmed_at is None
        assert [(m.subscriber_id, m.status) for m in mails(session, "confirm")] == [
            (ada.id, ledger.DeliveryStatus.planned)]
        assert consent(session, ada.id or 0) == [("signup", "web")]


def test_a_pending_address_takes_the_newest_signup_and_gets_three_mails_a_day(
        migrated: Settings) -> None:
    outcomes = [signup(migrated)] + [signup(migrated, keywords=[f"topic {n}"], frequency="weekly")
                                     for n in range(4)]
    assert outcomes == [SignupOutcome.created, SignupOutcome.resent, SignupOutcome.resent,
                        SignupOutcome.limited, SignupOutcome.limited]
    with session_scope(migrated.sqlalchemy_url) as session:
        ada = subscriber(session)
        # Unconfirmed, so the newest signup's choices win (issue 16).
        assert ada.keywords == ["topic 3"]
        assert ada.frequency == Frequency.weekly
        assert len(mails(session, "confirm")) == 3
        # A day later the owner can ask again.
        session.execute(update(AddressMail).values(
            created_at=utcnow() - timedelta(days=1, minutes=1)))
    assert signup(migrated) == SignupOutcome.resent


def test_an_active_address_gets_a_reminder_not_a_new_profile(migrated: Settings) -> None:
    signup(migrated)
    with session_scope(migrated.sqlalchemy_url) as session:
        confirm(session=session, subscriber_id=subscriber(session).id or 0)
    assert signup(migrated, keywords=["something else"]) == SignupOutcome.already
    with session_scope(migrated.sqlalchemy_url) as session:
        assert subscriber(session).keywords == ["speech synthesis", "TTS"]
        assert subscriber(session).status == Status.active
        assert len(mails(session, "already")) == 1


@pytest.mark.parametrize("status", [Status.bounced, Status.complained])
def test_bounced_or_complained_addresses_are_never_mailed_on_a_strangers_say_so(
    migrated: Settings, status: Status
) -> None:
    signup(migrated)
    with session_scope(migrated.sqlalchemy_url) as session:
        ada = subscriber(session)
        ada.status = status
        session.add(ada)
    assert signup(migrated) == SignupOutcome.quiet
    with session_scope(migrated.sqlalchemy_url) as session:
        assert len(mails(session, "confirm")) == 1


def test_signup_refuses_what_a_profile_must_not_hold(migrated: Settings) -> None:
    with pytest.raises(InvalidInput, match="time zone"):
        signup(migrated, timezone="Mars/Olympus_Mons")
    with pytest.raises(InvalidInput, match="time zone"):
        signup(migrated, timezone="../../etc/passwd")
    with pytest.raises(InvalidInput, match="at most 20"):
        signup(migrated, keywords=[f"keyword {n}" for n in range(25)])
    with pytest.raises(InvalidInput, match="under 100"):
        signup(migrated, keywords=["x" * 200])
    with pytest.raises(InvalidInput, match="plain email"):
        signup(migrated, email="Ada <ada@example.org>")
    with pytest.raises(InvalidInput, match="plain email"):
        signup(migrated, email="ada@example.org\r\nBcc: eve@example.org")
    with session_scope(migrated.sqlalchemy_url) as session:
        assert session.exec(select(func.count()).select_from(Subscriber)).one() == 0


def test_confirm_and_unsubscribe_are_idempotent_and_leave_a_trail(migrated: Settings) -> None:
    signup(migrated)
    with session_scope(migrated.sqlalchemy_url) as session:
        sid = subscriber(session).id or 0
        assert confirm(session=session, subscriber_id=sid) is not None
        assert confirm(session=session, subscriber_id=sid) is not None
        assert subscriber(session).status == Status.active
        unsubscribe(session=session, subscriber_id=sid, channel="one-click")
        unsubscribe(session=session, subscriber_id=sid, channel="one-click")
        assert subscriber(session).status == Status.unsubscribed
        resubscribe(session=session, subscriber_id=sid)
        assert consent(session, sid) == [("signup", "web"), ("confirm", "email-link"),
                                         ("unsubscribe", "one-click"),
                                         ("resubscribe", "manage-link")]
        assert confirm(session=session, subscriber_id=sid + 100) is None


def test_profile_update_validates_and_stores_keywords_literally(migrated: Settings) -> None:
    signup(migrated)
    hostile = ["<script>alert(1)</script>", "(a+)+$", ".*", "x" * 100]
    with session_scope(migrated.sqlalchemy_url) as session:
        sid = subscriber(session).id or 0
        update = SubscriberUpdate(keywords=hostile, frequency=Frequency.weekly, monthly=False,
                                  timezone="Asia/Tokyo", send_hour=22)
        update_profile(session=session, subscriber_id=sid, subscriber_update=update)
        ada = subscriber(session)
        assert (ada.keywords, ada.frequency, ada.monthly, ada.timezone, ada.send_hour) == (
            hostile, Frequency.weekly, False, "Asia/Tokyo", 22)
        with pytest.raises(InvalidInput):
            update_profile(session=session, subscriber_id=sid, subscriber_update=update.model_copy(
                update={"keywords": []}))


def test_pause_stops_mail_until_the_day_and_zero_weeks_resumes(migrated: Settings) -> None:
    signup(migrated)
    today = date(2026, 1, 29)
    with session_scope(migrated.sqlalchemy_url) as session:
        sid = subscriber(session).id or 0
        confirm(session=session, subscriber_id=sid)
        paused = pause(session=session, subscriber_id=sid, weeks=2, today=today)
        assert paused is not None and paused.paused_until == date(2026, 2, 12)
        assert not paused.receives_mail(today + timedelta(days=13))
        assert paused.receives_mail(date(2026, 2, 12))
        resumed = pause(session=session, subscriber_id=sid, weeks=0, today=today)
        assert resumed is not None and resumed.paused_until is None
        with pytest.raises(InvalidInput):
            pause(session=session, subscriber_id=sid, weeks=60, today=today)


def test_address_change_waits_for_the_new_address(migrated: Settings) -> None:
    signup(migrated)
    signup(migrated, email="grace@example.org")
    with session_scope(migrated.sqlalchemy_url) as session:
        sid = subscriber(session).id or 0
        change = request_email_change(session=session, subscriber_id=sid,
                                      new_email="Ada.Lovelace@Example.org")
        assert change is not None and change.new_email == "ada.lovelace@example.org"
        assert subscriber(session).email == ADA  # nothing changes before the confirmation
        [mail] = mails(session, "confirm-email")
        assert mail.payload == {"change_id": change.id}
        with pytest.raises(InvalidInput, match="already the address"):
            request_email_change(session=session, subscriber_id=sid, new_email=ADA)
        taken = request_email_change(session=session, subscriber_id=sid,
                                     new_email="grace@example.org")
        assert taken is not None
        with pytest.raises(AddressTaken):
            confirm_email_change(session=session, subscriber_id=sid, change_id=taken.id or 0)
    with session_scope(migrated.sqlalchemy_url) as session:
        changed = confirm_email_change(session=session, subscriber_id=sid,
                                       change_id=change.id or 0)
        assert changed is not None and changed.email == "ada.lovelace@example.org"
        assert session.exec(select(PendingEmail)).all() == []
        assert ("email_change", "email-link") in consent(session, sid)
        # The link works once: the request is gone afterwards.
        assert confirm_email_change(session=session, subscriber_id=sid,
                                    change_id=change.id or 0) is None


def test_an_expired_or_foreign_address_change_does_nothing(migrated: Settings) -> None:
    signup(migrated)
    signup(migrated, email="grace@example.org")
    with session_scope(migrated.sqlalchemy_url) as session:
        ada, grace = subscriber(session).id or 0, subscriber(session, "grace@example.org").id or 0
        change = request_email_change(session=session, subscriber_id=ada,
                                      new_email="new@example.org")
        assert change is not None
        assert confirm_email_change(session=session, subscriber_id=grace,
                                    change_id=change.id or 0) is None
        change.created_at = utcnow() - timedelta(days=8)
        session.add(change)
        session.flush()
        assert confirm_email_change(session=session, subscriber_id=ada,
                                    change_id=change.id or 0) is None
        assert subscriber(session).email == ADA


def test_export_holds_everything_and_is_limited_per_day(migrated: Settings) -> None:
    signup(migrated)
    with session_scope(migrated.sqlalchemy_url) as session:
        ada = subscriber(session)
        confirm(session=session, subscriber_id=ada.id or 0)
        data = export_data(session=session, subscriber=ada)
    assert data["subscriber"]["email"] == ADA
    assert data["subscriber"]["keywords"] == ["speech synthesis", "TTS"]
    assert [c["action"] for c in data["consent"]] == ["signup", "confirm"]
    assert [e["kind"] for e in data["emails"]] == ["confirm"]
    assert data["papers_sent"] == [] and data["saved_papers"] == []
    planned = []
    for _ in range(4):
        with session_scope(migrated.sqlalchemy_url) as session:
            planned.append(request_export(session=session, subscriber_id=ada.id or 0))
        free_period_slots(migrated)
    assert planned == [True, True, True, False]


def test_erase_deletes_everything_but_a_hash_that_blocks_imports(migrated: Settings) -> None:
    signup(migrated)
    with session_scope(migrated.sqlalchemy_url) as session:
        sid = subscriber(session).id or 0
        confirm(session=session, subscriber_id=sid)
        request_email_change(session=session, subscriber_id=sid, new_email="new@example.org")
        assert erase(session=session, subscriber_id=sid)
    with session_scope(migrated.sqlalchemy_url) as session:
        for table in (Subscriber, ConsentEvent, PendingEmail, ledger.Delivery):
            assert session.exec(select(func.count()).select_from(table)).one() == 0, table
        [kept] = session.exec(select(Suppression)).all()
        assert ADA not in kept.email_hash and len(kept.email_hash) == 64
        with pytest.raises(InvalidInput, match="erased"):
            add_subscriber(session=session, confirmed=True,
                           subscriber_create=SubscriberCreate(email=ADA, keywords=["tts"]))
    # The owner may come back by themselves: double opt-in, and the hash goes on confirmation.
    assert signup(migrated) == SignupOutcome.created
    with session_scope(migrated.sqlalchemy_url) as session:
        new_id = subscriber(session).id or 0
        assert new_id != sid, "an erased subscriber's id (and so their links) never come back"
        confirm(session=session, subscriber_id=new_id)
        assert session.exec(select(Suppression)).all() == []


def test_prune_forgets_week_old_unconfirmed_signups_only(migrated: Settings) -> None:
    for email in ("old@example.org", "recent@example.org", "kept@example.org",
                  "asked-again@example.org"):
        signup(migrated, email=email)
    week_ago = utcnow() - timedelta(days=8)
    with session_scope(migrated.sqlalchemy_url) as session:
        confirm(session=session, subscriber_id=subscriber(session, "kept@example.org").id or 0)
        session.execute(update(Subscriber).where(col(Subscriber.email) != "recent@example.org")
                        .values(created_at=week_ago))
        again = subscriber(session, "asked-again@example.org").id
        session.execute(update(ledger.Delivery).where(col(ledger.Delivery.subscriber_id) != again)
                        .values(created_at=week_ago))
        assert prune_unconfirmed(session=session) == 1
    with session_scope(migrated.sqlalchemy_url) as session:
        left = set(session.exec(select(Subscriber.email)))
    assert left == {"recent@example.org", "kept@example.org", "asked-again@example.org"}


def test_imports_record_consent(migrated: Settings) -> None:
    with session_scope(migrated.sqlalchemy_url) as session:
        added = add_subscriber(session=session, confirmed=True,
                               subscriber_create=SubscriberCreate(email=ADA, keywords=["tts"]))
        assert consent(session, added.id or 0) == [(ConsentAction.imported.value, "cli")]
