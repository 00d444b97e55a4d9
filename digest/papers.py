"""The paper store: one row per version-free arXiv id, merged across versions and sources."""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from pydantic import model_validator
from sqlalchemy import JSON, func
from sqlmodel import Field, Session, SQLModel, col, select

log = logging.getLogger("digest.papers")

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


# The longest values kept on ingest. Real ones are far shorter (arXiv caps abstracts at 1,920
# characters); past these a feed is broken or hostile, and every page showing the paper (the
# signup preview, the digests) would pay for it. Cut values end in "…" and are reported.
MAX_TITLE = 1_000
MAX_ABSTRACT = 10_000
MAX_COMMENT = 1_000
MAX_AUTHORS = 500  # names per paper: collaborations list thousands, a digest shows three
MAX_AUTHOR_NAME = 200
_TEXT_CAPS = {"title": MAX_TITLE, "abstract": MAX_ABSTRACT, "comment": MAX_COMMENT}


class PaperIn(PaperBase):
    """A parsed paper on its way into the store, tagged with where it came from.

    Every source builds one, so this is where fields are capped: `trimmed` names each field
    that was cut and its original length (characters, or names for `authors`).
    """

    source: str = "unknown"
    trimmed: dict[str, int] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _cap_fields(self) -> PaperIn:
        for name, limit in _TEXT_CAPS.items():
            value = getattr(self, name)
            if value and len(value) > limit:
                self.trimmed[name] = len(value)
                setattr(self, name, value[:limit - 1].rstrip() + "…")
        if len(self.authors) > MAX_AUTHORS or any(len(a) > MAX_AUTHOR_NAME for a in self.authors):
            self.trimmed["authors"] = len(self.authors)
            self.authors = [
                a if len(a) <= MAX_AUTHOR_NAME else a[:MAX_AUTHOR_NAME - 1] + "…"
                for a in self.authors[:MAX_AUTHORS]
            ]
        return self


class Paper(PaperBase, table=True):
    sources: list[str] = Field(default_factory=list, sa_type=JSON)
    first_seen_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    # When ingest first saw the stored version (None while it is the version first stored):
    # a saved paper's "v3 posted" note in its reader's next digest.
    version_seen_at: datetime | None = None
    # When a later sighting last changed the version, abstract or comment (None: never). Only
    # papers revised after a reader last looked can bring news (a new version, a code link),
    # so the planner reads just those.
    revised_at: datetime | None = None


@dataclass(frozen=True)
class UpsertReport:
    added: int
    updated: int
    unchanged: int
    trimmed: dict[str, int] = field(default_factory=dict)  # field -> papers it was cut in

    @property
    def total(self) -> int:
        return self.added + self.updated + self.unchanged


def _merge(existing: Paper, incoming: PaperIn) -> bool:
    """Fold a newer sighting into the stored row; True when anything changed."""
    before = existing.model_dump()
    was = (existing.version, existing.abstract, existing.comment)
    if incoming.version > existing.version and incoming.updated is None:
        existing.updated = None  # the date was the old version's; this one's is not known
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
    _note_revision(existing, was)
    return existing.model_dump() != before


def _note_revision(paper: Paper, was: tuple[int, str, str | None]) -> None:
    """Stamp a version bump, or a changed abstract or comment (where code links appear)."""
    if (paper.version, paper.abstract, paper.comment) == was:
        return
    now = datetime.now(UTC)
    paper.revised_at = now
    if paper.version > was[0]:
        paper.version_seen_at = now


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


def upsert_papers(
    *, session: Session, papers: Sequence[PaperIn], known_only: bool = False
) -> UpsertReport:
    """Insert new papers and merge known ones, in one transaction of the caller's session;
    fields cut to their caps are logged (a warning per paper) and counted in the report.
    `known_only` merges papers already stored and leaves the rest out (a listing's new
    versions of older papers: news for readers who saved them, not papers of the day)."""
    unique = dedupe(papers)
    trimmed: Counter[str] = Counter()
    for paper in unique:
        for name, length in paper.trimmed.items():
            trimmed[name] += 1
            limit = MAX_AUTHORS if name == "authors" else _TEXT_CAPS[name]
            unit = "names" if name == "authors" else "characters"
            log.warning("%s: %s cut to %s %s (was %s)", paper.arxiv_id, name,
                        f"{limit:,}", unit, f"{length:,}")
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
        if stored is None and known_only:
            continue
        if stored is None:
            data = incoming.model_dump(exclude={"source", "trimmed"})
            session.add(Paper(**data, sources=[incoming.source]))
            added += 1
        elif _merge(stored, incoming):
            session.add(stored)
            updated += 1
        else:
            unchanged += 1
    session.flush()
    return UpsertReport(added=added, updated=updated, unchanged=unchanged,
                        trimmed=dict(trimmed))


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
