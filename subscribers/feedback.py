"""Feedback votes: "more like this", "less like this" and clicks, one row per subscriber, paper."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum

from sqlalchemy import Column, ForeignKey, Integer, String
from sqlmodel import Field, Session, SQLModel, col, select

from core.db import one_of
from digest.feedback import Rating
from subscribers.models import utcnow
from subscribers.saved import saved_ids


class Vote(StrEnum):
    more = "more"
    less = "less"
    click = "click"  # opened the paper from an email: a weak positive


# What each vote means to the model (digest.feedback); a click is worth a third of "more".
WEIGHTS = {Vote.more: 1.0, Vote.less: -1.0, Vote.click: 0.3}
# A saved paper (subscribers.saved) weighs like two "more" votes in the liked centroid, and
# stands in for any vote on the same paper: keeping a paper says more than any button.
SAVED_WEIGHT = 2.0


class FeedbackVote(SQLModel, table=True):
    """A subscriber's latest opinion of one paper; an explicit vote is never undone by a click."""

    __tablename__ = "feedback_vote"

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
    vote: str = Field(max_length=10)
    created_at: datetime = Field(default_factory=utcnow)


def record_vote(*, session: Session, subscriber_id: int, arxiv_id: str, vote: Vote) -> bool:
    """Store a vote (idempotent); True when it changed anything. Clicks never override votes."""
    existing = session.get(FeedbackVote, (subscriber_id, arxiv_id))
    if existing is None:
        session.add(FeedbackVote(subscriber_id=subscriber_id, arxiv_id=arxiv_id, vote=vote))
        session.flush()
        return True
    if existing.vote == vote or (vote is Vote.click and existing.vote != Vote.click):
        return False
    existing.vote = vote
    existing.created_at = utcnow()
    session.add(existing)
    session.flush()
    return True


def ratings_for(
    *, session: Session, subscriber_ids: Sequence[int]
) -> dict[int, list[Rating]]:
    """subscriber id -> their ratings (paper id and weight): votes oldest first, then the
    papers they saved, oldest first."""
    found: dict[int, list[Rating]] = {}
    if not subscriber_ids:
        return found
    query = (
        select(FeedbackVote)
        .where(one_of(session, FeedbackVote.subscriber_id, subscriber_ids))
        .order_by(col(FeedbackVote.subscriber_id), col(FeedbackVote.created_at))
    )
    saved = saved_ids(session=session, subscriber_ids=list(subscriber_ids))
    kept = {subscriber_id: set(arxiv_ids) for subscriber_id, arxiv_ids in saved.items()}
    for row in session.exec(query):
        if row.arxiv_id in kept.get(row.subscriber_id, ()):
            continue  # the saved paper's rating below stands in for the vote
        weight = WEIGHTS.get(Vote(row.vote), 0.0) if row.vote in Vote.__members__ else 0.0
        found.setdefault(row.subscriber_id, []).append(Rating(row.arxiv_id, weight))
    for subscriber_id, arxiv_ids in saved.items():
        found.setdefault(subscriber_id, []).extend(
            Rating(arxiv_id, SAVED_WEIGHT) for arxiv_id in arxiv_ids)
    return found
