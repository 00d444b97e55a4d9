"""Planning: who gets which digest for which period, written to the ledger in bulk.

A digest's content is decided here, once: the ranked picks go into the ledger row's payload,
so a retried send renders exactly what was planned, with news of the reader's saved papers
(subscribers/saved_updates.py). A feed-only reader's daily picks are planned the same way
under the kind "feed" and recorded at once for their personal feed: nothing is mailed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

import orjson
from sqlalchemy import func, update
from sqlmodel import Session, col, select

from core.batch_gc import fewer_collections
from core.db import one_of, session_scope
from core.settings import Settings
from digest.analysis import Lexicon
from digest.blend import rank_for_each_reader
from digest.papers import Paper, papers_by_id, papers_since
from digest.ranking import Match, PaperIndex
from digest.semantic import index_options
from digest.suggestions import THIN_WEEK, related_keywords
from digest.trending import trending_on
from subscribers import ledger
from subscribers.feedback import ratings_for
from subscribers.ledger import Delivery, DeliveryStatus
from subscribers.models import Frequency, Status, Subscriber, utcnow
from subscribers.payloads import FEED_KIND, DigestPayload
from subscribers.saved_updates import MAX_UPDATES, News, find_news, record_told
from workers.due import Reader, Slot, due_daily_chunk, due_slot

PICKS_MARGIN = timedelta(days=7)
# A plan's papers and their index by (first day, last day) of its window, kept across chunks.
Window = dict[tuple[date, date], tuple[list[Paper], PaperIndex]]


@dataclass
class PlanReport:
    due: int = 0  # subscribers considered
    planned: int = 0  # new ledger rows
    already_planned: int = 0
    nothing_relevant: int = 0
    feed_only: int = 0  # of `planned`: feed-only readers' rows, in their feeds, never mailed
    previews: list[tuple[str, int]] = field(default_factory=list)  # (email, papers) per digest
    papers: dict[str, list[str]] = field(default_factory=dict)  # email -> arXiv ids, best first

    def add(self, other: PlanReport) -> None:
        self.due += other.due
        self.planned += other.planned
        self.already_planned += other.already_planned
        self.nothing_relevant += other.nothing_relevant
        self.feed_only += other.feed_only
        self.previews.extend(other.previews)
        self.papers.update(other.papers)


@fewer_collections()
def plan_daily(
    *,
    settings: Settings,
    day: date,
    dry_run: bool = False,
    on_chunk: Callable[[PlanReport], None] | None = None,
) -> PlanReport:
    """The operator's path: every active daily subscriber gets `day`'s digest, whatever the hour
    (feed-only readers get theirs in their feed).

    Subscribers stream in chunks of `plan_chunk_size` (ranked, written and committed chunk by
    chunk), so memory stays flat however long the list, and senders can start on the first
    chunk's rows while later ones are ranked: `on_chunk` hears of each committed chunk.
    """
    report = PlanReport()
    slots = {kind: Slot(kind, day.isoformat(), day, settings.lookback_days)
             for kind in ("daily", FEED_KIND)}
    window: Window = {}
    after = 0
    while True:
        with session_scope(settings.sqlalchemy_url) as session:
            chunk = due_daily_chunk(session, after=after, limit=settings.plan_chunk_size, day=day)
            if not chunk:
                break
            after = chunk[-1].id
            for kind, slot in slots.items():
                feed = kind == FEED_KIND
                report.add(plan_slot(
                    session=session, settings=settings, slot=slot, dry_run=dry_run, window=window,
                    subscribers=[s for s in chunk if (s.frequency == Frequency.feed) == feed],
                ))
            if dry_run:
                session.rollback()
        if on_chunk is not None:
            on_chunk(report)
    return report


@fewer_collections()
def plan_due(*, settings: Settings, now: datetime) -> PlanReport:
    """Beat's path: plan every subscriber whose local send hour has come, grouped by period."""
    report = PlanReport()
    with session_scope(settings.sqlalchemy_url) as session:
        fresh = _papers_arrived_between(session, now - timedelta(hours=24), now)
        groups: dict[Slot, list[Subscriber]] = defaultdict(list)
        active = session.exec(select(Subscriber).where(Subscriber.status == Status.active))
        for subscriber in active:
            slot = due_slot(subscriber, now, settings.lookback_days)
            # No email on days without new papers (arXiv is quiet on weekends and holidays).
            if slot and (fresh or slot.kind == "weekly") and subscriber.receives_mail(slot.day):
                groups[slot].append(subscriber)
        for slot, subscribers in groups.items():
            report.add(
                plan_slot(session=session, settings=settings, slot=slot, subscribers=subscribers)
            )
    return report


def _papers_arrived_between(session: Session, start: datetime, end: datetime) -> bool:
    arrived = (Paper.first_seen_at >= start) & (Paper.first_seen_at <= end)
    count = session.exec(select(func.count()).where(arrived)).one()
    return bool(count)


def plan_slot(
    *,
    session: Session,
    settings: Settings,
    slot: Slot,
    subscribers: Sequence[Reader],
    dry_run: bool = False,
    window: Window | None = None,
) -> PlanReport:
    """Rank the slot's window for these subscribers in one sparse pass; one row per digest.

    `window` keeps the window's papers and their index across calls (chunks of one plan).
    More than `plan_chunk_size` subscribers are ranked and written chunk by chunk, so the
    ranking's memory stays bounded on the beat path too.
    """
    window = {} if window is None else window
    step = settings.plan_chunk_size
    if len(subscribers) > step:
        report = PlanReport()
        for start in range(0, len(subscribers), step):
            chunk = subscribers[start : start + step]
            report.add(
                plan_slot(session=session, settings=settings, slot=slot, subscribers=chunk,
                          dry_run=dry_run, window=window)
            )  # fmt: skip
        return report
    report = PlanReport(due=len(subscribers))
    before = ledger.planned_subscriber_ids(
        session=session, kind=slot.kind, period=slot.period, among=[s.id or 0 for s in subscribers]
    )
    report.already_planned = sum(1 for s in subscribers if s.id in before)
    todo = [s for s in subscribers if s.id not in before]
    papers, index = _window_papers(session, settings, slot, window)
    if not todo or not papers:
        report.nothing_relevant = len(todo)
        return report
    rankings = _rank(session, settings, slot, todo, papers, index)
    related = {} if slot.kind == FEED_KIND else _related_for_thin_weeks(
        session=session, slot=slot, subscribers=todo, rankings=rankings, papers=papers,
        index=index)
    # Saved papers' news rides on a digest, mailed or in the feed, to readers who get one.
    readers = [s.id or 0 for s, matches in zip(todo, rankings, strict=True) if matches]
    news = find_news(session=session, subscriber_ids=readers)
    planned = _digests(slot, todo, rankings, related, news, report)
    if not dry_run:
        _write_plan(session, slot, planned, news, report)
    return report


def _window_papers(
    session: Session, settings: Settings, slot: Slot, window: Window
) -> tuple[list[Paper], PaperIndex]:
    """The papers of the slot's window and their index, loaded and built once per window
    (the index is the costly part), then found in `window` by later chunks."""
    key = (slot.since, slot.day)
    if key not in window:
        found = papers_since(session=session, since=slot.since, until=slot.day)
        lexicon = Lexicon.shipped(settings.synonyms_file)
        meaning = index_options(settings.semantic, settings.sqlalchemy_url)
        window[key] = (found, PaperIndex(found, lexicon=lexicon, **meaning))
    return window[key]


def _write_plan(
    session: Session, slot: Slot, planned: list[ledger.PlannedDelivery], news: News,
    report: PlanReport,
) -> None:
    """Add the planned rows to the ledger (feed-only ones straight into their readers' feeds)
    and note the news they carry as told; `report` counts the rows written."""
    # Equal digests get neighbouring ledger ids, so a sender's claims (taken in id order) find
    # them together and hand each group to the provider as one request.
    planned.sort(key=lambda p: (p.share or "", p.subscriber_id))
    report.planned = ledger.plan_deliveries(session=session, planned=planned)
    # Another planner may have raced us to some rows; those count as planned before.
    report.already_planned += len(planned) - report.planned
    if slot.kind == FEED_KIND:
        _record_for_feed(session, slot, [p.subscriber_id for p in planned])
        report.feed_only = report.planned
    record_told(session=session, kind=slot.kind, period=slot.period, news=news)


def _record_for_feed(session: Session, slot: Slot, subscriber_ids: Sequence[int]) -> None:
    """Feed-only digests are done once planned: recorded as sent (the personal feed shows
    sent rows) in the planner's own transaction, so no sender ever claims one."""
    for start in range(0, len(subscriber_ids), 5000):
        chunk = list(subscriber_ids[start : start + 5000])
        session.execute(update(Delivery).where(
            col(Delivery.kind) == FEED_KIND, col(Delivery.period) == slot.period,
            col(Delivery.status) == DeliveryStatus.planned,
            one_of(session, Delivery.subscriber_id, chunk),
        ).values(status=DeliveryStatus.sent, sent_at=utcnow(), lease_until=None))


def _digests(
    slot: Slot, todo: Sequence[Reader], rankings: Sequence[Sequence[Match]],
    related: dict[int, tuple[str, ...]], news: News, report: PlanReport,
) -> list[ledger.PlannedDelivery]:
    """One ledger row per subscriber with picks, noted in `report`. Never an empty digest:
    saved-paper news alone sends nothing; it waits for the reader's next digest."""
    planned = []
    feed = slot.kind == FEED_KIND  # never rendered: nothing to share
    for subscriber, matches in zip(todo, rankings, strict=True):
        if not matches:
            report.nothing_relevant += 1
            continue
        report.previews.append((subscriber.email, len(matches)))
        report.papers[subscriber.email] = [m.arxiv_id for m in matches]
        sid = subscriber.id or 0
        payload = DigestPayload(day=slot.day, matches=tuple(matches),
                                related=related.get(sid, ()),
                                updates=tuple(news.updates.get(sid, ())[:MAX_UPDATES]))
        data = payload.to_json()
        encoded = orjson.dumps(data).decode()  # once, for the share key and the row
        planned.append(ledger.PlannedDelivery(
            subscriber_id=sid, kind=slot.kind, period=slot.period,
            payload=data, payload_json=encoded, paper_ids=tuple(m.arxiv_id for m in matches),
            share=None if feed else payload.share_key(subscriber.keywords, encoded),
        ))  # fmt: skip
    return planned


def _rank(
    session: Session, settings: Settings, slot: Slot, todo: Sequence[Reader],
    papers: Sequence[Paper], index: PaperIndex,
) -> list[list[Match]]:
    """Each subscriber's picks: relevance, feedback, recency and trending, combined as
    digest/blend.py documents, never a paper they were already promised."""
    ids = [s.id or 0 for s in todo]
    # Only digests planned inside the window can hold its papers (a digest picks papers
    # announced on or before its day), with a few days to spare.
    planned_since = datetime.combine(slot.since - PICKS_MARGIN, time.min, tzinfo=UTC)
    sent = ledger.sent_paper_ids(session=session, subscriber_ids=ids, since=planned_since)
    ratings = ratings_for(session=session, subscriber_ids=ids)
    in_window = {paper.arxiv_id for paper in papers}
    rated = {r.arxiv_id for rs in ratings.values() for r in rs} - in_window
    return rank_for_each_reader(
        papers,
        [s.keywords for s in todo],
        index=index,
        day=slot.day,
        limit=settings.digest_size,
        floor=settings.relevance_floor,
        exclude=[sent.get(sid, set()) for sid in ids],
        upvotes=trending_on(session=session, day=slot.day),
        trending_only=[s.trending_only for s in todo],
        ratings=[ratings.get(sid, []) for sid in ids],
        rated_papers=dict(papers_by_id(session=session, ids=sorted(rated))) if rated else {},
    )


def _related_for_thin_weeks(
    *, session: Session, slot: Slot, subscribers: Sequence[Reader],
    rankings: Sequence[Sequence[Match]], papers: Sequence[Paper], index: PaperIndex,
) -> dict[int, tuple[str, ...]]:
    """Related keywords for the subscribers whose week, this digest included, brings fewer
    than THIN_WEEK papers: the email's footer offers them (digest.suggestions)."""
    thin = {s.id or 0: s for s, matches in zip(subscribers, rankings, strict=True)
            if 0 < len(matches) < THIN_WEEK and not s.trending_only}
    if not thin:
        return {}
    week_start = datetime.combine(slot.day - timedelta(days=6), time.min, tzinfo=UTC)
    before = ledger.papers_promised_since(session=session, subscriber_ids=list(thin),
                                          since=week_start)
    count = {s.id or 0: len(m) for s, m in zip(subscribers, rankings, strict=True)}
    titles = {paper.arxiv_id: paper.title for paper in papers}
    return {sid: related_keywords(index, titles, subscriber.keywords)
            for sid, subscriber in thin.items() if before[sid] + count[sid] < THIN_WEEK}
