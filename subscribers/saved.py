"""Saved papers: the "Save" link under each paper of a daily email keeps it on the reader's list.

The list shows on the manage page and downloads as BibTeX and CSV. A saved paper is also a
strong "more like this" for the ranking (subscribers.feedback.SAVED_WEIGHT).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import JSON, Column, ForeignKey, Integer, String, func
from sqlmodel import Field, Session, SQLModel, col, delete, select

from core.db import one_of
from digest.daily import paper_links
from digest.papers import Paper
from subscribers.models import utcnow
from subscribers.spreadsheets import csv_text


class SavedPaper(SQLModel, table=True):
    """One paper on one reader's saved list."""

    __tablename__ = "saved_paper"

    subscriber_id: int = Field(
        sa_column=Column(
            Integer, ForeignKey("subscriber.id", ondelete="CASCADE"), primary_key=True
        )
    )
    arxiv_id: str = Field(
        sa_column=Column(
            String(40), ForeignKey("paper.arxiv_id", ondelete="CASCADE"), primary_key=True
        )
    )
    created_at: datetime = Field(default_factory=utcnow)
    # What the reader already knows of the paper (subscribers/saved_updates.py): its version
    # and code/project links when saved, moved on when a digest announces a change; None on
    # rows saved before these were kept (the first check takes the paper as it is then).
    known_version: int | None = None
    known_links: list[str] | None = Field(default=None, sa_type=JSON(none_as_null=True))
    checked_at: datetime | None = None  # when the paper was last compared with them


NEWS_LINKS = ("code", "project")  # links whose first appearance is news for a saved paper


def news_links(paper: Paper) -> list[tuple[str, str]]:
    """The paper's code and project links, (kind, address) each."""
    return [(kind, url) for kind, url in paper_links(paper) if kind in NEWS_LINKS]


def tracked_links(paper: Paper) -> list[str]:
    """The paper's code and project addresses, as `known_links` keeps them."""
    return [url for _, url in news_links(paper)]


@dataclass(frozen=True)
class SavedItem:
    """A saved paper as the page and the downloads show it."""

    arxiv_id: str
    title: str
    authors: tuple[str, ...]
    announced: str  # ISO day
    year: str
    primary_category: str
    abs_url: str
    pdf_url: str
    saved_at: datetime


def save_paper(*, session: Session, subscriber_id: int, arxiv_id: str) -> bool:
    """Put a paper on the reader's list (idempotent); True when it was not there yet."""
    if session.get(SavedPaper, (subscriber_id, arxiv_id)) is not None:
        return False
    paper = session.get(Paper, arxiv_id)
    # News is measured from what the paper is now: the reader has just seen this version.
    session.add(SavedPaper(subscriber_id=subscriber_id, arxiv_id=arxiv_id,
                           known_version=paper.version if paper else None,
                           known_links=tracked_links(paper) if paper else None,
                           checked_at=utcnow()))
    session.flush()
    return True


def unsave_paper(*, session: Session, subscriber_id: int, arxiv_id: str) -> bool:
    """Take a paper off the list; True when it was on it."""
    found = session.get(SavedPaper, (subscriber_id, arxiv_id)) is not None
    session.exec(delete(SavedPaper).where(col(SavedPaper.subscriber_id) == subscriber_id,
                                          col(SavedPaper.arxiv_id) == arxiv_id))
    session.flush()
    return found


def saved_ids(*, session: Session, subscriber_ids: list[int]) -> dict[int, list[str]]:
    """subscriber id -> the papers they saved, oldest first."""
    found: dict[int, list[str]] = {}
    if not subscriber_ids:
        return found
    query = (select(SavedPaper).where(one_of(session, SavedPaper.subscriber_id, subscriber_ids))
             .order_by(col(SavedPaper.subscriber_id), col(SavedPaper.created_at)))
    for row in session.exec(query):
        found.setdefault(row.subscriber_id, []).append(row.arxiv_id)
    return found


def count_saved(*, session: Session, subscriber_id: int) -> int:
    return session.exec(select(func.count()).select_from(SavedPaper)
                        .where(col(SavedPaper.subscriber_id) == subscriber_id)).one()


def saved_papers(*, session: Session, subscriber_id: int,
                 limit: int | None = None) -> list[SavedItem]:
    """The reader's saved papers, newest first."""
    query = (select(SavedPaper, Paper).join(Paper, col(Paper.arxiv_id) == SavedPaper.arxiv_id)
             .where(col(SavedPaper.subscriber_id) == subscriber_id)
             .order_by(col(SavedPaper.created_at).desc(), col(SavedPaper.arxiv_id)))
    if limit is not None:
        query = query.limit(limit)
    items = []
    for saved, paper in session.exec(query):
        moment = saved.created_at if saved.created_at.tzinfo else saved.created_at.replace(
            tzinfo=UTC)
        items.append(SavedItem(
            arxiv_id=paper.arxiv_id, title=paper.title or paper.arxiv_id,
            authors=tuple(paper.authors), announced=paper.announced_on.isoformat(),
            year=str(paper.published.year if paper.published else paper.announced_on.year),
            primary_category=paper.primary_category or "",
            abs_url=paper.abs_url or f"https://arxiv.org/abs/{paper.arxiv_id}",
            pdf_url=paper.pdf_url or f"https://arxiv.org/pdf/{paper.arxiv_id}",
            saved_at=moment))
    return items


# --- downloads -------------------------------------------------------------------------------


def _bib_text(text: str) -> str:
    """A field value BibTeX reads: LaTeX kept, unbalanced braces dropped, specials escaped."""
    text = " ".join(text.split())
    depth = 0
    for char in text:
        depth += {"{": 1, "}": -1}.get(char, 0)
        if depth < 0:
            break
    if depth != 0:
        text = text.replace("{", "").replace("}", "")
    return re.sub(r"(?<!\\)([&%#])", r"\\\1", text)


def bib_key(arxiv_id: str) -> str:
    """A citation key from the id ("hep-th/9901001" -> "arXiv:hep-th_9901001")."""
    return "arXiv:" + re.sub(r"[^A-Za-z0-9.\-]", "_", arxiv_id)


def to_bibtex(items: list[SavedItem]) -> str:
    """One @misc entry per paper, the way arXiv's own "Export BibTeX citation" writes them."""
    entries = []
    for item in items:
        fields = [
            ("title", _bib_text(item.title)),
            ("author", " and ".join(_bib_text(a) for a in item.authors if a.strip())),
            ("year", item.year),
            ("eprint", item.arxiv_id),
            ("archivePrefix", "arXiv"),
            ("primaryClass", _bib_text(item.primary_category)),
            ("url", item.abs_url),
        ]
        body = ",\n".join(f"      {name}={{{value}}}" for name, value in fields if value)
        entries.append(f"@misc{{{bib_key(item.arxiv_id)},\n{body}\n}}\n")
    return "\n".join(entries)


CSV_COLUMNS = ("arxiv_id", "title", "authors", "announced", "saved_at", "abs_url", "pdf_url")


def to_csv(items: list[SavedItem]) -> str:
    return csv_text(CSV_COLUMNS, (
        (item.arxiv_id, " ".join(item.title.split()), "; ".join(item.authors), item.announced,
         item.saved_at.replace(microsecond=0).isoformat(), item.abs_url, item.pdf_url)
        for item in items
    ))
