"""The monthly issue through the ledger: SendGrid batches of 1,000, outbox one by one."""

from __future__ import annotations

import email
from collections import Counter
from datetime import date, timedelta
from email import policy
from typing import Any

import pytest
from sqlalchemy import update
from sqlmodel import col, select

from core.db import session_scope
from core.settings import Settings
from digest.clippings.issue import approve_issue, draft_issue, get_issue
from digest.clippings.models import IssueStatus
from emails.links import PLACEHOLDERS
from emails.transports.outbox import OutboxTransport
from emails.transports.sendgrid import SendGridTransport
from subscribers.ledger import Delivery, DeliveryStatus, count_open
from subscribers.models import Status, Subscriber, Suppression, email_hash
from subscribers.monthly import plan_monthly
from subscribers.tokens import Purpose, read_token
from tests.support.fake_sendgrid import FakeSendGrid
from tests.support.monthly_data import MONTH, add_subscribers, sample_clips
from workers import sending
from workers.cli_monthly import _due_now

ELIGIBLE = 1203


def _approved_issue_with_audience(settings: Settings, eligible: int) -> dict[str, int]:
    """An approved issue; `eligible` subscribers who want it and five kinds who must not."""
    with session_scope(settings.sqlalchemy_url) as session:
        session.add_all(sample_clips())
        draft_issue(session=session, month=MONTH, intro="April, briefly.")
        approve_issue(session=session, month=MONTH)
        people = add_subscribers(session, eligible)
        add_subscribers(session, 1, prefix="optout", monthly=False)
        add_subscribers(session, 1, prefix="pending", status=Status.pending)
        add_subscribers(session, 1, prefix="left", status=Status.unsubscribed)
        paused = date.today() + timedelta(days=3)
        add_subscribers(session, 1, prefix="paused", paused_until=paused)
        add_subscribers(session, 1, prefix="suppressed")
        session.add(Suppression(email_hash=email_hash("suppressed0@example.org")))
        return {p.email: p.id or 0 for p in people}


def _plan(settings: Settings) -> int:
    with session_scope(settings.sqlalchemy_url) as session:
        issue = get_issue(session=session, month=MONTH)
        assert issue is not None
        return plan_monthly(session=session, issue=issue)


def _check_personalization(
    settings: Settings, item: dict[str, Any], ids: dict[str, int], rows: dict[int, int]
) -> str:
    """One recipient's own links: tokens that verify to them, the delivery id of their row."""
    address = item["to"][0]["email"]
    sid = ids[address]
    subs = item["substitutions"]
    keys = settings.signing_keys()
    manage = subs[PLACEHOLDERS.manage_url].rsplit("/manage/", 1)[1]
    leave = subs[PLACEHOLDERS.unsubscribe_url].rsplit("/unsubscribe/", 1)[1]
    assert read_token(keys=keys, purpose=Purpose.manage, token=manage) == (sid, "")
    # The monthly issue's unsubscribe stops the monthly issue only (issue 16).
    assert read_token(keys=keys, purpose=Purpose.unsubscribe,
                      token=leave) == (sid, "list:monthly")
    assert item["headers"]["List-Unsubscribe"] == f"<{subs[PLACEHOLDERS.one_click_url]}>"
    assert item["custom_args"] == {"delivery_id": str(rows[sid]), "kind": "monthly",
                                   "month": MONTH}
    return str(address)


def _ledger(settings: Settings) -> list[Delivery]:
    with session_scope(settings.sqlalchemy_url) as session:
        return list(session.exec(select(Delivery).where(Delivery.kind == "monthly")))


def test_sendgrid_batches_each_recipient_once(
    migrated: Settings, fake_sendgrid: FakeSendGrid
) -> None:
    ids = _approved_issue_with_audience(migrated, ELIGIBLE)
    assert _plan(migrated) == ELIGIBLE
    assert _plan(migrated) == 0  # planned once; the issue is sent now
    with SendGridTransport(fake_sendgrid.api_key, fake_sendgrid.url) as transport:
        report = sending.send_due(settings=migrated, transport=transport)
        assert (report.sent, report.failed, report.retried) == (ELIGIBLE, 0, 0)
        again = sending.send_due(settings=migrated, transport=transport)
        assert again.handled == 0
    assert fake_sendgrid.invalid == []
    accepted = fake_sendgrid.accepted
    # Claims of 200 rows that are all one render grow (400, 800...) up to one full request;
    # requests overlap on the wire, so they may arrive in any order.
    sizes = [len(a.body["personalizations"]) for a in accepted]
    assert sorted(sizes) == [200, 400, ELIGIBLE - 600]
    body = accepted[sizes.index(ELIGIBLE - 600)].body
    assert body["subject"] == "Clippings - April 2026"
    html = body["content"][1]["value"]
    assert PLACEHOLDERS.manage_url in html and PLACEHOLDERS.unsubscribe_url in html
    assert "http://digest.test/archive/2026-04" in html
    rows = {d.subscriber_id: d.id or 0 for d in _ledger(migrated)}
    seen = [
        _check_personalization(migrated, item, ids, rows)
        for item in fake_sendgrid.personalizations()
    ]
    assert sorted(seen) == sorted(ids)  # everyone who opted in, nobody else, once
    assert {d.status for d in _ledger(migrated)} == {DeliveryStatus.sent}
    with session_scope(migrated.sqlalchemy_url) as session:
        issue = get_issue(session=session, month=MONTH)
        assert issue is not None and issue.status == IssueStatus.sent


def test_failed_request_loses_and_doubles_nobody(
    migrated: Settings, fake_sendgrid: FakeSendGrid
) -> None:
    ids = _approved_issue_with_audience(migrated, 2100)
    _plan(migrated)
    fake_sendgrid.fail_next(500, after=1)  # the second request of the first claim fails
    with SendGridTransport(fake_sendgrid.api_key, fake_sendgrid.url) as transport:
        # One claim of 2,100 rows: requests of 1,000, 1,000 and 100, two on the wire at once
        # (either may arrive second); the refused one goes back to the queue, the others keep
        # their outcome.
        report = sending.send_due(settings=migrated, transport=transport, batch_size=2500)
        assert report.retried in (1000, 100) and report.sent == 2100 - report.retried
        assert not report.paused
        statuses = Counter(d.status for d in _ledger(migrated))
        assert statuses == {DeliveryStatus.sent: report.sent,
                            DeliveryStatus.planned: report.retried}
        with session_scope(migrated.sqlalchemy_url) as session:  # `send --wait` stops here
            assert count_open(session=session, kind="monthly", period=MONTH) == report.retried
            assert _due_now(session, MONTH) == 0
        assert sending.send_due(settings=migrated, transport=transport).handled == 0
        with session_scope(migrated.sqlalchemy_url) as session:  # the retry time comes
            session.execute(
                update(Delivery)
                .where(col(Delivery.status) == DeliveryStatus.planned)
                .values(next_attempt_at=Delivery.created_at)
            )
        final = sending.send_due(settings=migrated, transport=transport)
        assert (final.sent, final.failed, final.retried) == (report.retried, 0, 0)
    sizes = [len(a.body["personalizations"]) for a in fake_sendgrid.accepted]
    assert max(sizes) == 1000 and sum(sizes) == 2100  # never more than SendGrid takes
    sent_to = [p["to"][0]["email"] for p in fake_sendgrid.personalizations()]
    assert len(sent_to) == len(set(sent_to)) == 2100
    assert set(sent_to) == set(ids)
    assert {d.status for d in _ledger(migrated)} == {DeliveryStatus.sent}


@pytest.mark.slow
def test_a_failed_request_among_requests_in_flight_loses_and_doubles_nobody(
    migrated: Settings, fake_sendgrid: FakeSendGrid
) -> None:
    ids = _approved_issue_with_audience(migrated, 4000)
    _plan(migrated)
    fake_sendgrid.fail_next(500, after=1)  # the second request to arrive, whichever it is
    with SendGridTransport(fake_sendgrid.api_key, fake_sendgrid.url) as transport:
        # The next request is already on the wire when the failure comes back: it keeps its
        # own outcome; one failed request does not pause the run (twenty in a row do).
        report = sending.send_due(settings=migrated, transport=transport)
        assert not report.paused and report.sent + report.retried == 4000
        assert 0 < report.retried <= 1000  # one request's recipients
        statuses = Counter(d.status for d in _ledger(migrated))
        assert statuses[DeliveryStatus.sent] == report.sent
        assert statuses[DeliveryStatus.planned] == 4000 - report.sent
        assert DeliveryStatus.sending not in statuses  # every claim settled
        with session_scope(migrated.sqlalchemy_url) as session:  # the retry time comes
            session.execute(
                update(Delivery)
                .where(col(Delivery.status) == DeliveryStatus.planned)
                .values(next_attempt_at=Delivery.created_at)
            )
        final = sending.send_due(settings=migrated, transport=transport)
        assert (final.sent, final.failed, final.retried) == (4000 - report.sent, 0, 0)
    sent_to = [p["to"][0]["email"] for p in fake_sendgrid.personalizations()]
    assert len(sent_to) == len(set(sent_to)) == 4000 and set(sent_to) == set(ids)
    assert {d.status for d in _ledger(migrated)} == {DeliveryStatus.sent}


def test_one_refused_address_fails_alone(migrated: Settings, fake_sendgrid: FakeSendGrid) -> None:
    ids = _approved_issue_with_audience(migrated, 5)
    with session_scope(migrated.sqlalchemy_url) as session:
        add_subscribers(session, 1, prefix="broken")
    with session_scope(migrated.sqlalchemy_url) as session:  # e.g. imported long ago
        session.execute(
            update(Subscriber)
            .where(col(Subscriber.email) == "broken0@example.org")
            .values(email="not-an-address")
        )
    _plan(migrated)
    fake_sendgrid.fail_next(400)  # SendGrid refuses the batch...
    fake_sendgrid.fail_next(400, after=2)  # ...and, sent alone, the third address
    with SendGridTransport(fake_sendgrid.api_key, fake_sendgrid.url) as transport:
        report = sending.send_due(settings=migrated, transport=transport)
    assert (report.sent, report.failed, report.retried) == (4, 2, 0)
    sent_to = sorted(p["to"][0]["email"] for p in fake_sendgrid.personalizations())
    assert len(sent_to) == 4 and set(sent_to) < set(ids)
    errors = sorted(d.last_error or "" for d in _ledger(migrated) if d.status == "failed")
    assert errors[0].startswith("SendGrid 400") and errors[1] == "not an email address"


def test_a_refused_request_stops_after_failures_in_a_row(
    migrated: Settings, fake_sendgrid: FakeSendGrid
) -> None:
    _approved_issue_with_audience(migrated, 30)
    _plan(migrated)
    with SendGridTransport("SG.revoked-key", fake_sendgrid.url) as transport:
        report = sending.send_due(settings=migrated, transport=transport)
    assert (report.sent, report.failed) == (0, 30)
    assert fake_sendgrid.connections <= 2  # one pool; not thirty tries per address


def test_outbox_gets_one_filled_message_each(migrated: Settings) -> None:
    ids = _approved_issue_with_audience(migrated, 3)
    _plan(migrated)
    with session_scope(migrated.sqlalchemy_url) as session:  # one leaves before the send
        session.execute(
            update(Delivery)
            .where(col(Delivery.subscriber_id) == ids["sub2@example.org"])
            .values(payload={"issue_id": -1})
        )
    transport = OutboxTransport(migrated.outbox_path)
    assert transport.batch_limit == 1
    report = sending.send_due(settings=migrated, transport=transport)
    assert (report.sent, report.skipped) == (2, 1)
    files = sorted(migrated.outbox_path.glob("*.eml"))
    assert len(files) == 2
    keys = migrated.signing_keys()
    for path in files:
        parsed = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        sid = ids[str(parsed["To"])]
        text = parsed.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        html = parsed.get_body(("html",)).get_content()  # type: ignore[union-attr]
        assert "placeholder.invalid" not in html + text
        token = text.split("/manage/", 1)[1].split()[0]
        assert read_token(keys=keys, purpose=Purpose.manage, token=token) == (sid, "")
        leave = parsed["List-Unsubscribe"].strip("<>").rsplit("/", 1)[1]
        # The monthly issue's unsubscribe stops the monthly issue only (issue 16).
        assert read_token(keys=keys, purpose=Purpose.unsubscribe,
                          token=leave) == (sid, "list:monthly")
        assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert sending.send_due(settings=migrated, transport=transport).handled == 0


def test_draft_issue_is_not_planned(migrated: Settings) -> None:
    with session_scope(migrated.sqlalchemy_url) as session:
        session.add_all(sample_clips())
        issue = draft_issue(session=session, month=MONTH)
        with pytest.raises(ValueError, match="approve it first"):
            plan_monthly(session=session, issue=issue)
