"""Plain functions for the day's work: ingest, plan deliveries, send what is due.

The CLI runs them inline on the embedded default; Celery tasks wrap the same functions.
Each opens its own session from settings, so it can run in any process.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta

from sqlmodel import Session

from digest.daily import compose_daily
from digest.db import session_scope
from digest.papers import papers_by_id, papers_since, upsert_papers
from digest.ranking import Match, PaperIndex, rank_profiles
from digest.settings import Settings
from digest.sources.arxiv_api import search_papers
from digest.sources.arxiv_feed import parse_feed
from digest.sources.fetch import read_document, rss_url
from emails.message import Message
from emails.render import RecipientLinks, render_daily
from emails.transports.base import PermanentSendError, TransientSendError, Transport
from subscribers import ledger
from subscribers.models import Subscriber
from subscribers.service import due_daily
from subscribers.tokens import Purpose, make_token

Progress = Callable[[int], None]
LEASE = timedelta(minutes=10)
MAX_ATTEMPTS = 8  # transient failures past this become permanent: no endless loop
RETRY_DELAYS = [
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
]


@dataclass(frozen=True)
class IngestReport:
    location: str
    kind: str
    added: int
    updated: int
    unchanged: int
    skipped: dict[str, int] = field(default_factory=dict)

    @property
    def seen(self) -> int:
        return self.added + self.updated + self.unchanged


def ingest_document(*, settings: Settings, location: str, source: str = "") -> IngestReport:
    """Fetch (or read) one arXiv RSS/Atom document and store its papers; all or nothing."""
    data = read_document(location, timeout=settings.http_timeout_seconds)
    feed = parse_feed(data, source=source or _source_name(location))
    with session_scope(settings.sqlalchemy_url) as session:
        report = upsert_papers(session=session, papers=feed.papers)
    return IngestReport(
        location, feed.kind, report.added, report.updated, report.unchanged, dict(feed.skipped)
    )


def ingest_listings(*, settings: Settings) -> IngestReport:
    """The daily RSS listing of every configured category, in one request."""
    location = rss_url(settings.arxiv_rss_url, settings.arxiv_categories)
    return ingest_document(settings=settings, location=location, source="rss")


def backfill(*, settings: Settings, query: str, max_results: int = 50) -> IngestReport:
    """Search the arXiv API for a keyword and store what it finds."""
    papers = search_papers(query, api_url=settings.arxiv_api_url, max_results=max_results)
    with session_scope(settings.sqlalchemy_url) as session:
        report = upsert_papers(session=session, papers=papers)
    return IngestReport(f"api:{query}", "atom", report.added, report.updated, report.unchanged)


def _source_name(location: str) -> str:
    return "url" if location.startswith(("http://", "https://")) else "file"


@dataclass
class PlanReport:
    day: date
    due: int = 0  # subscribers considered
    planned: int = 0  # new ledger rows
    already_planned: int = 0
    nothing_relevant: int = 0
    previews: list[tuple[str, int]] = field(default_factory=list)  # (email, papers) per digest


def plan_daily(*, settings: Settings, day: date, dry_run: bool = False) -> PlanReport:
    """Rank the window's papers for every daily subscriber and write one ledger row each."""
    report = PlanReport(day=day)
    with session_scope(settings.sqlalchemy_url) as session:
        since = day - timedelta(days=settings.lookback_days - 1)
        papers = papers_since(session=session, since=since, until=day)
        subscribers = [s for s in due_daily(session=session) if s.receives_mail(day)]
        report.due = len(subscribers)
        planned_before = ledger.planned_subscriber_ids(
            session=session, kind="daily", period=day.isoformat()
        )
        report.already_planned = sum(1 for s in subscribers if s.id in planned_before)
        subscribers = [s for s in subscribers if s.id not in planned_before]
        if not papers or not subscribers:
            report.nothing_relevant = len(subscribers) if not papers else 0
            return report
        sent = ledger.sent_paper_ids(
            session=session, subscriber_ids=[s.id for s in subscribers if s.id]
        )
        rankings = rank_profiles(
            PaperIndex(papers),
            [s.keywords for s in subscribers],
            limit=settings.digest_size,
            floor=settings.relevance_floor,
            exclude=[sent.get(s.id or 0, set()) for s in subscribers],
        )
        planned = []
        for subscriber, matches in zip(subscribers, rankings, strict=True):
            if not matches:
                report.nothing_relevant += 1
                continue
            report.previews.append((subscriber.email, len(matches)))
            planned.append(
                ledger.PlannedDelivery(
                    subscriber_id=subscriber.id or 0,
                    kind="daily",
                    period=day.isoformat(),
                    payload={"day": day.isoformat(), "matches": [_match_json(m) for m in matches]},
                    paper_ids=tuple(m.arxiv_id for m in matches),
                )
            )
        if dry_run:
            session.rollback()
            return report
        report.planned = ledger.plan_deliveries(session=session, planned=planned)
        # Another planner may have raced us to some rows; those count as planned before.
        report.already_planned += len(planned) - report.planned
    return report


def _match_json(match: Match) -> dict[str, object]:
    return {
        "arxiv_id": match.arxiv_id,
        "score": round(match.score, 4),
        "matched": list(match.matched),
    }


def recipient_links(settings: Settings, subscriber_id: int) -> RecipientLinks:
    """Signed manage and unsubscribe links for one subscriber (ids and purposes, no address)."""
    keys = settings.signing_keys()
    base = settings.public_url.rstrip("/")
    manage = make_token(keys=keys, purpose=Purpose.manage, subscriber_id=subscriber_id)
    leave = make_token(keys=keys, purpose=Purpose.unsubscribe, subscriber_id=subscriber_id)
    return RecipientLinks(
        manage_url=f"{base}/manage/{manage}",
        unsubscribe_url=f"{base}/unsubscribe/{leave}",
        one_click_url=f"{base}/unsubscribe/{leave}",
    )


def render_delivery(
    *, settings: Settings, delivery: ledger.Delivery, subscriber: Subscriber, session: Session
) -> Message | None:
    """The message a ledger row stands for; None when its papers have vanished."""
    matches = [
        Match(m["arxiv_id"], float(m["score"]), tuple(m["matched"]))
        for m in delivery.payload.get("matches", [])
    ]
    papers = papers_by_id(session=session, ids=[m.arxiv_id for m in matches])
    digest = compose_daily(
        day=date.fromisoformat(delivery.payload["day"]),
        keywords=subscriber.keywords,
        matches=matches,
        papers=papers,
    )
    if digest is None:
        return None
    return render_daily(
        digest,
        to=subscriber.email,
        sender=settings.from_email,
        links=recipient_links(settings, subscriber.id or 0),
        postal_address=settings.postal_address,
    )


@dataclass
class SendReport:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    skipped: int = 0

    @property
    def handled(self) -> int:
        return self.sent + self.retried + self.failed + self.skipped


def send_due(
    *,
    settings: Settings,
    transport: Transport,
    batch_size: int = 50,
    progress: Progress | None = None,
) -> SendReport:
    """Claim due ledger rows batch by batch and hand them to the transport until none is due."""
    report = SendReport()
    while True:
        with session_scope(settings.sqlalchemy_url) as session:
            claimed = [
                d.id for d in ledger.claim_batch(session=session, limit=batch_size, lease=LEASE)
            ]
        if not claimed:
            return report
        for delivery_id in claimed:
            _send_one(
                settings=settings, transport=transport, delivery_id=delivery_id or 0, report=report
            )
            if progress:
                progress(1)


def _send_one(
    *, settings: Settings, transport: Transport, delivery_id: int, report: SendReport
) -> None:
    """Re-read the row and its subscriber, send, and record the outcome in one transaction."""
    with session_scope(settings.sqlalchemy_url) as session:
        delivery = session.get(ledger.Delivery, delivery_id)
        if delivery is None or delivery.status != ledger.DeliveryStatus.sending:
            return
        subscriber = session.get(Subscriber, delivery.subscriber_id)
        today = date.today()
        if subscriber is None or not subscriber.receives_mail(today):
            ledger.mark_skipped(session=session, delivery=delivery, reason="subscriber not active")
            report.skipped += 1
            return
        message = render_delivery(
            settings=settings, delivery=delivery, subscriber=subscriber, session=session
        )
        if message is None:
            ledger.mark_skipped(
                session=session, delivery=delivery, reason="papers no longer stored"
            )
            report.skipped += 1
            return
        try:
            provider_id = transport.send(message)
        except TransientSendError as error:
            if delivery.attempts >= MAX_ATTEMPTS:
                ledger.mark_failed(session=session, delivery=delivery, error=f"gave up: {error}")
                report.failed += 1
                return
            attempt = min(delivery.attempts, len(RETRY_DELAYS)) - 1
            delay = (
                timedelta(seconds=error.retry_after) if error.retry_after else RETRY_DELAYS[attempt]
            )
            ledger.mark_retry(session=session, delivery=delivery, error=str(error), delay=delay)
            report.retried += 1
            return
        except PermanentSendError as error:
            ledger.mark_failed(session=session, delivery=delivery, error=str(error))
            report.failed += 1
            return
        ledger.mark_sent(session=session, delivery=delivery, provider_message_id=provider_id)
        report.sent += 1
