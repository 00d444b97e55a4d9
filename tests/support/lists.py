"""Two lists, one subscriber: someone signed up on the page (to the digest, and to the monthly
issue unless told otherwise), their digest and their monthly email from the real sender, and
the RFC 8058 one-click a mail provider posts. Shared by the unsubscribe and resume tests.
"""

from __future__ import annotations

from email.message import EmailMessage

from sqlmodel import col, select

from core.db import session_scope
from core.settings import Settings
from digest.clippings.issue import approve_issue, draft_issue, get_issue
from subscribers.models import ConsentEvent, Subscriber
from subscribers.monthly import plan_monthly
from subscribers.service import confirm
from tests.support.monthly_data import MONTH, sample_clips
from tests.support.outbox import send
from tests.support.web_app import DAY, client_for, form_token, free_period_slots, signup_form
from workers import planning

ADA = "ada@example.org"


def subscribed(settings: Settings, *, monthly: bool = True) -> int:
    client = client_for(settings)
    client.post("/subscribe", data=signup_form(form_token(client), keywords="speech synthesis",
                                               monthly="yes" if monthly else ""))
    with session_scope(settings.sqlalchemy_url) as session:
        sid = session.exec(select(Subscriber.id).where(Subscriber.email == ADA)).one() or 0
        confirm(session=session, subscriber_id=sid)
    send(settings)  # the confirmation, out of the way
    free_period_slots(settings)
    return sid


def stored(settings: Settings) -> Subscriber:
    with session_scope(settings.sqlalchemy_url) as session:
        return session.exec(select(Subscriber).where(Subscriber.email == ADA)).one()


def last_consent(settings: Settings) -> tuple[str, str, str]:
    with session_scope(settings.sqlalchemy_url) as session:
        event = session.exec(select(ConsentEvent).order_by(col(ConsentEvent.id).desc())).first()
        assert event is not None
        return event.action.value, event.channel, event.lists


def monthly_email(settings: Settings) -> EmailMessage:
    before = len(send(settings))
    with session_scope(settings.sqlalchemy_url) as session:
        session.add_all(sample_clips())
        draft_issue(session=session, month=MONTH, intro="April, briefly.")
        approve_issue(session=session, month=MONTH)
        issue = get_issue(session=session, month=MONTH)
        assert issue is not None
        assert plan_monthly(session=session, issue=issue) == 1
    messages = send(settings)
    assert len(messages) == before + 1, "one monthly issue"
    return messages[-1]


def daily_email(settings: Settings) -> EmailMessage:
    before = len(send(settings))
    planning.plan_daily(settings=settings, day=DAY)
    messages = send(settings)
    assert len(messages) == before + 1, "one digest"
    return messages[-1]


def one_click(settings: Settings, message: EmailMessage) -> int:
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url = message["List-Unsubscribe"].strip("<>").removeprefix("http://digest.test")
    # A mail provider's POST: no cookie, no CSRF token.
    return client_for(settings).post(url, data={"List-Unsubscribe": "One-Click"}).status_code
