"""No repeats, no noise: across daily and weekly, new versions and cross-lists, and the floor."""

from __future__ import annotations

from datetime import date, timedelta

from sqlmodel import select

from core.db import session_scope
from core.settings import Settings
from digest.blend import rank_for_each_reader
from digest.papers import PaperIn, papers_since, upsert_papers
from subscribers import ledger
from subscribers.models import Frequency, Subscriber, SubscriberCreate
from subscribers.service import add_subscriber
from tests.support.feedback_data import FILLER, NEW_PAPERS
from tests.support.feedback_data import papers_in as _papers
from workers import planning

DAY = date(2026, 3, 2)


def _planned(settings: Settings, slot: planning.Slot, email: str) -> list[str]:
    with session_scope(settings.sqlalchemy_url) as session:
        subscriber = session.exec(select(Subscriber).where(Subscriber.email == email)).one()
        planning.plan_slot(session=session, settings=settings, slot=slot,
                           subscribers=[subscriber])
        row = session.exec(select(ledger.Delivery).where(
            ledger.Delivery.subscriber_id == subscriber.id,
            ledger.Delivery.period == slot.period)).first()
        return [m["arxiv_id"] for m in row.payload["matches"]] if row else []


def test_a_paper_goes_out_once_across_daily_weekly_versions_and_cross_lists(
    migrated: Settings
) -> None:
    with session_scope(migrated.sqlalchemy_url) as session:
        upsert_papers(session=session, papers=_papers(NEW_PAPERS + FILLER, DAY))
        add_subscriber(session=session, confirmed=True, subscriber_create=SubscriberCreate(
            email="ada@example.org", keywords=["speech synthesis"]))
    daily = _planned(migrated, planning.Slot("daily", DAY.isoformat(), DAY, 7), "ada@example.org")
    assert {i for i, _, _ in NEW_PAPERS} <= set(daily)
    # The next day: version 2 of one paper, and a cross-list of another, arrive.
    later = DAY + timedelta(days=1)
    again = [PaperIn(arxiv_id=i, version=2, title=t, abstract=a + " Version two.",
                     categories=["eess.AS"], announced_on=later, source="rss-cross")
             for i, t, a in NEW_PAPERS[:2]]
    fresh = _papers([("2603.00020", "Speech synthesis with tiny models",
                      "We propose a tiny speech synthesis model for phones.")], later)
    with session_scope(migrated.sqlalchemy_url) as session:
        upsert_papers(session=session, papers=again + fresh)
        ada = session.exec(select(Subscriber)).one()
        ada.frequency = Frequency.weekly
        session.add(ada)
    weekly = _planned(migrated, planning.Slot("weekly", "2026-W10", later, 7), "ada@example.org")
    assert weekly == ["2603.00020"]  # neither daily's papers nor their new versions again
    # A new version or a cross-list is not a new paper: it keeps its first announcement day,
    # so a window that starts the next day does not see it.
    with session_scope(migrated.sqlalchemy_url) as session:
        arrived = {p.arxiv_id for p in papers_since(session=session, since=later, until=later)}
    assert arrived == {"2603.00020"}


def test_passing_mentions_rank_below_every_paper_on_the_topic() -> None:
    passing = ("2603.00300", "Graph transformers for traffic forecasting",
               "We forecast traffic with graph transformers over road networks, with attention "
               "over sensors and time. Unlike work on speech synthesis, our inputs are sparse "
               "sensor series; we report errors on four city datasets and ablate each module.")
    papers = _papers(NEW_PAPERS + FILLER + [passing], DAY)
    [ranked] = rank_for_each_reader(papers, [["speech synthesis"]], day=DAY, limit=10, floor=0.0)
    scores = {m.arxiv_id: m.score for m in ranked}
    on_topic = [scores[i] for i, _, _ in NEW_PAPERS]
    assert scores[passing[0]] < 0.5 * min(on_topic)
    order = [m.arxiv_id for m in ranked]
    assert order.index(passing[0]) > max(order.index(i) for i, _, _ in NEW_PAPERS)
    [kept] = rank_for_each_reader(papers, [["speech synthesis"]], day=DAY, limit=10, floor=1e6)
    assert kept == []  # and a floor above everything keeps everything out
