"""A mail security gateway (Safe Links, Proofpoint) opens every link of every email before the
reader does: real daily emails from the outbox, every link fetched from a live server, and not
one vote, click or unsubscribe comes of it. Only a press of the page's button counts."""

from __future__ import annotations

import re
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from html import unescape
from pathlib import Path

import httpx
from sqlmodel import select

from core.db import session_scope
from core.settings import Settings
from emails.transports import OutboxTransport
from subscribers.feedback import FeedbackVote
from subscribers.models import Status, Subscriber
from tests.support.feedback_data import DAY, stocked  # noqa: F401  (the fixture)
from tests.support.live_server import free_port, serving
from workers import planning
from workers.sending import send_due

HREF = re.compile(r'href="([^"]+)"')


def outbox(settings: Settings) -> list[EmailMessage]:
    parser = BytesParser(policy=policy.default)
    return [parser.parsebytes(path.read_bytes())  # type: ignore[misc]
            for path in sorted(Path(settings.outbox_path).glob("*.eml"))]


def links_of(message: EmailMessage, base: str) -> list[str]:
    """Every link of the HTML part and every URL of the text part that leads to us."""
    html = message.get_body(preferencelist=("html",))
    text = message.get_body(preferencelist=("plain",))
    assert html is not None and text is not None
    found = [unescape(href) for href in HREF.findall(html.get_content())]
    found += re.findall(r"https?://\S+", text.get_content())
    return [link for link in dict.fromkeys(found) if link.startswith(base)]


def votes(settings: Settings) -> list[tuple[int, str, str]]:
    with session_scope(settings.sqlalchemy_url) as session:
        return [(v.subscriber_id, v.arxiv_id, v.vote) for v in session.exec(select(FeedbackVote))]


def test_a_scanner_opening_every_link_of_real_emails_records_nothing(
    stocked: tuple[Settings, list[int]]  # noqa: F811
) -> None:
    settings, ids = stocked
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    settings = settings.model_copy(update={"public_url": base})
    assert planning.plan_daily(settings=settings, day=DAY).planned == len(ids)
    send_due(settings=settings, transport=OutboxTransport(settings.outbox_path))
    messages = outbox(settings)
    assert len(messages) == len(ids)
    with serving(settings, port), httpx.Client(follow_redirects=True, timeout=30) as scanner:
        opened = []
        for message in messages:
            for link in links_of(message, base):
                response = scanner.get(link)
                assert response.status_code == 200, (link, response.status_code)
                opened.append(link)
        feedback = [link for link in opened if "/feedback/" in link]
        assert len([link for link in feedback if "vote=more" in link]) >= 3 * len(ids)
        assert any("/unsubscribe/" in link for link in opened)
        assert any("/manage/" in link for link in opened)
        assert votes(settings) == []  # no weak positives for every paper of every email
        with session_scope(settings.sqlalchemy_url) as session:
            assert {s.status for s in session.exec(select(Subscriber))} == {Status.active}

        # The reader presses the button on one of those pages: that, and only that, counts.
        page = scanner.get(feedback[0])
        action = re.search(r'<form method="post" action="([^"]+)"', page.text)
        vote = re.search(r'name="vote" value="(more|less)"', page.text)
        assert action and vote
        assert scanner.post(base + unescape(action.group(1)),
                            data={"vote": vote.group(1)}).status_code == 200
        [(_, arxiv_id, recorded)] = votes(settings)
        assert recorded == vote.group(1) and arxiv_id in feedback[0]
