"""Trending signal: upvotes per paper and day, stored beside the papers they point at."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from sqlalchemy import Column, ForeignKey, String
from sqlmodel import Field, Session, SQLModel, col, select

from digest.papers import Paper, PaperIn, papers_by_id, upsert_papers
from digest.sources.trending import TrendingItem

SOURCE = "trending"


class TrendingScore(SQLModel, table=True):
    """How many upvotes a paper had on one day's trending list (the last count fetched)."""

    __tablename__ = "trending_score"

    arxiv_id: str = Field(
        sa_column=Column(
            String(40), ForeignKey("paper.arxiv_id", ondelete="CASCADE"), primary_key=True
        )
    )
    day: date = Field(primary_key=True, index=True)
    upvotes: int = 0


@dataclass(frozen=True)
class TrendingReport:
    day: date
    scores_added: int
    scores_updated: int
    scores_unchanged: int
    papers_added: int  # trending-only papers new to the store

    @property
    def total(self) -> int:
        return self.scores_added + self.scores_updated + self.scores_unchanged


@dataclass(frozen=True)
class TrendingPaper:
    """A stored paper and its upvotes on one day."""

    paper: Paper
    upvotes: int


def _paper_in(item: TrendingItem, day: date) -> PaperIn:
    """A trending item as a paper for the store, first seen on the trending day."""
    return PaperIn(
        arxiv_id=item.arxiv_id,
        title=item.title,
        abstract=item.summary,
        authors=list(item.authors),
        published=item.published_at,
        announced_on=day,
        abs_url=f"https://arxiv.org/abs/{item.arxiv_id}",
        pdf_url=f"https://arxiv.org/pdf/{item.arxiv_id}",
        source=SOURCE,
    )


def store_trending(
    *, session: Session, day: date, items: Sequence[TrendingItem]
) -> TrendingReport:
    """Upsert the day's upvotes, adding trending-only papers to the store so they can be ranked.

    Runs in the caller's transaction. Re-ingesting a day replaces each paper's count with the
    newer one; a paper missing from a later fetch keeps its earlier count.
    """
    best: dict[str, TrendingItem] = {}
    for item in items:
        if item.arxiv_id not in best or item.upvotes > best[item.arxiv_id].upvotes:
            best[item.arxiv_id] = item
    stored = papers_by_id(session=session, ids=best)
    # A paper arXiv already listed keeps its own text, version and announcement day: the
    # trending copy is a summary of the same paper, and re-announcing it would resend it.
    fresh = [_paper_in(item, day) for arxiv_id, item in best.items() if arxiv_id not in stored]
    papers_added = upsert_papers(session=session, papers=fresh).added if fresh else 0
    for arxiv_id in best:
        paper = stored.get(arxiv_id)
        if paper is not None and SOURCE not in paper.sources:
            paper.sources = [*paper.sources, SOURCE]
            session.add(paper)
    existing = {
        score.arxiv_id: score
        for score in session.exec(
            select(TrendingScore).where(
                TrendingScore.day == day, col(TrendingScore.arxiv_id).in_(list(best))
            )
        )
    } if best else {}
    added = updated = unchanged = 0
    for arxiv_id, item in best.items():
        score = existing.get(arxiv_id)
        if score is None:
            session.add(TrendingScore(arxiv_id=arxiv_id, day=day, upvotes=item.upvotes))
            added += 1
        elif score.upvotes != item.upvotes:
            score.upvotes = item.upvotes
            session.add(score)
            updated += 1
        else:
            unchanged += 1
    session.flush()
    return TrendingReport(
        day=day, scores_added=added, scores_updated=updated, scores_unchanged=unchanged,
        papers_added=papers_added,
    )


def trending_on(*, session: Session, day: date) -> dict[str, int]:
    """arXiv id -> upvotes on `day`, most upvoted first."""
    query = (
        select(TrendingScore)
        .where(TrendingScore.day == day)
        .order_by(col(TrendingScore.upvotes).desc(), col(TrendingScore.arxiv_id))
    )
    return {score.arxiv_id: score.upvotes for score in session.exec(query)}


def top_trending(*, session: Session, day: date, limit: int = 10) -> list[TrendingPaper]:
    """The day's most upvoted papers, ties to the smaller arXiv id (a plain trending digest)."""
    if limit <= 0:
        return []
    query = (
        select(Paper, TrendingScore.upvotes)
        .join(TrendingScore, col(TrendingScore.arxiv_id) == col(Paper.arxiv_id))
        .where(TrendingScore.day == day)
        .order_by(col(TrendingScore.upvotes).desc(), col(Paper.arxiv_id))
        .limit(limit)
    )
    return [TrendingPaper(paper=paper, upvotes=upvotes) for paper, upvotes in session.exec(query)]
