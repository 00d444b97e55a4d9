"""A reader's personal feed: the picks of their sent digests, newest first, as the email said.

Read from the delivery ledger (the daily and weekly rows that went out, and a feed-only
reader's "feed" rows, recorded when planned), each pick shown
through the same PaperView the daily email uses, so the feed's "why it matched" line, links
and authors are the email's. A digest that told news of saved papers ("v3 posted 2 Dec",
"code released: ...") gives one entry per paper with news, before its picks, as the email
shows its block first; a feed-only reader hears of them here alone. The web route
(subscribers/web/feed.py) writes the Atom.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func
from sqlmodel import Session, col, select

from digest.daily import compose_daily
from digest.papers import papers_by_id
from emails.render import PaperView, clean, paper_view
from emails.updates import UpdateView
from subscribers.ledger import Delivery, DeliveryStatus
from subscribers.models import Status, Subscriber
from subscribers.payloads import PICK_KINDS, DigestPayload
from subscribers.saved_updates import update_views

FEED_DAYS = 30  # digests sent in the last 30 days ...
FEED_ENTRIES = 100  # ... and at most this many entries (papers, saved papers' news) from them
FORMAT = "2"  # part of the validator: bump when the feed's content changes shape


@dataclass(frozen=True)
class FeedEntry:
    """One paper of one sent digest."""

    view: PaperView  # what the daily email showed (title, links, the matched line ...)
    abstract: str  # the whole abstract, cleaned (the email shows a snippet)
    authors: tuple[str, ...]
    categories: tuple[str, ...]
    why: str  # "Matched: speech codec; close to: voice conversion", or why it was trending
    sent_at: datetime
    day: str  # the digest's day, ISO


@dataclass(frozen=True)
class FeedUpdate:
    """News of one saved paper, as one sent digest told it."""

    view: UpdateView
    sent_at: datetime
    day: str  # the digest's day, ISO

    @property
    def what(self) -> str:
        """The changes in a line: "v3 posted 2 Dec · code released: github.com/org/repo"."""
        return " · ".join(f"{what}: {shown}" if shown else what
                          for what, shown, _ in self.view.changes)


# A reader who left (or whose mail bounced or was reported) has no feed either: it answers
# 410 Gone, which feed readers take as "stop polling". Paused and feed-only readers are in.
ENDED = (Status.unsubscribed, Status.bounced, Status.complained)


def feed_ended(subscriber: Subscriber) -> bool:
    return subscriber.status in ENDED


@dataclass(frozen=True)
class Validator:
    """What the feed's content depends on, cheap to read: its ETag and Last-Modified."""

    etag: str
    last_modified: datetime


def _aware(moment: datetime) -> datetime:
    """SQLite hands datetimes back naive; they were stored in UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _rows_of(subscriber_id: int, since: datetime) -> list[object]:
    return [
        col(Delivery.subscriber_id) == subscriber_id,
        col(Delivery.kind).in_(PICK_KINDS),
        col(Delivery.status) == DeliveryStatus.sent,
        col(Delivery.sent_at) >= since,
    ]


def feed_validator(*, session: Session, subscriber: Subscriber,
                   now: datetime | None = None) -> Validator:
    """ETag and Last-Modified from one small aggregate query: a reader polling every few
    minutes gets its 304 without a paper being loaded."""
    since = (now or datetime.now(UTC)) - timedelta(days=FEED_DAYS)
    sid = subscriber.id or 0
    count, newest_id, newest_sent = session.exec(
        select(func.count(col(Delivery.id)), func.max(col(Delivery.id)),
               func.max(col(Delivery.sent_at))).where(*_rows_of(sid, since))  # type: ignore[arg-type]
    ).one()
    stamp = "|".join([FORMAT, str(sid), str(subscriber.feed_generation), str(count),
                      str(newest_id), "\x1f".join(subscriber.keywords)])
    etag = '"' + hashlib.blake2b(stamp.encode(), digest_size=12).hexdigest() + '"'
    modified = _aware(newest_sent) if newest_sent is not None else _aware(subscriber.created_at)
    return Validator(etag=etag, last_modified=modified.replace(microsecond=0))


def why_line(view: PaperView) -> str:
    """Why a pick was in the digest, in the email's words."""
    parts = [view.matched] if view.matched else (
        [f"Trending today: {view.upvotes} on Hugging Face"] if view.upvotes else [])
    return " · ".join(parts + list(view.reasons))


def feed_entries(*, session: Session, subscriber: Subscriber,
                 now: datetime | None = None) -> list[FeedEntry | FeedUpdate]:
    """The picks (and news of saved papers) of the digests sent in the last FEED_DAYS, newest
    digest first and in the email's order within one, at most FEED_ENTRIES; a paper no
    longer stored is left out."""
    since = (now or datetime.now(UTC)) - timedelta(days=FEED_DAYS)
    rows = session.exec(
        select(Delivery).where(*_rows_of(subscriber.id or 0, since))  # type: ignore[arg-type]
        .order_by(col(Delivery.sent_at).desc(), col(Delivery.id).desc()).limit(FEED_ENTRIES)
    ).all()
    payloads = [(row, DigestPayload.from_json(row.payload)) for row in rows]
    papers = papers_by_id(session=session, ids=[i for _, p in payloads for i in p.paper_ids()])
    entries: list[FeedEntry | FeedUpdate] = []
    seen: set[str] = set()
    for row, payload in payloads:
        sent_at, day = _aware(row.sent_at or row.created_at), payload.day.isoformat()
        for update in update_views(payload.updates, papers):
            entries.append(FeedUpdate(view=update, sent_at=sent_at, day=day))
            if len(entries) >= FEED_ENTRIES:
                return entries
        digest = compose_daily(day=payload.day, keywords=subscriber.keywords,
                               matches=payload.matches, papers=papers)
        for pick in digest.picks if digest is not None else ():
            if pick.paper.arxiv_id in seen:
                continue
            seen.add(pick.paper.arxiv_id)
            view = paper_view(pick)
            entries.append(FeedEntry(
                view=view, abstract=clean(pick.paper.abstract), why=why_line(view),
                authors=tuple(a for a in (clean(a) for a in pick.paper.authors) if a),
                categories=tuple(c for c in (clean(c) for c in pick.paper.categories) if c),
                sent_at=sent_at, day=day))
            if len(entries) >= FEED_ENTRIES:
                return entries
    return entries

