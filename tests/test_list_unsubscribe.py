"""The keyword digest and the monthly issue are left separately (issue 16, item 3).

The monthly email's unsubscribe (link and RFC 8058 one-click) stops the monthly issue, the
digest's stops the digest; the page offers "stop everything" as a second button; the consent
record names the list. Real emails from the sender in the outbox, the app over TestClient.
"""

from __future__ import annotations

from email.message import EmailMessage

from sqlmodel import col, select

from digest.clippings.issue import approve_issue, draft_issue, get_issue
from digest.db import session_scope
from digest.settings import Settings
from subscribers.models import ConsentEvent, Status, Subscriber
from subscribers.monthly import plan_monthly
from subscribers.service import confirm
from tests.monthly_data import MONTH, sample_clips
from tests.test_web_emails import send
from tests.test_web_signup import (  # noqa: F401
    DAY,
    client_for,
    form_token,
    free_period_slots,
    signup_form,
    web,
)
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


def test_the_monthly_one_click_stops_the_monthly_issue_only(web: Settings) -> None:  # noqa: F811
    subscribed(web)
    assert one_click(web, monthly_email(web)) == 200
    ada = stored(web)
    assert (ada.status, ada.monthly, ada.digest) == (Status.active, False, True)
    assert last_consent(web) == ("unsubscribe", "one-click", "monthly")
    daily_email(web)  # the digest keeps coming


def test_the_digest_one_click_stops_the_digest_only(web: Settings) -> None:  # noqa: F811
    subscribed(web)
    assert one_click(web, daily_email(web)) == 200
    ada = stored(web)
    assert (ada.status, ada.monthly, ada.digest) == (Status.active, True, False)
    assert last_consent(web) == ("unsubscribe", "one-click", "digest")
    # The planner and the sender skip whoever does not receive the digest.
    assert not ada.receives_mail(DAY) and ada.gets_mail(DAY)
    # The monthly issue still goes out.
    monthly_email(web)


def test_the_page_offers_that_list_or_everything(web: Settings) -> None:  # noqa: F811
    subscribed(web)
    message = monthly_email(web)
    url = message["List-Unsubscribe"].strip("<>").removeprefix("http://digest.test")
    client = client_for(web)
    page = client.get(url)
    assert page.status_code == 200
    assert "Stop the monthly clippings" in page.text and "Stop everything" in page.text
    assert stored(web).monthly is True  # opening the page changes nothing
    everything = page.text.split('action="')[2].split('"')[0]  # the second button
    assert client.post(everything, data={"List-Unsubscribe": "One-Click"}).status_code == 200
    ada = stored(web)
    assert ada.status == Status.unsubscribed
    assert last_consent(web) == ("unsubscribe", "one-click", "digest,monthly")


def test_leaving_the_only_list_is_leaving(web: Settings) -> None:  # noqa: F811
    subscribed(web, monthly=False)
    message = daily_email(web)
    url = message["List-Unsubscribe"].strip("<>").removeprefix("http://digest.test")
    page = client_for(web).get(url)
    assert "Stop everything" not in page.text  # one list: one button
    assert one_click(web, message) == 200
    assert stored(web).status == Status.unsubscribed
    assert last_consent(web) == ("unsubscribe", "one-click", "digest")
