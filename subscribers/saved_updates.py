"""News of saved papers for their reader's next digest: a new arXiv version, or a code or
project link that was not there when the reader last heard of the paper.

Ingest stamps a paper when a later sighting changes its version, abstract or comment
(digest.papers: `revised_at`, `version_seen_at`). Each saved_paper row keeps what its reader
knows (`known_version`, `known_links`) and when it was last compared (`checked_at`), so the
planner reads only the saved papers revised since. The news rides in the digest's payload
("Updates to papers you saved", at most MAX_UPDATES, never an email of its own); once the
digest is in the ledger its news counts as told and is never shown again. A reader with no
digest that day keeps their news for the next one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import func, update
from sqlmodel import Session, col, select

from core.db import one_of
from digest.papers import Paper
from emails.updates import UpdateView, update_view
from subscribers.ledger import Delivery
from subscribers.models import utcnow
from subscribers.payloads import DigestPayload, PaperUpdate
from subscribers.saved import SavedPaper, news_links

MAX_UPDATES = 5  # per digest; the rest wait for the next one


@dataclass
class News:
    """What the planner found for a group of readers."""

    updates: dict[int, list[PaperUpdate]] = field(default_factory=dict)  # newest first
    quiet: list[tuple[int, str]] = field(default_factory=list)  # revised, nothing to tell
    # (reader, paper) -> the paper's version and code/project links as they were read
    seen: dict[tuple[int, str], tuple[int, list[str]]] = field(default_factory=dict)
    read_at: datetime = field(default_factory=utcnow)


def _posted(paper: Paper) -> date | None:
    """The day the current version appeared: arXiv's own date when the source gave one for
    this version, else the day ingest first saw it."""
    if paper.updated is not None and (paper.published is None or paper.updated > paper.published):
        return paper.updated.date()
    seen = paper.version_seen_at or paper.revised_at
    return seen.date() if seen else None


def _news(saved: SavedPaper, paper: Paper,
          found: Sequence[tuple[str, str]]) -> PaperUpdate | None:
    """What moved past what the reader knows, `found` being the paper's code and project
    links now; None when nothing did (or when the row has no baseline yet: it takes the
    paper as it is)."""
    version = paper.version if saved.known_version is not None and (
        paper.version > saved.known_version) else 0
    known = set(saved.known_links or ())
    links = () if saved.known_links is None else tuple(
        (kind, url) for kind, url in found if url not in known)
    if not version and not links:
        return None
    return PaperUpdate(arxiv_id=paper.arxiv_id, version=version,
                       posted=_posted(paper) if version else None, links=links)


def find_news(*, session: Session, subscriber_ids: Sequence[int]) -> News:
    """Each reader's saved papers revised since they were last compared, and what changed."""
    news = News()
    if not subscriber_ids:
        return news
    last_looked = func.coalesce(col(SavedPaper.checked_at), col(SavedPaper.created_at))
    query = (
        select(SavedPaper, Paper).join(Paper, col(Paper.arxiv_id) == SavedPaper.arxiv_id)
        .where(one_of(session, SavedPaper.subscriber_id, subscriber_ids),
               col(Paper.revised_at).is_not(None), col(Paper.revised_at) > last_looked)
        .order_by(col(Paper.revised_at).desc(), col(Paper.arxiv_id))
    )
    for saved, paper in session.exec(query):
        links = news_links(paper)
        news.seen[(saved.subscriber_id, saved.arxiv_id)] = (paper.version,
                                                             [url for _, url in links])
        change = _news(saved, paper, links)
        if change is None:
            news.quiet.append((saved.subscriber_id, saved.arxiv_id))
        else:
            news.updates.setdefault(saved.subscriber_id, []).append(change)
    return news


def record_told(*, session: Session, kind: str, period: str, news: News) -> None:
    """After the planner wrote its rows: the news each row of this period carries is told
    (read back from the rows, so a row another planner wrote first counts as written), and
    the quiet rows are compared. Either way the row's baseline moves to the paper as it is."""
    told = list(news.quiet)
    readers = list(news.updates)
    if readers:
        rows = session.exec(select(Delivery.subscriber_id, Delivery.payload).where(
            Delivery.kind == kind, Delivery.period == period,
            one_of(session, Delivery.subscriber_id, readers)))
        for sid, payload in rows:
            told += [(sid, u.arxiv_id) for u in DigestPayload.from_json(payload or {}).updates]
    # The paper as it was read, stamped with when: a revision ingested since is newer than
    # the stamp and is compared again next time.
    for key in dict.fromkeys(told):
        if key in news.seen:
            version, links = news.seen[key]
            session.execute(update(SavedPaper).where(
                col(SavedPaper.subscriber_id) == key[0], col(SavedPaper.arxiv_id) == key[1],
            ).values(known_version=version, known_links=links, checked_at=news.read_at))


def update_views(updates: Sequence[PaperUpdate],
                 papers: Mapping[str, Paper]) -> tuple[UpdateView, ...]:
    """The digest's "Updates to papers you saved" block; papers no longer stored drop out."""
    views = (update_view(papers[u.arxiv_id], version=u.version, posted=u.posted, links=u.links)
             for u in updates if u.arxiv_id in papers)
    return tuple(view for view in views if view is not None)
