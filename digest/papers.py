"""The paper store: one row per version-free arXiv id, merged across versions and sources."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

from sqlalchemy import JSON, func
from sqlmodel import Field, Session, SQLModel, col, select

# New-style ids (2601.20481, 0704.0001) and old-style ids (hep-th/9901001), optional version.
ARXIV_ID = re.compile(
    r"(?P<id>(?:\d{4}\.\d{4,5})|(?:[a-z][a-z\-]*(?:\.[A-Z]{2})?/\d{7}))(?:v(?P<version>\d+))?"
)


def split_arxiv_id(raw: str) -> tuple[str, int]:
    """'arXiv:2601.20481v2' or an abs/pdf URL -> ('2601.20481', 2); version 1 when absent."""
    match = ARXIV_ID.search(raw)
    if not match:
        raise ValueError(f"not an arXiv id: {raw[:80]!r}")
    return match.group("id"), int(match.group("version") or 1)


class PaperBase(SQLModel):
    arxiv_id: str = Field(primary_key=True, max_length=40)  # version-free
    version: int = 1
    title: str
    abstract: str = ""
    authors: list[str] = Field(default_factory=list, sa_type=JSON)
    categories: list[str] = Field(default_factory=list, sa_type=JSON)
    primary_category: str | None = None
    comment: str | None = None
    published: datetime | None = None  # first version
    updated: datetime | None = None  # this version
    announced_on: date = Field(index=True)  # the listing day we first saw it in
    abs_url: str = ""
    pdf_url: str = ""


class PaperIn(PaperBase):
    """A parsed paper on its way into the store, tagged with where it came from."""

    source: str = "unknown"


class Paper(PaperBase, table=True):
    sources: list[str] = Field(default_factory=list, sa_type=JSON)
    first_seen_at: datetime = Field(default_factory=lambda: datetime.now(UTC))


@dataclass(frozen=True)
class UpsertReport:
    added: int
    updated: int
    unchanged: int

    @property
    def total(self) -> int:
        return self.added + self.updated + self.unchanged


def _merge(existing: Paper, incoming: PaperIn) -> bool:
    """Fold a newer sighting into the stored row; True when anything changed."""
    before = existing.model_dump()
    if incoming.version >= existing.version:
        for name in ("version", "title", "abstract", "comment", "updated", "abs_url", "pdf_url"):
            value = getattr(incoming, name)
            if value not in (None, ""):
                setattr(existing, name, value)
        if incoming.authors:
            existing.authors = list(incoming.authors)
    # A cross-list or another source can only add categories, never take one away.
    existing.categories = list(dict.fromkeys([*existing.categories, *incoming.categories]))
    existing.primary_category = existing.primary_category or incoming.primary_category
    if incoming.published and (not existing.published or incoming.published < existing.published):
        existing.published = incoming.published
    # The first announcement wins: a new version is not a new paper.
    existing.announced_on = min(existing.announced_on, incoming.announced_on)
    existing.sources = list(dict.fromkeys([*existing.sources, incoming.source]))
    return existing.model_dump() != before


def dedupe(papers: Iterable[PaperIn]) -> list[PaperIn]:
    """Collapse repeated ids inside one document, keeping the highest version seen."""
    best: dict[str, PaperIn] = {}
    for paper in papers:
        kept = best.get(paper.arxiv_id)
        if kept is None:
            best[paper.arxiv_id] = paper
            continue
        newer, older = (paper, kept) if paper.version > kept.version else (kept, paper)
        newer.categories = list(dict.fromkeys([*older.categories, *newer.categories]))
        newer.announced_on = min(newer.announced_on, older.announced_on)  # first sighting wins
        best[paper.arxiv_id] = newer
    return list(best.values())


def upsert_papers(*, session: Session, papers: Sequence[PaperIn]) -> UpsertReport:
    """Insert new papers and merge known ones, in one transaction of the caller's session."""
    unique = dedupe(papers)
    ids = [paper.arxiv_id for paper in unique]
    existing = {
        paper.arxiv_id: paper
        for start in range(0, len(ids), 500)
        for paper in session.exec(
            select(Paper).where(col(Paper.arxiv_id).in_(ids[start : start + 500]))
        )
    }
    added = updated = unchanged = 0
    for incoming in unique:
        stored = existing.get(incoming.arxiv_id)
        if stored is None:
            data = incoming.model_dump(exclude={"source"})
            session.add(Paper(**data, sources=[incoming.source]))
            added += 1
        elif _merge(stored, incoming):
            session.add(stored)
            updated += 1
        else:
            unchanged += 1
    session.flush()
    return UpsertReport(added=added, updated=updated, unchanged=unchanged)


def papers_since(
    *, session: Session, since: date | None = None, until: date | None = None
) -> list[Paper]:
    """Papers announced in [since, until], newest first."""
    query = select(Paper)
    if since is not None:
        query = query.where(Paper.announced_on >= since)
    if until is not None:
        query = query.where(Paper.announced_on <= until)
    query = query.order_by(col(Paper.announced_on).desc(), col(Paper.arxiv_id).desc())
    return list(session.exec(query))


def papers_by_id(*, session: Session, ids: Iterable[str]) -> dict[str, Paper]:
    """Look papers up by version-free id."""
    wanted = list(dict.fromkeys(ids))
    found: dict[str, Paper] = {}
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        for paper in session.exec(select(Paper).where(col(Paper.arxiv_id).in_(chunk))):
            found[paper.arxiv_id] = paper
    return found


def latest_announcement(*, session: Session) -> date | None:
    """The newest listing day in the store."""
    newest: date | None = session.exec(select(func.max(Paper.announced_on))).one()
    return newest
