"""Plain functions for the day's ingestion and housekeeping (planning and sending live in
`workers.planning` and `workers.sending`).

The CLI runs them inline on the embedded default; Celery tasks wrap the same functions.
Each opens its own session from settings, so it can run in any process.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from core.db import session_scope
from core.settings import Settings
from digest.papers import upsert_papers
from digest.semantic import embed_papers
from digest.sources.arxiv_api import search_papers
from digest.sources.arxiv_feed import parse_feed
from digest.sources.fetch import read_document, rss_url
from digest.sources.trending import fetch_trending
from digest.trending import TrendingReport, store_trending
from subscribers import ledger
from subscribers.privacy import prune_unconfirmed


@dataclass(frozen=True)
class IngestReport:
    location: str
    kind: str
    added: int
    updated: int
    unchanged: int
    skipped: dict[str, int] = field(default_factory=dict)
    embedded: int = 0  # papers whose vectors were made now (semantic matching on)
    revised: int = 0  # stored papers a replace announcement brought a new version of

    @property
    def seen(self) -> int:
        return self.added + self.updated + self.unchanged


def ingest_document(*, settings: Settings, location: str, source: str = "") -> IngestReport:
    """Fetch (or read) one arXiv RSS/Atom document and store its papers; all or nothing."""
    data = read_document(location, timeout=settings.http_timeout_seconds)
    feed = parse_feed(data, source=source or _source_name(location))
    with session_scope(settings.sqlalchemy_url) as session:
        report = upsert_papers(session=session, papers=feed.papers)
        # New versions of papers stored before (what readers saved hear of them): never new
        # papers of their own; ones this store never had are left out.
        revised = upsert_papers(session=session, papers=feed.revisions, known_only=True)
    return IngestReport(
        location, feed.kind, report.added, report.updated, report.unchanged, dict(feed.skipped),
        embedded=embed_papers(settings.semantic, settings.sqlalchemy_url, feed.papers),
        revised=revised.updated,
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
    return IngestReport(f"api:{query}", "atom", report.added, report.updated, report.unchanged,
                        embedded=embed_papers(settings.semantic, settings.sqlalchemy_url, papers))


def _source_name(location: str) -> str:
    return "url" if location.startswith(("http://", "https://")) else "file"


def ingest_trending(*, settings: Settings, day: date) -> TrendingReport:
    """The day's trending papers (Hugging Face daily papers): upvotes per paper and day."""
    result = fetch_trending(settings.trending_url, day, timeout=settings.http_timeout_seconds)
    with session_scope(settings.sqlalchemy_url) as session:
        return store_trending(session=session, day=day, items=result.items)


@dataclass(frozen=True)
class SweepReport:
    due: int  # ledger rows waiting for a sender (retries due, expired leases)
    pruned: int  # unconfirmed signups older than the confirmation window


def sweep(*, settings: Settings, now: datetime) -> SweepReport:
    """Prune stale signups and count rows a sender should pick up."""
    with session_scope(settings.sqlalchemy_url) as session:
        pruned = prune_unconfirmed(session=session)
        due = ledger.count_due(session=session, now=now)
    return SweepReport(due=due, pruned=pruned)
