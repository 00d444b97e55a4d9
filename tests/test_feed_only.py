"""The "No email, feed only" frequency: the planner plans the reader's picks (so the feed fills
and no paper comes twice), the real sender mails nothing, and the personal feed carries them.
Also: an unsubscribed reader's feed answers 410, and the manage page's choice in Chromium."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import feedparser
import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from core.db import session_scope
from core.settings import Settings
from digest.papers import PaperIn, upsert_papers
from emails.transports import OutboxTransport
from subscribers import ledger
from subscribers.models import Frequency, Subscriber
from subscribers.saved import save_paper
from subscribers.service import unsubscribe
from subscribers.web.app import create_app
from tests.support.browser import ARTIFACTS, shot
from tests.support.feedback_data import (
    DAY,
    NEW_PAPERS,
    revise_paper,
    stocked,  # noqa: F401  (the fixture)
)
from tests.support.live_server import free_port, live_settings, serving
from tests.support.web_app import confirmed_reader, feed_path, manage_path
from workers import planning
from workers.sending import send_due


def _feed_only(settings: Settings, sid: int) -> None:
    with session_scope(settings.sqlalchemy_url) as session:
        subscriber = session.get(Subscriber, sid)
        assert subscriber is not None
        subscriber.frequency = Frequency.feed
        session.add(subscriber)


def _outbox(settings: Settings) -> list[Path]:
    return sorted(Path(settings.outbox_path).glob("*.eml"))


def _announce(settings: Settings, arxiv_id: str, title: str, day: date) -> None:
    """One new "speech synthesis" paper announced on `day`."""
    with session_scope(settings.sqlalchemy_url) as session:
        upsert_papers(session=session, papers=[PaperIn(
            arxiv_id=arxiv_id, title=title, source="test", abstract=f"{title}, on a phone.",
            announced_on=day)])


def _rows(settings: Settings, sid: int) -> list[ledger.Delivery]:
    with session_scope(settings.sqlalchemy_url) as session:
        rows = session.exec(select(ledger.Delivery).where(ledger.Delivery.subscriber_id == sid)
                            .order_by(ledger.Delivery.id)).all()
        session.expunge_all()
        return list(rows)


def test_feed_only_mails_nothing_and_the_feed_has_the_papers(
    stocked: tuple[Settings, list[int]]  # noqa: F811
) -> None:
    settings, (critic, fan, control) = stocked
    _feed_only(settings, fan)
    report = planning.plan_daily(settings=settings, day=DAY)
    assert (report.planned, report.feed_only) == (3, 1) and set(report.papers) == {
        "critic@example.org", "fan@example.org", "control@example.org"}
    sent = send_due(settings=settings, transport=OutboxTransport(settings.outbox_path))
    assert (sent.sent, sent.failed, sent.skipped) == (2, 0, 0)  # the two emails, nothing else
    addressed = {p.read_text(errors="replace").split("\nTo: ", 1)[1].split("\n", 1)[0].strip()
                 for p in _outbox(settings)}
    assert addressed == {"critic@example.org", "control@example.org"}

    [row] = _rows(settings, fan)
    assert (row.kind, row.status, row.share) == ("feed", ledger.DeliveryStatus.sent, None)
    assert row.provider_message_id is None and row.sent_at is not None
    picks = [m["arxiv_id"] for m in row.payload["matches"]]
    assert picks and row.picks == picks

    client = TestClient(create_app(settings), base_url="http://testserver")
    response = client.get(feed_path(settings, fan))
    assert response.status_code == 200
    parsed = feedparser.parse(response.content)
    assert not parsed.bozo
    assert [e.link for e in parsed.entries] == [f"https://arxiv.org/abs/{i}" for i in picks]
    assert all(e.summary.startswith("Matched: speech synthesis") for e in parsed.entries)

    # Another day: new papers only, never one the feed already carried; still no email.
    later = DAY + timedelta(days=1)
    _announce(settings, "2603.05001", "Speech synthesis with tiny vocoders", later)
    before = len(_outbox(settings))
    assert planning.plan_daily(settings=settings, day=later).papers["fan@example.org"] == [
        "2603.05001"]
    send_due(settings=settings, transport=OutboxTransport(settings.outbox_path))
    assert len(_outbox(settings)) == before + 2  # the critic's and the control's
    again = feedparser.parse(client.get(feed_path(settings, fan)).content)
    assert [e.link for e in again.entries][0] == "https://arxiv.org/abs/2603.05001"
    assert len(again.entries) == len(picks) + 1

    # Back to email: the next digest is an email again, from the same promised set.
    with session_scope(settings.sqlalchemy_url) as session:
        subscriber = session.get(Subscriber, fan)
        assert subscriber is not None
        subscriber.frequency = Frequency.daily
        session.add(subscriber)
    assert "fan@example.org" not in planning.plan_daily(
        settings=settings, day=later).papers  # nothing left unseen this window


def test_the_beat_plans_a_feed_only_reader_at_their_hour(
    stocked: tuple[Settings, list[int]]  # noqa: F811
) -> None:
    settings, (_, fan, _) = stocked
    _feed_only(settings, fan)
    with session_scope(settings.sqlalchemy_url) as session:
        subscriber = session.get(Subscriber, fan)
        assert subscriber is not None
        morning = datetime(2026, 3, 2, 6, tzinfo=UTC)
        assert planning.due_slot(subscriber, morning, 7) is None  # before the send hour
        slot = planning.due_slot(subscriber, morning + timedelta(hours=2), 7)
        assert slot == planning.Slot("feed", "2026-03-02", DAY, 7)


def test_an_unsubscribed_readers_feed_is_gone(
    stocked: tuple[Settings, list[int]]  # noqa: F811
) -> None:
    settings, (critic, fan, _) = stocked
    _feed_only(settings, fan)
    planning.plan_daily(settings=settings, day=DAY)
    client = TestClient(create_app(settings), base_url="http://testserver")
    path = feed_path(settings, fan)
    title = NEW_PAPERS[0][1]
    assert client.get(path).status_code == 200  # feed only is subscribed
    with session_scope(settings.sqlalchemy_url) as session:
        unsubscribe(session=session, subscriber_id=fan)
    gone = client.get(path)
    assert gone.status_code == 410
    assert "This subscription has ended" in gone.text
    assert title not in gone.text and "<feed" not in gone.text and "2603." not in gone.text
    assert client.get(path, headers={"If-None-Match": "*"}).status_code == 410
    assert client.get(feed_path(settings, critic)).status_code == 200  # only theirs


# --- the manage page in Chromium -------------------------------------------------------------


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    port = free_port()
    settings = live_settings(tmp_path_factory.mktemp("feed-only") / "var", port)
    with serving(settings, port):
        yield settings


@pytest.mark.browser
@pytest.mark.parametrize("width", [375, 1280])
def test_choosing_feed_only_on_the_manage_page(live: Settings, browser: Any,
                                              width: int) -> None:
    sid = confirmed_reader(live, f"only-{width}@example.org", ["speech synthesis"])
    page = browser.new_page(viewport={"width": width, "height": 900})
    page.goto(live.public_url + manage_path(live, sid))
    choice = page.get_by_label(re.compile("No email, feed only"))
    assert not choice.is_checked()
    choice.check()
    page.get_by_role("button", name="Save changes").click()
    page.wait_for_url(re.compile(r"done=saved"))
    assert page.get_by_label(re.compile("No email, feed only")).is_checked()
    notice = page.locator(".notice").first.inner_text()
    assert "No more digest emails" in notice
    assert "in your personal feed only: no email" in page.locator(
        "section[aria-labelledby=lists-heading]").inner_text()
    with session_scope(live.sqlalchemy_url) as session:
        subscriber = session.get(Subscriber, sid)
        assert subscriber is not None and subscriber.frequency == Frequency.feed
    shot(page, "manage-feed-only", width)
    when = ARTIFACTS / f"manage-feed-only-when-{width}.png"
    page.locator("#step-when").screenshot(path=str(when))
    page.close()


def test_a_feed_only_reader_hears_of_saved_papers_in_the_feed(
    stocked: tuple[Settings, list[int]]  # noqa: F811
) -> None:
    """News of a saved paper rides on a digest; a feed-only reader's digest is the feed."""
    settings, (_, fan, _) = stocked
    _feed_only(settings, fan)
    arxiv_id, title, _ = NEW_PAPERS[0]
    with session_scope(settings.sqlalchemy_url) as session:
        save_paper(session=session, subscriber_id=fan, arxiv_id=arxiv_id)
    planning.plan_daily(settings=settings, day=DAY)
    revise_paper(settings, arxiv_id, version=2, updated=datetime(2026, 3, 3, 1, tzinfo=UTC),
                 comment="Code: https://github.com/quick/flow")
    later = DAY + timedelta(days=1)
    _announce(settings, "2603.05001", "Speech synthesis with tiny vocoders", later)
    planning.plan_daily(settings=settings, day=later)
    send_due(settings=settings, transport=OutboxTransport(settings.outbox_path))
    assert all("fan@example.org" not in p.read_text(errors="replace")
               for p in _outbox(settings))

    client = TestClient(create_app(settings), base_url="http://testserver")
    parsed = feedparser.parse(client.get(feed_path(settings, fan)).content)
    assert not parsed.bozo, parsed.bozo_exception
    news, newest = parsed.entries[0], parsed.entries[1]  # the news first, as in the email
    assert news.title == f"Update: {title}"
    assert news.link == f"https://arxiv.org/abs/{arxiv_id}"
    assert news.summary == "v2 posted 3 Mar · code released: github.com/quick/flow"
    assert "https://github.com/quick/flow" in {link.href for link in news.links}
    assert '<a href="https://github.com/quick/flow">github.com/quick/flow</a>' in (
        news.content[0].value)
    assert news.id.endswith(f"update/{arxiv_id}/{later.isoformat()}")
    assert newest.link == "https://arxiv.org/abs/2603.05001"
    # The pick it was first sent as stays an entry of its own.
    assert sum(e.link == f"https://arxiv.org/abs/{arxiv_id}" for e in parsed.entries) == 2

    # Told once: the next day's digest carries no news of it again.
    third = later + timedelta(days=1)
    _announce(settings, "2603.06001", "Speech synthesis for small phones", third)
    planning.plan_daily(settings=settings, day=third)
    again = feedparser.parse(client.get(feed_path(settings, fan)).content)
    assert again.entries[0].link == "https://arxiv.org/abs/2603.06001"
    assert [e.title for e in again.entries].count(f"Update: {title}") == 1
