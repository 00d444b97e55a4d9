"""A corrected signup wins; old confirmation links die; a double-click is one email (issue 16,
items 2 and 4). Through the app (TestClient) and the real sender writing to the outbox."""

from __future__ import annotations

import re
from datetime import timedelta
from email.message import EmailMessage

from sqlalchemy import update
from sqlmodel import select

from core.db import session_scope
from core.settings import Settings
from subscribers import ledger
from subscribers.models import Frequency, Status, Subscriber
from subscribers.web.pages import INVALID_LINK_STATUS
from tests.support.outbox import check_every_email_rule, parts, send
from tests.support.web_app import client_for, csrf_of, form_token, free_period_slots, signup_form

ADA = "ada@example.org"
LINK = re.compile(r"http://digest\.test(/[a-z]+/[A-Za-z0-9._-]+)")


def stored(settings: Settings) -> Subscriber:
    with session_scope(settings.sqlalchemy_url) as session:
        return session.exec(select(Subscriber).where(Subscriber.email == ADA)).one()


def link(message: EmailMessage, kind: str) -> str:
    text, _ = parts(message)
    return next(path for path in LINK.findall(text) if path.startswith(f"/{kind}/"))


def one_click(message: EmailMessage) -> str:
    return message["List-Unsubscribe"].strip("<>").removeprefix("http://digest.test")


def seconds_pass(settings: Settings) -> None:
    """Tokens are stamped in whole seconds: make the unsubscribe look a few seconds old, as
    it would be by the time a reader signs up again."""
    with session_scope(settings.sqlalchemy_url) as session:
        ada = session.exec(select(Subscriber).where(Subscriber.email == ADA)).one()
        assert ada.unsubscribed_at is not None
        session.execute(update(Subscriber).values(
            unsubscribed_at=ada.unsubscribed_at - timedelta(seconds=2)))
    free_period_slots(settings)


def sign_up(settings: Settings, **fields: str) -> None:
    client = client_for(settings)
    response = client.post("/subscribe", data=signup_form(form_token(client), **fields),
                           follow_redirects=False)
    assert response.status_code == 303


def press(settings: Settings, path: str) -> int:
    """Open a link and press its page's button, as a reader would."""
    client = client_for(settings)
    page = client.get(path)
    if page.status_code != 200:
        return page.status_code
    return client.post(path, data={"csrf": csrf_of(page.text)},
                       follow_redirects=False).status_code


def test_a_corrected_signup_before_confirming_wins(web: Settings) -> None:
    sign_up(web, keywords="speech synthsis")  # the typo
    [first] = send(web)
    free_period_slots(web)
    sign_up(web, keywords="speech synthesis\nprosody", frequency="weekly")
    second = send(web)[-1]
    check_every_email_rule(second, web)
    text, _ = parts(second)
    assert "speech synthesis, prosody" in text and "synthsis" not in text
    assert "Once a week" in text
    # Even the first email's link confirms what the reader asked for last.
    page = client_for(web).get(link(first, "confirm"))
    assert "prosody" in page.text and "synthsis" not in page.text
    assert press(web, link(first, "confirm")) == 303
    ada = stored(web)
    assert (ada.status, ada.keywords, ada.frequency) == (
        Status.active, ["speech synthesis", "prosody"], Frequency.weekly)


def test_signing_up_again_after_leaving_takes_the_new_choices(web: Settings) -> None:
    sign_up(web, keywords="speech synthesis", monthly="yes")
    [confirmation] = send(web)
    assert press(web, link(confirmation, "confirm")) == 303
    assert client_for(web).post(one_click(confirmation),
                                data={"List-Unsubscribe": "One-Click"}).status_code == 200
    assert stored(web).status == Status.unsubscribed
    seconds_pass(web)
    sign_up(web, keywords="voice conversion", frequency="weekly", monthly="")
    again = send(web)[-1]
    text, _ = parts(again)
    assert "voice conversion" in text and "speech synthesis" not in text
    assert press(web, link(again, "confirm")) == 303
    ada = stored(web)
    assert (ada.status, ada.keywords, ada.frequency, ada.monthly) == (
        Status.active, ["voice conversion"], Frequency.weekly, False)


def test_an_active_reader_is_offered_the_new_keywords_not_switched(
        web: Settings) -> None:
    sign_up(web, keywords="speech synthesis")
    [confirmation] = send(web)
    press(web, link(confirmation, "confirm"))
    free_period_slots(web)
    for _ in range(2):  # the owner, or a stranger (who double-clicks): nothing changes yet
        sign_up(web, keywords="voice conversion")
        free_period_slots(web)
    assert stored(web).keywords == ["speech synthesis"]
    offers = [m for m in send(web) if m["Subject"] == "Use your new keywords for Paper Digest?"]
    assert len(offers) == 1  # one offer for the two clicks
    [offer] = offers
    check_every_email_rule(offer, web)
    text, html = parts(offer)
    assert "voice conversion" in text and "Use these new keywords" in html
    use = link(offer, "confirm")
    page = client_for(web).get(use)
    assert page.status_code == 200 and "Use these new keywords?" in page.text
    assert stored(web).keywords == ["speech synthesis"]  # opening the link changes nothing
    assert press(web, use) == 303
    assert stored(web).keywords == ["voice conversion"]
    # The same signup again: the plain reminder, no offer.
    free_period_slots(web)
    sign_up(web, keywords="voice conversion")
    assert send(web)[-1]["Subject"] == "You're already subscribed to Paper Digest"


def test_old_confirmation_links_are_dead_after_unsubscribing(web: Settings) -> None:
    sign_up(web)
    [confirmation] = send(web)
    confirm = link(confirmation, "confirm")
    # The reader (or a mail scanner) stops it from the email itself.
    assert client_for(web).post(one_click(confirmation),
                                data={"List-Unsubscribe": "One-Click"}).status_code == 200
    assert client_for(web).get(confirm).status_code == INVALID_LINK_STATUS
    client = client_for(web)
    token = form_token(client)
    assert client.post(confirm, data={"csrf": token}).status_code == INVALID_LINK_STATUS
    assert stored(web).status == Status.unsubscribed
    # A fresh signup sends a fresh link that works.
    seconds_pass(web)
    sign_up(web)
    fresh = send(web)[-1]
    assert press(web, link(fresh, "confirm")) == 303
    assert stored(web).status == Status.active


def test_a_double_click_on_subscribe_sends_one_email(web: Settings) -> None:
    client = client_for(web)
    token = form_token(client)
    for _ in range(2):
        response = client.post("/subscribe", data=signup_form(token), follow_redirects=False)
        assert response.status_code == 303
        free_period_slots(web)  # even when the two clicks fall in different seconds
    assert len(send(web)) == 1
    with session_scope(web.sqlalchemy_url) as session:
        assert len(list(session.exec(select(ledger.Delivery)))) == 1
