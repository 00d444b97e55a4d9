"""How long links live, over HTTP against a real uvicorn, with emails from the real sender.

The links are the ones in real emails (a daily digest, account emails) written to the outbox
by the sender while itsdangerous' clock is set back, so they are as old as the test says.
"Sign out other links" refuses every earlier manage link and mails one that works; a manage
link older than DIGEST_MANAGE_LINK_DAYS offers a fresh one by email, never showing the
address and never more than the day's limit; unsubscribe links (the footer page and RFC 8058
one-click) keep working 59 days after the email, signed out or not.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from html import unescape
from pathlib import Path
from typing import Any

import httpx
import pytest
from itsdangerous.timed import TimestampSigner
from sqlmodel import select

from core.db import session_scope
from core.settings import Settings
from emails.transports import OutboxTransport
from subscribers import ledger
from subscribers.models import (
    AccountMail,
    ConsentEvent,
    PendingEmail,
    Status,
    Subscriber,
    SubscriberCreate,
)
from subscribers.privacy import erase
from subscribers.service import add_subscriber, plan_account_mail
from subscribers.tokens import Purpose, make_token
from tests.support.browser import shot
from tests.support.live_server import free_port, serving
from tests.support.schema import upgrade_from_template
from tests.support.web_app import DAY, csrf_of, free_period_slots, store_papers
from workers import planning
from workers.sending import send_due

SECONDS_A_DAY = 24 * 3600
ADA = "ada@example.org"
GRACE = "grace@example.org"
EXPIRED = "This link has expired"


# --- helpers ---------------------------------------------------------------------------------


@contextmanager
def site(settings: Settings, **changes: Any) -> Iterator[Settings]:
    """The app under uvicorn on a free port; links in emails point at it."""
    port = free_port()
    live = settings.model_copy(update={"public_url": f"http://127.0.0.1:{port}", **changes})
    with serving(live, port):
        yield live


def browser_client(settings: Settings) -> httpx.Client:
    """A visitor with a cookie jar, like a browser."""
    return httpx.Client(base_url=settings.public_url, timeout=20, follow_redirects=True)


def subscribed(settings: Settings, email: str = ADA) -> int:
    with session_scope(settings.sqlalchemy_url) as session:
        return add_subscriber(session=session, confirmed=True, subscriber_create=SubscriberCreate(
            email=email, keywords=["speech synthesis"])).id or 0


def mail_sent(settings: Settings, monkeypatch: pytest.MonkeyPatch,
              days_ago: float = 0) -> list[EmailMessage]:
    """Run the sender, with the links it signs stamped `days_ago` days ago; the new emails."""
    outbox = Path(settings.outbox_path)
    before = set(outbox.glob("*.eml")) if outbox.exists() else set()
    stamp = int(time.time() - days_ago * SECONDS_A_DAY)
    with monkeypatch.context() as patched:
        patched.setattr(TimestampSigner, "get_timestamp", lambda self: stamp)
        send_due(settings=settings, transport=OutboxTransport(outbox))
    parser = BytesParser(policy=policy.default)
    return [parser.parsebytes(path.read_bytes())
            for path in sorted(set(outbox.glob("*.eml")) - before)]


def digest_sent(settings: Settings, monkeypatch: pytest.MonkeyPatch,
                days_ago: float) -> dict[str, EmailMessage]:
    """Every active daily subscriber's digest, as if sent `days_ago` days ago, by address."""
    assert planning.plan_daily(settings=settings, day=DAY).planned >= 1
    return {str(m["To"]): m for m in mail_sent(settings, monkeypatch, days_ago)}


def account_mail_sent(settings: Settings, monkeypatch: pytest.MonkeyPatch, sid: int,
                      kind: AccountMail, days_ago: float = 0) -> EmailMessage:
    with session_scope(settings.sqlalchemy_url) as session:
        plan_account_mail(session=session, subscriber_id=sid, kind=kind)
    [message] = mail_sent(settings, monkeypatch, days_ago)
    return message


def text_of(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    return str(body.get_content())


def path_in(message: EmailMessage, kind: str) -> str:
    """The path of the email's manage, unsubscribe or confirm link (from its text part)."""
    found = re.search(rf"https?://[\w.:]+(/{kind}/[\w.-]+)", text_of(message))
    assert found, f"no {kind} link in {message['Subject']!r}"
    return found.group(1)


def one_click_path(message: EmailMessage) -> str:
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    found = re.fullmatch(r"<https?://[\w.:]+(/unsubscribe/[\w.-]+)>", message["List-Unsubscribe"])
    assert found
    return found.group(1)


def check_email_rules(message: EmailMessage, settings: Settings) -> None:
    """Like every email: both parts, one-click unsubscribe, the postal address, small HTML."""
    one_click_path(message)
    html = message.get_body(preferencelist=("html",))
    assert html is not None
    assert settings.postal_address in text_of(message)
    assert settings.postal_address in str(html.get_content())
    assert len(str(html.get_content()).encode()) < 100_000


def stored(settings: Settings, sid: int) -> Subscriber:
    with session_scope(settings.sqlalchemy_url) as session:
        subscriber = session.get(Subscriber, sid)
        assert subscriber is not None
        return subscriber


def kinds_planned(settings: Settings, sid: int) -> list[str]:
    with session_scope(settings.sqlalchemy_url) as session:
        return [d.kind for d in session.exec(select(ledger.Delivery).where(
            ledger.Delivery.subscriber_id == sid).order_by(ledger.Delivery.id))]  # type: ignore[arg-type]


def snapshot(settings: Settings) -> list[Any]:
    with session_scope(settings.sqlalchemy_url) as session:
        return [[row.model_dump() for row in session.exec(select(table))]
                for table in (Subscriber, ConsentEvent, PendingEmail, ledger.Delivery)]


def save_keywords(client: httpx.Client, manage: str, csrf: str, keywords: str) -> httpx.Response:
    return client.post(manage, data={"csrf": csrf, "keywords": keywords, "frequency": "daily",
                                     "timezone": "UTC", "send_hour": "7"})


@pytest.fixture
def papers(migrated: Settings) -> Settings:
    """SQLite and PostgreSQL, migrated, with a day of papers for the digests."""
    store_papers(migrated)
    return migrated


@pytest.fixture
def papers_sqlite(settings: Settings, sqlite_template: Path) -> Settings:
    upgrade_from_template(settings, sqlite_template)
    store_papers(settings)
    return settings


# --- sign out other links --------------------------------------------------------------------


def test_sign_out_refuses_earlier_manage_links_and_mails_one_that_works(
        papers: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    with site(papers) as live:
        sid = subscribed(live)
        digest = digest_sent(live, monkeypatch, days_ago=3)[ADA]
        reminder = account_mail_sent(live, monkeypatch, sid, AccountMail.already, days_ago=1)
        old_manage, forwarded = path_in(digest, "manage"), path_in(reminder, "manage")
        reader, someone = browser_client(live), browser_client(live)

        # Someone with a forwarded link asks to move the subscription to their own address.
        page = someone.get(forwarded)
        assert page.status_code == 200 and "Sign out other links" in page.text
        csrf = {someone: csrf_of(page.text), reader: csrf_of(reader.get(old_manage).text)}
        someone.post(f"{forwarded}/email", data={"csrf": csrf[someone],
                                                 "new_email": "eve@evil.example"})
        [takeover] = mail_sent(live, monkeypatch, days_ago=0.001)
        assert takeover["To"] == "eve@evil.example"

        # The reader signs out every other link from the digest's link.
        done = reader.post(f"{old_manage}/sign-out", data={"csrf": csrf[reader]})
        assert done.status_code == 200, done.text
        assert "Other links are signed out" in unescape(done.text)
        assert f"fresh link to {ADA}" in done.text
        assert stored(live, sid).links_valid_from is not None

        # Every earlier manage link now gets the expired page; nothing acts through them.
        before = snapshot(live)
        for client, link in ((reader, old_manage), (someone, forwarded)):
            refused = client.get(link)
            assert refused.status_code == 410 and EXPIRED in unescape(refused.text)
            assert ADA not in refused.text and "Email me a fresh link" in refused.text
            assert save_keywords(client, link, csrf[client], "hijacked").status_code == 410
            assert client.post(f"{link}/sign-out",
                               data={"csrf": csrf[client]}).status_code == 410
        assert snapshot(live) == before
        # The pending address change went with the sign-out: its confirmation link is dead.
        confirm = path_in(takeover, "confirm")
        assert someone.get(confirm).status_code == 404
        assert someone.post(confirm, data={"csrf": csrf[someone]}).status_code == 404
        assert stored(live, sid).email == ADA

        # The fresh link arrives at the address on file and works.
        [fresh] = mail_sent(live, monkeypatch)
        assert fresh["To"] == ADA
        check_email_rules(fresh, live)
        assert "Your other links are signed out" in text_of(fresh)
        new_manage = path_in(fresh, "manage")
        page = reader.get(new_manage)
        assert page.status_code == 200 and "Your settings" in page.text
        saved = save_keywords(reader, new_manage, csrf_of(page.text), "prosody")
        assert saved.status_code == 200 and stored(live, sid).keywords == ["prosody"]
        assert kinds_planned(live, sid) == ["daily", "already", "confirm-email", "signed-out"]


def test_a_signed_out_confirmation_link_no_longer_opens_the_settings(
        papers_sqlite: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    with site(papers_sqlite) as live:
        with session_scope(live.sqlalchemy_url) as session:
            sid = add_subscriber(session=session, confirmed=False, subscriber_create=(
                SubscriberCreate(email=ADA, keywords=["speech synthesis"]))).id or 0
        confirmation = account_mail_sent(live, monkeypatch, sid, AccountMail.confirm, 1)
        confirm, manage = path_in(confirmation, "confirm"), path_in(confirmation, "manage")
        client = browser_client(live)
        assert client.get(confirm).status_code == 200
        page = client.get(manage)
        client.post(f"{manage}/sign-out", data={"csrf": csrf_of(page.text)})
        assert client.get(confirm).status_code == 404
        assert client.post(confirm, data={"csrf": csrf_of(page.text)}).status_code == 404
        assert stored(live, sid).status == Status.pending


# --- manage links past their age -------------------------------------------------------------


def test_manage_links_past_the_configured_age_offer_a_fresh_link_by_email(
        papers_sqlite: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    with site(papers_sqlite, manage_link_days=30) as live:
        ada, grace = subscribed(live), subscribed(live, GRACE)
        digests = digest_sent(live, monkeypatch, days_ago=31)
        old, graces_old = path_in(digests[ADA], "manage"), path_in(digests[GRACE], "manage")
        young = path_in(account_mail_sent(live, monkeypatch, ada, AccountMail.already, 29),
                        "manage")
        client = browser_client(live)
        assert client.get(young).status_code == 200

        before = snapshot(live)
        page = client.get(old)
        assert page.status_code == 410
        assert EXPIRED in unescape(page.text) and "30 days" in page.text
        assert ADA not in page.text and "ada" not in page.text.lower().replace("paper digest", "")
        assert page.headers["cache-control"] == "no-store"
        assert snapshot(live) == before, "a GET changes nothing"
        for action in ("", "/pause", "/export", "/email", "/sign-out", "/erase"):
            refused = client.post(f"{old}{action}", data={"csrf": csrf_of(page.text),
                                                          "weeks": "2", "confirm": "yes"})
            assert refused.status_code == 410, action
        assert snapshot(live) == before

        # The button emails a fresh link to the address on file, and only there.
        answer = client.post(f"{old}/fresh-link", data={"csrf": csrf_of(page.text)})
        assert answer.status_code == 200 and "Check your inbox" in answer.text
        assert ADA not in answer.text
        [fresh] = mail_sent(live, monkeypatch)
        assert fresh["To"] == ADA and "fresh link to your settings" in text_of(fresh)
        check_email_rules(fresh, live)
        assert "30 days" in text_of(fresh)
        assert client.get(path_in(fresh, "manage")).status_code == 200

        # Pressing it again and again: the same answer, at most three emails a day.
        for _ in range(5):
            free_period_slots(live)  # account emails are keyed per second
            again = client.post(f"{old}/fresh-link", data={"csrf": csrf_of(page.text)})
            assert again.status_code == 200 and again.text == answer.text
        assert kinds_planned(live, ada).count(AccountMail.fresh_link.value) == 3
        assert [m["To"] for m in mail_sent(live, monkeypatch)] == [ADA, ADA]

        # No enumeration: an old link of an erased subscriber gets the same page and answer.
        with session_scope(live.sqlalchemy_url) as session:
            erase(session=session, subscriber_id=grace)
        gone = client.get(graces_old)
        assert gone.status_code == 410
        assert gone.text.replace(graces_old, old) == page.text.replace(
            csrf_of(page.text), csrf_of(gone.text))
        asked = client.post(f"{graces_old}/fresh-link", data={"csrf": csrf_of(gone.text)})
        assert asked.status_code == 200 and asked.text == answer.text
        assert mail_sent(live, monkeypatch) == []

        # Without the form's CSRF token nothing is sent; a forged token is a plain 404.
        assert browser_client(live).post(f"{old}/fresh-link").status_code in (400, 422)
        forged = old[:-5] + ("A" if old[-5] != "A" else "B") + old[-4:]
        assert client.get(forged).status_code == 404
        assert client.post(f"{forged}/fresh-link",
                           data={"csrf": csrf_of(page.text)}).status_code == 404


def test_the_age_limit_is_a_setting_with_a_90_day_default(
        papers_sqlite: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings(_env_file=None).manage_link_days == 90  # type: ignore[call-arg]
    monkeypatch.setenv("DIGEST_MANAGE_LINK_DAYS", "14")
    assert Settings(_env_file=None).manage_link_days == 14  # type: ignore[call-arg]
    with site(papers_sqlite) as live:
        sid = subscribed(live)
        keys = live.signing_keys()
        for days, status in ((89, 200), (91, 410)):
            with monkeypatch.context() as patched:
                stamp = int(time.time() - days * SECONDS_A_DAY)
                patched.setattr(TimestampSigner, "get_timestamp", lambda self, s=stamp: s)
                link = make_token(keys=keys, purpose=Purpose.manage, subscriber_id=sid)
            assert browser_client(live).get(f"/manage/{link}").status_code == status, days


# --- unsubscribe links keep working ----------------------------------------------------------


def test_unsubscribe_links_work_59_days_after_sending_even_after_a_sign_out(
        papers: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    with site(papers, manage_link_days=30) as live:
        ada, grace = subscribed(live), subscribed(live, GRACE)
        digests = digest_sent(live, monkeypatch, days_ago=59)
        for sid, address in ((ada, ADA), (grace, GRACE)):
            # Each signs out every link from a settings link mailed yesterday.
            mail = account_mail_sent(live, monkeypatch, sid, AccountMail.already, days_ago=1)
            client = browser_client(live)
            manage = path_in(mail, "manage")
            page = client.get(manage)
            assert client.post(f"{manage}/sign-out",
                               data={"csrf": csrf_of(page.text)}).status_code == 200
            assert client.get(path_in(digests[address], "manage")).status_code == 410
            [fresh] = mail_sent(live, monkeypatch)
            assert fresh["To"] == address

        # Ada leaves from her mail client: RFC 8058 one-click, no cookie, no page, twice.
        one_click = one_click_path(digests[ADA])
        for _ in range(2):
            left = httpx.post(live.public_url + one_click, data={"List-Unsubscribe": "One-Click"})
            assert left.status_code == 200 and "location" not in left.headers
            assert "You're unsubscribed" in unescape(left.text)
        assert stored(live, ada).status == Status.unsubscribed

        # Grace opens the footer link: a page with one button, which unsubscribes.
        footer = path_in(digests[GRACE], "unsubscribe")
        client = browser_client(live)
        page = client.get(footer)
        assert page.status_code == 200 and "Unsubscribe?" in page.text
        assert stored(live, grace).status == Status.active, "a GET changes nothing"
        left = client.post(footer, data={"List-Unsubscribe": "One-Click"})
        assert left.status_code == 200 and "You're unsubscribed" in unescape(left.text)
        assert stored(live, grace).status == Status.unsubscribed

        with session_scope(live.sqlalchemy_url) as session:
            channels = [e.channel for e in session.exec(select(ConsentEvent).where(
                ConsentEvent.action == "unsubscribe"))]
        assert channels == ["one-click", "one-click"]


# --- in a real browser -----------------------------------------------------------------------


@pytest.mark.browser
@pytest.mark.parametrize("width", [375, 1280])
def test_expired_link_fresh_link_and_sign_out_in_chromium(
        papers_sqlite: Settings, monkeypatch: pytest.MonkeyPatch, browser: Any,
        width: int) -> None:
    with site(papers_sqlite, manage_link_days=30) as live:
        subscribed(live)
        old = live.public_url + path_in(digest_sent(live, monkeypatch, days_ago=31)[ADA],
                                        "manage")
        context = browser.new_context(viewport={"width": width, "height": 900})
        page = context.new_page()
        problems: list[str] = []
        page.on("pageerror", lambda error: problems.append(str(error)))

        page.goto(old)
        page.get_by_role("heading", name=EXPIRED).wait_for()
        shot(page, "link-1-expired", width)
        page.get_by_role("button", name="Email me a fresh link").click()
        page.get_by_role("heading", name="Check your inbox").wait_for()
        shot(page, "link-2-asked", width)

        [fresh] = mail_sent(live, monkeypatch, days_ago=0.001)
        page.goto(live.public_url + path_in(fresh, "manage"))
        page.get_by_role("heading", name="Links to this page").wait_for()
        shot(page, "link-3-manage", width)
        page.get_by_role("button", name="Sign out other links").click()
        page.get_by_role("heading", name="Other links are signed out").wait_for()
        shot(page, "link-4-signed-out", width)
        page.goto(live.public_url + path_in(fresh, "manage"))
        page.get_by_role("heading", name=EXPIRED).wait_for()
        assert problems == []
        context.close()
