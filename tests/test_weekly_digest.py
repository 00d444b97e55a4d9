"""A weekly digest reads as a week: its most upvoted papers first, then the rest by keyword."""

from __future__ import annotations

from sqlmodel import col, select

from core.db import session_scope
from core.settings import Settings
from digest.daily import MOST_UPVOTED_WEEK, WEEK_TOP, compose_daily
from digest.papers import upsert_papers
from digest.ranking import Match
from digest.sources.trending import TrendingItem
from digest.trending import store_trending
from subscribers import ledger
from subscribers.models import Frequency, SubscriberCreate
from subscribers.service import add_subscriber
from tests.support.daily_data import make_paper, render
from tests.support.feedback_data import DAY, FILLER, NEW_PAPERS
from tests.support.feedback_data import papers_in as _papers
from workers import planning
from workers.compose import render_row

KEYWORDS = ("tts", "speech tokenizer")


def _week() -> tuple[list[Match], dict]:  # type: ignore[type-arg]
    papers = {p.arxiv_id: p for p in (make_paper(n) for n in range(6))}
    ids = sorted(papers)
    matches = [
        Match(ids[0], 4.0, ("tts",)),
        Match(ids[1], 3.5, ("speech tokenizer",), upvotes=12),
        Match(ids[2], 3.0, ("tts",), upvotes=300),
        Match(ids[3], 2.5, ("speech tokenizer",)),
        Match(ids[4], 2.0, ("tts",), upvotes=45),
        Match(ids[5], 1.5, ("tts",), upvotes=7),
    ]
    return matches, papers


def test_a_week_opens_with_its_most_upvoted_papers_and_never_repeats_them() -> None:
    matches, papers = _week()
    weekly = compose_daily(day=DAY, keywords=KEYWORDS, matches=matches, papers=papers,
                           weekly=True)
    assert weekly is not None and weekly.weekly
    first = weekly.sections[0]
    assert first.keyword == MOST_UPVOTED_WEEK and first.trending
    assert [p.upvotes for p in first.picks] == [300, 45, 12][:WEEK_TOP]
    rest = [p.paper.arxiv_id for s in weekly.sections[1:] for p in s.picks]
    assert not {p.paper.arxiv_id for p in first.picks} & set(rest)
    assert weekly.count == len(matches)  # every pick once
    assert [s.keyword for s in weekly.sections[1:]] == ["tts", "speech tokenizer"]
    # The same picks as a daily digest: by keyword only, in profile order.
    daily = compose_daily(day=DAY, keywords=KEYWORDS, matches=matches, papers=papers)
    assert daily is not None and [s.keyword for s in daily.sections] == list(KEYWORDS)


def test_the_weekly_email_says_week_and_shows_the_top_section_first() -> None:
    matches, papers = _week()
    weekly = compose_daily(day=DAY, keywords=KEYWORDS, matches=matches, papers=papers,
                           weekly=True)
    assert weekly is not None
    message = render(weekly)
    assert "week to" in message.subject
    html = message.html
    assert "Your week · 3 papers" in html
    assert html.index(MOST_UPVOTED_WEEK) < html.index(">tts</h2>")
    assert message.text.index(MOST_UPVOTED_WEEK.upper()) < message.text.index("TTS (")


def test_a_weekly_reader_gets_the_week_grouped_through_the_sender(migrated: Settings) -> None:
    settings = migrated.model_copy(update={"lookback_days": 7})
    with session_scope(settings.sqlalchemy_url) as session:
        upsert_papers(session=session, papers=_papers(NEW_PAPERS + FILLER, DAY))
        store_trending(session=session, day=DAY, items=[
            TrendingItem("2603.00013", "Multilingual speech synthesis", upvotes=45),
        ])
        reader = add_subscriber(session=session, confirmed=True, subscriber_create=SubscriberCreate(
            email="week@example.org", keywords=["speech synthesis"], frequency=Frequency.weekly))
        slot = planning.Slot("weekly", "2026-W10", DAY, settings.lookback_days)
        report = planning.plan_slot(session=session, settings=settings, slot=slot,
                                    subscribers=[reader])
    assert report.planned == 1
    with session_scope(settings.sqlalchemy_url) as session:
        row = session.exec(select(ledger.Delivery).where(
            col(ledger.Delivery.kind) == "weekly")).one()
        message = render_row(settings, session, row)
    assert message is not None and "week to" in message.subject
    text = message.text
    assert text.index(MOST_UPVOTED_WEEK.upper()) < text.index("SPEECH SYNTHESIS (")
    top = text.split(MOST_UPVOTED_WEEK.upper(), 1)[1].split("SPEECH SYNTHESIS (", 1)[0]
    assert "Multilingual speech synthesis" in top and "45 upvotes" in top
